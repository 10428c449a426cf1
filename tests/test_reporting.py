"""The report tables' numbers: hand-made metrics in, the exact Markdown lines out.

Every expected line below is worked out by hand from the inputs (percentages, mean and
sample sd over seeds, the formatting of each column), not copied from a run."""

from __future__ import annotations

import json

import pytest

from fer_pipeline.reporting.format import DEMO_NOTE
from fer_pipeline.reporting.spatial import build_tables, to_markdown as spatial_markdown
from fer_pipeline.reporting.summary import build_summary, headline, write_report
from fer_pipeline.reporting.summary import to_markdown as summary_markdown
from fer_pipeline.reporting.temporal import ROWS, build_table, to_markdown as temporal_markdown


def _lines_in_order(text: str, expected: list[str]) -> None:
    """Each expected line is a whole line of `text`, in this order."""
    lines = text.splitlines()
    at = 0
    for line in expected:
        assert line in lines[at:], f"missing (or out of order): {line!r}\n--- in ---\n{text}"
        at = lines.index(line, at) + 1


# ---- temporal table (seed 002, Table 1's shape) ----

# Per row: (macro-F1, switches per 100 frames) for seeds 0 and 1.
ROW_VALUES = {
    "frame-level": ((0.40, 3.0), (0.50, 5.0)),
    "+ temporal encoder": ((0.50, 2.0), (0.60, 2.0)),
    "+ post-processing": ((0.60, 1.0), (0.70, 3.0)),
    "frame-level + post-processing (control)": ((0.45, 0.5), (0.45, 0.5)),
}


def _temporal_per_seed() -> dict:
    per_seed = {}
    for seed in (0, 1):
        rows = {}
        for name, values in ROW_VALUES.items():
            f1, switches = values[seed]
            rows[name] = {"macro_f1": f1, "accuracy": (0.6, 0.8)[seed], "switches_per_100_frames": switches,
                          "per_class_f1": {"neutral": (0.2, 0.4)[seed], "anger": (0.5, 0.7)[seed]},
                          "accuracy_by_condition": {"clean": {"accuracy": (0.9, 0.7)[seed], "n": 10},
                                                    "occluded": {"accuracy": None, "n": 0}},
                          "n": 100}
        per_seed[seed] = {**rows, "truth": {"switches_per_100_frames": (2.0, 3.0)[seed]}}
    return per_seed


def test_temporal_table_is_mean_and_sample_sd_over_seeds():
    table = build_table(_temporal_per_seed())
    assert [r["row"] for r in table["rows"]] == [name for name, _, _ in ROWS]
    first = table["rows"][0]
    assert first["macro_f1"] == pytest.approx({"mean": 45.0, "sd": 50 ** 0.5, "n": 2})
    assert first["switches_per_100_frames"] == pytest.approx({"mean": 4.0, "sd": 2 ** 0.5, "n": 2}), "not in %"
    assert table["truth_switches_per_100_frames"]["mean"] == pytest.approx(2.5)
    assert table["n_frames"] == 100 and table["seeds"] == [0, 1]

    md = temporal_markdown(table)
    _lines_in_order(md, [
        "## Temporal phase (seed 002, Table 1)",
        "Macro-F1 over the 2 classes, 100 scored frames, mean ± sd over seeds [0, 1] (%). "
        "Switches: label changes per 100 frames (ground truth: 2.5).",
        "| row | macro-F1 | accuracy | switches / 100 frames | paper F1 (Aff-Wild2) |",
        "| frame-level | 45.00 ± 7.07 | 70.00 ± 14.14 | 4.0 ± 1.4 | 40.96 / 41.57 (SSL) |",
        "| + temporal encoder | 55.00 ± 7.07 | 70.00 ± 14.14 | 2.0 ± 0.0 | 43.77 |",
        "| + post-processing | 65.00 ± 7.07 | 70.00 ± 14.14 | 2.0 ± 1.4 | 45.43 |",
        "| frame-level + post-processing (control) | 45.00 ± 0.00 | 70.00 ± 14.14 | 0.5 ± 0.0 | — |",
        "| row | neutral | anger |",
        "|---|---:|---:|",
        "| + temporal encoder | 30.0 | 60.0 |",
        "| row | clean (n=10) | occluded (n=0) |",
        "| frame-level | 80.00 ± 14.14 | 0.00 ± 0.00 |",
    ])


