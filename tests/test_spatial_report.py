"""The spatial study's run plan and its tables over seeds (no training: synthetic results)."""

import copy
import json

import numpy as np
import pytest

from fer_pipeline.dag.stages.studies import stages as study_stages, study_init_weights
from fer_pipeline.reporting.format import mean_sd
from fer_pipeline.reporting.spatial import write_spatial_report
from fer_pipeline.studies.spatial import STUDY_INIT, SeedStudy, ablation_rows, study_runs

CLASSES = ["neutral", "happiness", "fear"]
FULL = {"s": 1.0, "c": 1.0, "f": 1.0}
PLAN = {"labeled_fractions": [0.01, 0.05, 0.1], "ablation_fraction": 0.1}


def test_run_plan_covers_table4_and_table6_without_duplicates():
    runs = study_runs(PLAN, FULL)
    assert [r.name for r in runs] == ["sl_100", "sl_1", "meta_1", "sl_5", "meta_5", "sl_10", "meta_10",
                                      "abl_su", "abl_suc"]
    by_name = {r.name: r for r in runs}
    assert by_name["abl_su"].weights == {"s": 1.0, "c": 0.0, "f": 0.0}
    assert by_name["abl_suc"].weights == {"s": 1.0, "c": 1.0, "f": 0.0}
    assert ("abl_s", "teacher.pt") in by_name["abl_su"].evaluations, "L_s only = the +L_u run's teacher"
    assert by_name["sl_10"].evaluations == (("sl_10_raw", "raw/model.pt"), ("sl_10", "model.pt"))
    assert [r.name for r in runs if r.mine] == ["sl_100"], "mining reads the SL model on all labels"
    assert [result for _, result in ablation_rows(PLAN)] == ["abl_s", "abl_su", "abl_suc", "meta_10"]
    # An ablation fraction outside Table 4's columns gets its own SL and full run.
    other = study_runs({"labeled_fractions": [0.05], "ablation_fraction": 0.2}, FULL)
    assert [r.name for r in other] == ["sl_100", "sl_5", "meta_5", "sl_20", "meta_20", "abl_su", "abl_suc"]
    assert all(r.fraction == 0.2 and r.start == "sl_20" for r in other if r.name.startswith("abl"))
    # 100 % as a Table 4 fraction: one sl_100, before its meta run.
    assert [r.name for r in study_runs({"labeled_fractions": [1.0], "ablation_fraction": 1.0}, FULL)] == [
        "sl_100", "meta_100", "abl_su", "abl_suc"]


def test_the_100_percent_column_is_every_label_as_drawn(tmp_path, params):
    """Table 4's SL 100 % is supervised on all labels (the paper's column); Smp's balanced
    cut applies to the p % subsets only."""
    params["spatial"]["balanced"] = True
    study = SeedStudy(params, 3, "labelled", "pool", tmp_path / "out", tmp_path / "work")
    assert study.meta_cfg(1.0)["balanced"] is False
    assert study.meta_cfg(0.1)["balanced"] is True
    params["spatial"]["balanced"] = False
    assert study.meta_cfg(0.1)["balanced"] is False


def test_each_meta_run_starts_from_the_sl_run_at_its_fraction_on_the_same_subset(tmp_path, params):
    params["spatial"].update(PLAN)
    runs = study_runs(params["spatial"], FULL)
    by_name = {r.name: r for r in runs}
    study = SeedStudy(params, 3, "labelled", "pool", tmp_path / "out", tmp_path / "work")
    for run in runs:
        if run.kind == "supervised":
            assert run.start == STUDY_INIT, "every SL run of a seed starts from the one init"
            continue
        sl = by_name[run.start]
        assert sl.kind == "supervised" and sl.fraction == run.fraction
        assert runs.index(sl) < runs.index(run), f"{sl.name} trains before {run.name} starts from it"
        assert study.start_weights(run.start) == tmp_path / "work" / sl.name / "raw/model.pt"
        assert study.subset_index_path(sl) == study.subset_index_path(run)
        # The meta run draws its subset and finetune subset from the config the SL index is written from.
        drawn = ("labeled", "class_set", "seed", "labeled_fraction", "balanced")
        assert {k: study.meta_cfg(sl.fraction)[k] for k in drawn} == \
               {k: study.meta_cfg(run.fraction, run.weights)[k] for k in drawn}
        assert study.meta_cfg(run.fraction, run.weights)["weights"] == run.weights
    assert {r.start for r in runs if r.kind == "meta"} == {"sl_1", "sl_5", "sl_10"}


