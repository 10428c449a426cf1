"""The imbalance study: its run plan, one tiny seed end to end (a few 16 px images, a few
steps per training) with its resume, its stages, and the report over fake seeds."""

import json

import cv2
import numpy as np
import pytest

from fer_pipeline.dag.stages import GROUPS
from fer_pipeline.dag.stages.studies import stages as study_stages
from fer_pipeline.data.prep.shards import ShardWriter
from fer_pipeline.reporting.imbalance import write_imbalance_report
from fer_pipeline.studies.imbalance import ROWS, run_seed, study_runs, weights_read_by

PLAN = {"factors": [10, 100], "rows": ["ce", "weighted_ce", "rac_rsl", "deviation", "ensemble"],
        "arch": "small_cnn", "epochs": 3, "deviation_epochs": 1, "ensemble": ["small_cnn", "resnet18"]}


def test_run_plan_reads_ce_before_deviation_and_the_ensemble():
    runs = study_runs(PLAN)
    assert [r.name for r in runs[:6]] == ["if10_ce", "if10_weighted_ce", "if10_rac_rsl", "if10_deviation",
                                          "if10_member_resnet18", "if10_ensemble"]
    by_name = {r.name: r for r in runs}
    assert by_name["if10_deviation"].start == "if10_ce" and by_name["if10_deviation"].epochs == 1
    assert by_name["if10_deviation"].settings == {"loss": {"kind": "ce"}, "deviation": True}
    assert by_name["if10_ensemble"].members == ("if10_ce", "if10_member_resnet18")
    assert not by_name["if10_ensemble"].trains and by_name["if10_member_resnet18"].arch == "resnet18"
    assert by_name["if100_rac_rsl"].settings == ROWS["rac_rsl"] and by_name["if100_rac_rsl"].factor == 100
    assert weights_read_by(runs) == {"if10_ce", "if10_member_resnet18", "if100_ce", "if100_member_resnet18"}
    # The deviation row alone still trains the CE network it starts from (not a table row then).
    alone = study_runs({**PLAN, "factors": [10], "rows": ["deviation"]})
    assert [r.name for r in alone] == ["if10_ce", "if10_deviation"]


CLASSES = {"happiness": 6, "neutral": 4, "sadness": 3, "surprise": 2, "anger": 2, "fear": 2, "disgust": 2}


@pytest.fixture
def tiny_faces(tmp_path):
    """A prepared dataset of random 24 px JPEGs: 21 train images (all 7 classes), 7 test."""
    out = tmp_path / "prepared" / "rafdb"
    out.mkdir(parents=True)
    writer = ShardWriter(out, rows_per_shard=100, row_group_size=16)
    gen = np.random.default_rng(0)
    rows = [(c, "train") for c, n in CLASSES.items() for _ in range(n)] + [(c, "test") for c in CLASSES]
    for k, (label, split) in enumerate(rows):
        ok, jpeg = cv2.imencode(".jpg", gen.integers(0, 256, (24, 24, 3), dtype=np.uint8))
        assert ok
        writer.add({"image": jpeg.tobytes(), "label": label, "identity": None, "split": split,
                    "source": f"{split}/{k:03d}.jpg", "landmarks5": None, "video": None, "frame": None})
    writer.close()
    return out


def test_one_tiny_seed_runs_every_switch_and_resumes(tiny_faces, params, tmp_path):
    params["imbalance"].update({"init": "scratch", "arch": "small_cnn",
                                "seeds": [0], "factors": [2], "input_size": 16, "epochs": 1, "batch_size": 8,
                                "rows": ["ce", "upsampling", "rac_rsl", "deviation", "ensemble"]})
    work, out = tmp_path / "work", tmp_path / "out"
    first = run_seed(params, 0, str(tiny_faces), out, work)
    names = ["if2_ce", "if2_upsampling", "if2_rac_rsl", "if2_deviation", "if2_member_resnet18", "if2_ensemble"]
    assert list(first["results"]) == names
    assert json.loads((out / "results.json").read_text())["results"] == first["results"]
    assert first["subsets"]["if2"]["count"] == 21 and first["subsets"]["if2"]["imbalance_factor"] == 2
    for name in names:
        assert 0 <= first["results"][name]["mean_class_accuracy"] <= 1
        assert (work / name / "results.json").exists()
    up = json.loads((work / "if2_upsampling" / "upsample_index.json").read_text())
    assert up["count"] == 7 * 6, "every class up to the largest one's 6 images"
    assert len(first["histories"]["if2_deviation"]) == 1 and first["histories"]["if2_ensemble"] == []
    assert not list(work.rglob("*.pt")), "the study keeps numbers, not models"

    # A job killed before the ensemble: its members' weights are gone, so they train again
    # (same seed, same weights) and the ensemble scores as before; the other runs are reused.
    (work / "if2_ensemble" / "results.json").unlink()
    again = run_seed(params, 0, str(tiny_faces), out, work)
    assert again["results"] == first["results"]
    assert again["seconds"]["if2_rac_rsl"] == first["seconds"]["if2_rac_rsl"], "reused, not retrained"
    assert not list(work.rglob("*.pt"))