# ---- results table of the main DAG ----

SUPERVISED = {"dataset": "rafdb", "n": 40, "overall_accuracy": 0.8125, "mean_class_accuracy": 0.75,
              "std_class_accuracy": 0.125, "macro_f1": 0.7,
              "per_class_accuracy": {"neutral": 0.9, "happiness": 1.0, "fear": None}}
META = {"dataset": "rafdb_mined", "n": 12, "overall_accuracy": 0.5, "mean_class_accuracy": 1 / 3,
        "std_class_accuracy": 0.05, "macro_f1": 0.25,
        "per_class_accuracy": {"neutral": 0.25, "happiness": 0.5, "fear": 0.0}}


def _metrics_files(tmp_path, with_temporal=True):
    files = {}
    for name, metrics in (("supervised", SUPERVISED), ("meta", META)):
        files[name] = tmp_path / name / "metrics.json"
        files[name].parent.mkdir()
        files[name].write_text(json.dumps({**metrics, "confusion_matrix": [[1]]}))
    temporal = tmp_path / "temporal.json"
    temporal.write_text(json.dumps({"table": build_table(_temporal_per_seed()), "per_seed": {}}))
    return files, (temporal if with_temporal else None)


def test_summary_rows_are_the_metrics_files_in_percent(tmp_path):
    files, temporal = _metrics_files(tmp_path)
    summary = write_report(files, tmp_path / "out", True, temporal)
    assert summary == build_summary(files, True, temporal)
    # summary.json: the headline numbers only (what `dvc metrics show` prints).
    assert json.loads((tmp_path / "out/summary.json").read_text()) == headline(summary)
    assert set(headline(summary)["models"]["meta"]) == {"overall_accuracy", "mean_class_accuracy",
                                                         "std_class_accuracy", "macro_f1"}
    assert [r["model"] for r in summary["rows"]] == ["supervised", "meta"]
    assert summary["data"] == "FaceSynth (synthetic demo)"
    md = (tmp_path / "out/summary.md").read_text()
    assert md == summary_markdown(summary)
    _lines_in_order(md, [
        "# fer-pipeline results",
        f"> {DEMO_NOTE}",
        "| model | test set | n | overall acc | mean class acc | std class acc | macro-F1 |",
        "|---|---|---:|---:|---:|---:|---:|",
        "| supervised | rafdb | 40 | 81.25 | 75.00 | 12.50 | 70.00 |",
        "| meta | rafdb_mined | 12 | 50.00 | 33.33 | 5.00 | 25.00 |",
        "Per-class accuracy (%), supervised:",
        "| neutral | happiness | fear |",
        "|---:|---:|---:|",
        "| 90.0 | 100.0 | — |",
        "Per-class accuracy (%), meta:",
        "| 25.0 | 50.0 | 0.0 |",
        "## Temporal phase (seed 002, Table 1)",
        "| + post-processing | 65.00 ± 7.07 | 70.00 ± 14.14 | 2.0 ± 1.4 | 45.43 |",
    ])
    assert not list((tmp_path / "out").glob("*.tmp*")), "no temp file left behind"


def test_summary_on_user_data_has_no_demo_note_and_no_temporal_section(tmp_path):
    files, _ = _metrics_files(tmp_path, with_temporal=False)
    summary = build_summary(files, False)
    md = summary_markdown(summary)
    assert summary["data"] == "user datasets" and "temporal" not in summary
    assert DEMO_NOTE not in md and "Temporal phase" not in md
    assert "| supervised | rafdb | 40 | 81.25 | 75.00 | 12.50 | 70.00 |" in md.splitlines()


# ---- Face2Exp study tables (Tables 4 and 6) ----

SPATIAL = {"labeled_fractions": [0.1], "ablation_fraction": 0.1, "balanced": True, "init": "scratch",
           "arch": "small_cnn", "input_size": 32, "sl_epochs": 2, "meta_steps": 10}


