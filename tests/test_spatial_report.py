"""The spatial study's run plan and its tables over seeds (no training: synthetic results)."""

import json

import numpy as np
import pytest

from fer_pipeline.reporting.format import mean_sd
from fer_pipeline.reporting.spatial import write_spatial_report
from fer_pipeline.studies.spatial import ablation_rows, study_runs

CLASSES = ["neutral", "happiness", "fear"]
FULL = {"s": 1.0, "c": 1.0, "f": 1.0}


def test_run_plan_covers_table4_and_table6_without_duplicates():
    spatial = {"labeled_fractions": [0.01, 0.05, 0.1], "ablation_fraction": 0.1}
    runs = study_runs(spatial, FULL)
    assert [r.name for r in runs] == ["sl_100", "meta_1", "meta_5", "meta_10", "abl_su", "abl_suc"]
    by_name = {r.name: r for r in runs}
    assert by_name["abl_su"].weights == {"s": 1.0, "c": 0.0, "f": 0.0}
    assert by_name["abl_suc"].weights == {"s": 1.0, "c": 1.0, "f": 0.0}
    assert ("abl_s", "teacher.pt") in by_name["abl_su"].evaluations, "L_s only = the +L_u run's teacher"
    assert [result for _, result in ablation_rows(spatial)] == ["abl_s", "abl_su", "abl_suc", "meta_10"]
    # An ablation fraction outside Table 4's columns gets its own full run.
    other = study_runs({"labeled_fractions": [0.05], "ablation_fraction": 0.2}, FULL)
    assert [r.name for r in other] == ["sl_100", "meta_5", "meta_20", "abl_su", "abl_suc"]
    assert all(r.fraction == 0.2 for r in other if r.name.startswith("abl"))


def _metrics(rng):
    per_class = dict(zip(CLASSES, rng.uniform(0, 1, 3).round(3).tolist()))
    values = np.array(list(per_class.values()))
    return {"overall_accuracy": float(rng.uniform()), "mean_class_accuracy": float(values.mean()),
            "std_class_accuracy": float(values.std()), "macro_f1": float(rng.uniform()),
            "per_class_accuracy": per_class}


def _seed_results(seed):
    rng = np.random.default_rng(seed)
    names = ["sl_100", "meta_5", "meta_10", "abl_s", "abl_su", "abl_suc"]
    history = [{"step": s, "pseudo_label_accuracy": 0.3 + 0.01 * s, "feedback_mean": 0.01 * seed,
                "feedback_positive_rate": 0.5, **{f"pseudo_share.{c}": 1 / 3 for c in CLASSES},
                **{f"true_share.{c}": 1 / 3 for c in CLASSES}} for s in (10, 20)]
    no_f = [{**h, "feedback_mean": 0.0, "feedback_positive_rate": 0.0} for h in history]
    audit = {"0": {c: {"mined": 5, "precision": 0.5 + 0.1 * seed, "coverage": 0.4} for c in CLASSES + ["all"]}}
    return {"seed": seed, "results": {n: _metrics(rng) for n in names},
            "histories": {"sl_100": [], "meta_5": history, "meta_10": history, "abl_su": no_f, "abl_suc": no_f},
            "seconds": {"sl_100": 10.0, "meta_5": 20.0 + seed}, "mining": audit}


def test_tables_are_mean_and_sample_sd_over_seeds(tmp_path):
    spatial = {"labeled_fractions": [0.05, 0.1], "ablation_fraction": 0.1, "balanced": True, "arch": "small_cnn",
               "input_size": 32,
               "sl_epochs": 1, "meta_steps": 20}
    files = []
    seeds = [_seed_results(s) for s in (0, 1, 2)]
    for s in seeds:
        files.append(tmp_path / f"seed{s['seed']}.json")
        files[-1].write_text(json.dumps(s))
    tables = write_spatial_report(files, spatial, tmp_path / "out", synthetic=True)

    sl = [s["results"]["sl_100"]["std_class_accuracy"] for s in seeds]
    assert tables["table4"]["SL 100 %"]["std_class_accuracy"]["mean"] == pytest.approx(100 * np.mean(sl))
    assert tables["table4"]["SL 100 %"]["std_class_accuracy"]["sd"] == pytest.approx(100 * np.std(sl, ddof=1))
    assert list(tables["table4"]) == ["SL 100 %", "Meta 5 %", "Meta 10 %"]
    assert list(tables["table6"]) == ["L_s", "+ L_u", "+ L_c", "+ L_f"]
    assert tables["table6"]["+ L_f"] == tables["table4"]["Meta 10 %"]
    audit = {row["run"]: row for row in tables["audit"]}
    assert audit["meta_10"]["feedback_mean"]["mean"] == pytest.approx(0.01)
    assert audit["abl_su"]["feedback_mean"] is None, "no L_f, no f to report"
    assert tables["mining"]["0"]["all"]["precision"]["mean"] == pytest.approx(60.0)

    md = (tmp_path / "out/tables.md").read_text()
    assert "FaceSynth" in md and "over 3 seeds" in md
    row = next(line for line in md.splitlines() if line.startswith("| Std accuracy"))
    assert f"{100 * np.mean(sl):.2f} ± {100 * np.std(sl, ddof=1):.2f}" in row
    assert "— (no L_f)" in md
    for name in ("table4", "table6", "pseudo_label_accuracy", "mining"):
        assert (tmp_path / f"out/{name}.png").stat().st_size > 1000


def test_missing_seed_results_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="seed7"):
        write_spatial_report([tmp_path / "seed7/results.json"], {}, tmp_path / "out", synthetic=True)


def test_single_seed_has_zero_sd():
    assert mean_sd([0.5]) == {"mean": 50.0, "sd": 0.0, "n": 1}