def test_start_weights_go_once_no_pending_run_needs_them(tmp_path, params):
    params["spatial"].update(PLAN)
    runs = study_runs(params["spatial"], FULL)
    study = SeedStudy(params, 3, "labelled", "pool", tmp_path / "out", tmp_path / "work")
    for start in [STUDY_INIT] + [r.name for r in runs if r.kind == "supervised"]:
        study.start_weights(start).parent.mkdir(parents=True, exist_ok=True)
        study.start_weights(start).write_bytes(b"w")
    names = [r.name for r in runs]
    study.release_weights(runs, runs[names.index("meta_1") + 1:])
    assert not study.start_weights("sl_1").exists() and not study.start_weights("sl_100").exists()
    assert study.start_weights("sl_10").exists() and study.start_weights(STUDY_INIT).exists()
    # A killed job's finished runs need nothing: with abl_su's metrics there, only abl_suc keeps sl_10.
    for name in ("meta_10", "abl_su"):
        (tmp_path / "work" / name).mkdir()
        (tmp_path / "work" / name / "results.json").write_text("{}")
    pending = study.pending(runs[names.index("sl_10") + 1:])
    assert [r.name for r in pending] == ["abl_suc"]
    study.release_weights(runs, pending)
    assert study.start_weights("sl_10").exists() and not study.start_weights(STUDY_INIT).exists()
    study.release_weights(runs, [])
    assert not list((tmp_path / "work").rglob("*.pt"))


def test_fr_pretrained_init_is_a_dependency_only_when_chosen(params):
    deps = lambda p: study_stages(p)[0].deps  # noqa: E731
    fr = params["train"]["pretrain_fr"]
    assert params["spatial"]["init"] == "scratch" and fr["out_dir"] not in deps(params)
    assert study_init_weights(params) is None
    chosen = copy.deepcopy(params)
    chosen["spatial"]["init"] = "fr_pretrained"
    with pytest.raises(ValueError, match="spatial.arch 'small_cnn' is not train.pretrain_fr.arch"):
        study_stages(chosen)
    chosen["spatial"]["arch"] = fr["arch"]
    assert fr["out_dir"] in deps(chosen)
    assert study_init_weights(chosen) == f"{fr['out_dir']}/backbone.pt"


def _metrics(rng):
    per_class = dict(zip(CLASSES, rng.uniform(0, 1, 3).round(3).tolist()))
    values = np.array(list(per_class.values()))
    return {"overall_accuracy": float(rng.uniform()), "mean_class_accuracy": float(values.mean()),
            "std_class_accuracy": float(values.std()), "macro_f1": float(rng.uniform()),
            "per_class_accuracy": per_class}


RESULTS = ["sl_100", "sl_100_raw", "sl_5", "sl_5_raw", "meta_5", "sl_10", "sl_10_raw", "meta_10",
           "abl_s", "abl_su", "abl_suc"]


def _seed_results(seed):
    rng = np.random.default_rng(seed)
    history = [{"step": s, "pseudo_label_accuracy": 0.3 + 0.01 * s, "feedback_mean": 0.01 * seed,
                "feedback_positive_rate": 0.5, **{f"pseudo_share.{c}": 1 / 3 for c in CLASSES},
                **{f"true_share.{c}": 1 / 3 for c in CLASSES}} for s in (10, 20)]
    no_f = [{**h, "feedback_mean": 0.0, "feedback_positive_rate": 0.0} for h in history]
    audit = {"0": {c: {"mined": 5, "precision": 0.5 + 0.1 * seed, "coverage": 0.4} for c in CLASSES + ["all"]}}
    return {"seed": seed, "results": {n: _metrics(rng) for n in RESULTS},
            "histories": {"sl_100": [], "sl_5": [], "meta_5": history, "sl_10": [], "meta_10": history,
                          "abl_su": no_f, "abl_suc": no_f},
            "seconds": {"sl_100": 10.0, "meta_5": 20.0 + seed}, "mining": audit}