def _result(mca, sca, oa, f1, per_class):
    return {"mean_class_accuracy": mca, "std_class_accuracy": sca, "overall_accuracy": oa, "macro_f1": f1,
            "per_class_accuracy": per_class}


def _spatial_seed(seed: int, k: int) -> dict:
    """Seed `seed`, the k-th (0 or 1) of the two: values picked for hand-checkable means."""
    pick = lambda a, b: (a, b)[k]  # noqa: E731
    meta_pc = {"neutral": None, "happiness": 0.5}
    results = {
        "sl_100": _result(pick(0.70, 0.80), pick(0.10, 0.20), pick(0.75, 0.85), pick(0.65, 0.75),
                          {"neutral": pick(0.6, 0.8), "happiness": pick(0.8, 1.0)}),
        "sl_100_raw": _result(pick(0.68, 0.78), 0.12, 0.7, 0.6, {"neutral": 0.5, "happiness": 0.9}),
        "sl_10": _result(pick(0.50, 0.56), pick(0.30, 0.34), 0.50, 0.45, {"neutral": 0.4, "happiness": 0.6}),
        "sl_10_raw": _result(pick(0.48, 0.50), 0.32, 0.5, 0.4, {"neutral": 0.3, "happiness": 0.7}),
        "meta_10": _result(0.60, 0.30, 0.60, 0.50, meta_pc),
        "abl_s": _result(pick(0.3, 0.5), 0.40, pick(0.35, 0.45), 0.3, meta_pc),
        "abl_su": _result(0.50, 0.35, 0.50, 0.4, meta_pc),
        "abl_suc": _result(0.55, 0.30, 0.55, 0.45, meta_pc),
    }
    audit = {"step": 10, "pseudo_label_accuracy": pick(0.4, 0.6), "feedback_mean": pick(0.01, 0.03),
             "feedback_positive_rate": 0.5, "pseudo_share.neutral": pick(0.2, 0.3),
             "pseudo_share.happiness": pick(0.8, 0.7), "true_share.neutral": 0.5, "true_share.happiness": 0.5}
    no_f = {**audit, "pseudo_label_accuracy": 0.45, "feedback_mean": 0.0, "feedback_positive_rate": 0.0}
    return {"seed": seed, "results": results,
            "histories": {"sl_100": [], "sl_10": [], "meta_10": [{**audit, "step": 5}, audit], "abl_su": [no_f],
                          "abl_suc": [no_f]},
            "seconds": {"sl_100": 10.0, "sl_10": 5.0, "meta_10": pick(30.0, 32.0)},
            "mining": {"0.05": {"neutral": {"precision": pick(0.5, 0.7), "coverage": 0.2},
                                "all": {"precision": None, "coverage": pick(0.1, 0.3)}}}}