def test_the_study_is_its_own_group_reading_the_labelled_set(params):
    by_name = {s.name: s for s in study_stages(params)}
    study, report = by_name["imbalance_study"], by_name["report_imbalance"]
    assert GROUPS["imbalance"]["target"] == "report_imbalance" and study.group == report.group == "imbalance"
    sup, imbalance = params["train"]["supervised"], params["imbalance"]
    labelled = f"{params['prepare']['out_dir']}/{sup['dataset']}"
    assert imbalance["init"] == "fr_pretrained"  # the shipped default: the FR backbone is an input too
    assert study.deps == (labelled, params["train"]["pretrain_fr"]["out_dir"])
    scratch = {**params, "imbalance": {**imbalance, "init": "scratch"}}
    assert {s.name: s for s in study_stages(scratch)}["imbalance_study"].deps == (labelled,)
    assert list(study.items) == [str(s) for s in imbalance["seeds"]]
    # The seeds first; then seed 001's distillation and cross-dataset evaluations (tests/test_distill.py).
    seeds = len(imbalance["seeds"])
    assert report.deps[:seeds] == tuple(f"{imbalance['out_dir']}/seed{s}" for s in imbalance["seeds"])
    assert report.metrics == (f"{imbalance['report_dir']}/headline.json",
                              f"{imbalance['report_dir']}/distill_headline.json")


def _seed(seed, rows, factors):
    rng = np.random.default_rng(seed)
    results = {f"if{f}_{row}": {"overall_accuracy": float(rng.uniform()), "mean_class_accuracy": float(rng.uniform())}
               for f in factors for row in rows}
    subsets = {f"if{f}": {"imbalance_factor": f, "realised_imbalance_factor": f + 0.5 * seed, "count": 100 - f,
                          "per_class": {}} for f in factors}
    return {"seed": seed, "arch": "small_cnn", "subsets": subsets, "results": results, "histories": {},
            "seconds": {name: 10.0 + seed for name in results}}


def test_report_is_table3_shaped_with_mean_and_sample_sd(tmp_path):
    imbalance = {"factors": [10, 50], "rows": ["ce", "rac_rsl", "ensemble"], "arch": "small_cnn", "input_size": 32,
                 "epochs": 3, "deviation_epochs": 1, "ensemble": ["small_cnn", "resnet18"]}
    seeds = [_seed(s, imbalance["rows"], imbalance["factors"]) for s in (0, 1, 2)]
    files = []
    for s in seeds:
        files.append(tmp_path / f"seed{s['seed']}.json")
        files[-1].write_text(json.dumps(s))
    tables = write_imbalance_report(files, imbalance, tmp_path / "out", synthetic=True)

    values = [100 * s["results"]["if50_rac_rsl"]["mean_class_accuracy"] for s in seeds]
    cell = tables["table"]["rac_rsl"]["if50"]["mean_class_accuracy"]
    assert cell["mean"] == pytest.approx(np.mean(values)) and cell["sd"] == pytest.approx(np.std(values, ddof=1))
    assert tables["headline"]["if50.rac_rsl.mean_class_accuracy"] == pytest.approx(np.mean(values))
    assert tables["subsets"]["if50"]["realised_imbalance_factor"]["mean"] == pytest.approx(50.5)
    headline = json.loads((tmp_path / "out" / "headline.json").read_text())
    assert headline == pytest.approx(tables["headline"]) and len(headline) == 3 * 2 * 2

    md = (tmp_path / "out" / "table3.md").read_text()
    assert md.startswith("# Long-tailed subsets") and "FaceSynth" in md  # the demo note
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0] == ("| method | IF 10: overall acc | IF 10: mean class acc | IF 50: overall acc | "
                        "IF 50: mean class acc |")
    assert [line.split(" | ")[0] for line in table[1:4]] == ["| Baseline (CE)", "| RAC + RSL (LNSU)",
                                                             "| Ensemble (small_cnn + resnet18)"]
    assert f"{cell['mean']:.2f} ± {cell['sd']:.2f}" in table[2]
    assert (tmp_path / "out" / "table3.png").stat().st_size > 0 and (tmp_path / "out" / "tables.json").exists()