def test_tables_are_mean_and_sample_sd_over_seeds(tmp_path):
    spatial = {"labeled_fractions": [0.05, 0.1], "ablation_fraction": 0.1, "balanced": True, "init": "scratch",
               "arch": "small_cnn", "input_size": 32, "sl_epochs": 1, "meta_steps": 20}
    files = []
    seeds = [_seed_results(s) for s in (0, 1, 2)]
    for s in seeds:
        files.append(tmp_path / f"seed{s['seed']}.json")
        files[-1].write_text(json.dumps(s))
    tables = write_spatial_report(files, spatial, tmp_path / "out", synthetic=True)

    sl = [s["results"]["sl_100"]["std_class_accuracy"] for s in seeds]
    assert tables["table4"]["SL 100 %"]["std_class_accuracy"]["mean"] == pytest.approx(100 * np.mean(sl))
    assert tables["table4"]["SL 100 %"]["std_class_accuracy"]["sd"] == pytest.approx(100 * np.std(sl, ddof=1))
    assert list(tables["table4"]) == ["SL 5 %", "Meta 5 %", "SL 10 %", "Meta 10 %", "SL 100 %"]
    assert list(tables["sl_raw"]) == ["SL 5 %", "SL 10 %", "SL 100 %"]
    assert list(tables["table6"]) == ["L_s", "+ L_u", "+ L_c", "+ L_f"]
    assert tables["table6"]["+ L_f"] == tables["table4"]["Meta 10 %"]

    # The paired difference is taken within each seed, then summarised: not a difference of means' sds.
    for metric in ("mean_class_accuracy", "std_class_accuracy"):
        diffs = [100 * (s["results"]["meta_10"][metric] - s["results"]["sl_10"][metric]) for s in seeds]
        pair = tables["paired"]["meta_10_minus_sl_10"][metric]
        assert pair["mean"] == pytest.approx(np.mean(diffs)) and pair["sd"] == pytest.approx(np.std(diffs, ddof=1))
        assert tables["headline"][f"meta_10_minus_sl_10.{metric}"] == pytest.approx(np.mean(diffs))
        assert tables["headline"][f"meta_10_minus_sl_10.{metric}_sd"] == pytest.approx(np.std(diffs, ddof=1))
    to_full = [100 * (s["results"]["meta_10"]["mean_class_accuracy"] - s["results"]["sl_100"]["mean_class_accuracy"])
               for s in seeds]
    assert tables["paired"]["meta_10_minus_sl_100"]["mean_class_accuracy"]["mean"] == pytest.approx(np.mean(to_full))
    assert set(tables["paired"]) == {"meta_5_minus_sl_5", "meta_5_minus_sl_100", "meta_10_minus_sl_10",
                                     "meta_10_minus_sl_100"}
    assert {"sl_5.mean_class_accuracy", "meta_5.std_class_accuracy", "sl_100.mean_class_accuracy"} \
        <= set(tables["headline"])

    audit = {row["run"]: row for row in tables["audit"]}
    assert audit["meta_10"]["feedback_mean"]["mean"] == pytest.approx(0.01)
    assert audit["abl_su"]["feedback_mean"] is None, "no L_f, no f to report"
    assert list(audit) == ["meta_5", "meta_10", "abl_su", "abl_suc"]
    assert list(tables["per_class"]) == ["sl_10", "meta_10", "sl_100"]
    assert tables["mining"]["0"]["all"]["precision"]["mean"] == pytest.approx(60.0)

    md = (tmp_path / "out/tables.md").read_text()
    assert "FaceSynth" in md and "over 3 seeds" in md and "from the study's initialisation (scratch)" in md
    assert "every run from scratch" not in md
    row = next(line for line in md.splitlines() if line.startswith("| Std accuracy"))
    assert f"{100 * np.mean(sl):.2f} ± {100 * np.std(sl, ddof=1):.2f}" in row
    assert "| | SL 5 % | Meta 5 % | SL 10 % | Meta 10 % | SL 100 % |" in md
    pair_row = next(line for line in md.splitlines() if line.startswith("| Meta 10 % |"))
    assert f"{np.mean(to_full):+.2f} ± {np.std(to_full, ddof=1):.2f}" in pair_row
    assert "— (no L_f)" in md
    for name in ("table4", "table6", "pseudo_label_accuracy", "mining"):
        assert (tmp_path / f"out/{name}.png").stat().st_size > 1000


def test_missing_seed_results_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="seed7"):
        write_spatial_report([tmp_path / "seed7/results.json"], {}, tmp_path / "out", synthetic=True)


def test_single_seed_has_zero_sd():
    assert mean_sd([0.5]) == {"mean": 50.0, "sd": 0.0, "n": 1}


def test_sl_index_is_the_subset_the_meta_run_draws(tmp_path, params):
    """On a tiny prepared set (no training): the index the SL run trains on is the meta
    run's own Smp subset, and the finetune subset lies inside it."""
    from fer_pipeline.data.prep.prepare import prepare_dataset
    from fer_pipeline.data.synth.world import World
    from fer_pipeline.data.synth.writers import write_rafdb_basic
    from fer_pipeline.common.labels import ClassSet
    from fer_pipeline.meta.smp import read_index
    from fer_pipeline.meta.train import _labelled_subset
    from fer_pipeline.train.finetune import write_finetune_index

    world = World(seed=4, render_size=32, nuisance_strength=0.5, intensity=(0.5, 1.0))
    write_rafdb_basic(world, tmp_path / "raw/rafdb", {"identities": 4, "train_images": 28, "test_images": 4}, 0.0)
    labelled = tmp_path / "prepared/rafdb"
    prepare_dataset("rafdb", "rafdb_basic", str(tmp_path / "raw/rafdb"), labelled, 32, 90, 16, 1000)
    params["spatial"].update({"labeled_fractions": [0.5], "ablation_fraction": 0.5})
    study = SeedStudy(params, 3, str(labelled), "pool", tmp_path / "out", tmp_path / "work")
    sl, meta = study_runs(params["spatial"], FULL)[1:3]
    cfg = study.meta_cfg(meta.fraction, meta.weights)
    _labelled_subset(cfg, labelled, ClassSet.named(cfg["class_set"]), tmp_path / "meta")
    chosen = read_index(study.subset_index(sl))
    assert chosen == read_index(tmp_path / "meta/smp_index.json") and 0 < len(chosen) < 28
    study.check_same_subset(meta, tmp_path / "meta/smp_index.json")
    assert read_index(write_finetune_index(labelled, study.meta_cfg(sl.fraction), params["train"]["finetune"],
                                           tmp_path / "ft")) <= chosen