def test_spatial_tables_lines():
    tables = build_tables([_spatial_seed(3, 0), _spatial_seed(4, 1)], SPATIAL)
    # Paired within each seed: Meta 10 − SL 10 is +10 and +4 points of mean accuracy, 0 and −4 of std.
    assert tables["headline"] == pytest.approx({
        "sl_10.mean_class_accuracy": 53.0, "sl_10.std_class_accuracy": 32.0,
        "meta_10.mean_class_accuracy": 60.0, "meta_10.std_class_accuracy": 30.0,
        "sl_100.mean_class_accuracy": 75.0, "sl_100.std_class_accuracy": 15.0,
        "meta_10_minus_sl_10.mean_class_accuracy": 7.0, "meta_10_minus_sl_10.mean_class_accuracy_sd": 18 ** 0.5,
        "meta_10_minus_sl_10.std_class_accuracy": -2.0, "meta_10_minus_sl_10.std_class_accuracy_sd": 8 ** 0.5,
        "meta_10_minus_sl_100.mean_class_accuracy": -15.0, "meta_10_minus_sl_100.mean_class_accuracy_sd": 50 ** 0.5,
        "meta_10_minus_sl_100.std_class_accuracy": 15.0, "meta_10_minus_sl_100.std_class_accuracy_sd": 50 ** 0.5})
    md = spatial_markdown(tables, SPATIAL, synthetic=True)
    _lines_in_order(md, [
        "# Face2Exp on the demo data: Tables 4 and 6",
        f"> {DEMO_NOTE}",
        "Mean ± sd over 2 seeds (3, 4); small_cnn at 32 px. At each labelled fraction p, SL p % trains 2 epochs "
        "on exactly the labelled subset Meta p % uses, from the study's initialisation (scratch); Meta p %'s "
        "teacher and student start from SL p %'s weights and train 10 steps; every model is then finetuned the "
        "same way on its subset's labels. Accuracies in %.",
        "## Table 4 shape: SL vs Meta-Face2Exp on the same balanced subsets, and SL with 100 % labels",
        "| | SL 10 % | Meta 10 % | SL 100 % |",
        "|---|---:|---:|---:|",
        "| Mean accuracy ↑ | 53.00 ± 4.24 | 60.00 ± 0.00 | 75.00 ± 7.07 |",
        "| Std accuracy ↓ | 32.00 ± 2.83 | 30.00 ± 0.00 | 15.00 ± 7.07 |",
        "| Overall accuracy | 50.00 ± 0.00 | 60.00 ± 0.00 | 80.00 ± 7.07 |",
        "| Macro-F1 | 45.00 ± 0.00 | 50.00 ± 0.00 | 70.00 ± 7.07 |",
        "SL before its finetune (the weights Meta starts from):",
        "| | SL 10 % | SL 100 % |",
        "| Mean accuracy ↑ | 49.00 ± 1.41 | 73.00 ± 7.07 |",
        "| Std accuracy ↓ | 32.00 ± 0.00 | 12.00 ± 0.00 |",
        "## Paired differences: Meta p % − SL p % and Meta p % − SL 100 %",
        "| Meta p % minus | SL p %: mean acc | SL p %: std acc | SL 100 %: mean acc | SL 100 %: std acc |",
        "| Meta 10 % | +7.00 ± 4.24 | -2.00 ± 2.83 | -15.00 ± 7.07 | +15.00 ± 7.07 |",
        "## Table 6 shape: losses (labelled subset 10 %)",
        "| 1 (L_s) | ✓ | ✗ | ✗ | ✗ | 40.00 ± 14.14 | 40.00 ± 0.00 | 40.00 ± 7.07 |",
        "| 2 (+ L_u) | ✓ | ✓ | ✗ | ✗ | 50.00 ± 0.00 | 35.00 ± 0.00 | 50.00 ± 0.00 |",
        "| 3 (+ L_c) | ✓ | ✓ | ✓ | ✗ | 55.00 ± 0.00 | 30.00 ± 0.00 | 55.00 ± 0.00 |",
        "| 4 (+ L_f) | ✓ | ✓ | ✓ | ✓ | 60.00 ± 0.00 | 30.00 ± 0.00 | 60.00 ± 0.00 |",
        "| model | neutral | happiness |",
        "| sl_10 | 40.00 ± 0.00 | 60.00 ± 0.00 |",
        "| meta_10 | 0.00 ± 0.00 | 50.00 ± 0.00 |",
        "| sl_100 | 70.00 ± 14.14 | 90.00 ± 14.14 |",
        "| meta_10 | 50.00 ± 14.14 | 2.00e-02 ± 1.41e-02 | 50.00 ± 0.00 |",
        "| abl_su | 45.00 ± 0.00 | — (no L_f) | — |",
        "Pseudo-label class shares vs the pool's true shares (meta_10, %):",
        "| pseudo | 25.00 ± 7.07 | 75.00 ± 7.07 |",
        "| true | 50.00 ± 0.00 | 50.00 ± 0.00 |",
        "| class | δ = 0.05 |",
        "| neutral | 60.0 / 20.0 |",
        "| all | — / 20.0 |",
        "Wall time per run (s, mean ± sd): sl_100 10 ± 0, sl_10 5 ± 0, meta_10 31 ± 1",
    ])
    unbalanced = spatial_markdown(tables, {**SPATIAL, "balanced": False}, synthetic=False)
    assert "## Table 5 shape: SL vs Meta-Face2Exp on the same unbalanced subsets, and SL with 100 % labels" \
        in unbalanced
    assert DEMO_NOTE not in unbalanced
