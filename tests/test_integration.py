"""The tiny DAG end to end through `dvc repro` and Snakemake, in a temporary copy of the
project, and the two tools' answers to "what is outdated?"."""

import json
import os

import pytest

from conftest import (dvc_outdated, fer_outdated, make_project_copy, mlflow_runs, run, set_param, snakemake_plan,
                      tiny_params)
from fer_pipeline.dag.fingerprint import tree_fingerprint
from fer_pipeline.data.synth.world import World
from fer_pipeline.data.synth.writers import write_rafdb_basic

pytestmark = pytest.mark.integration

# train_meta starts from the supervised baseline (params train.meta.init), so it is downstream of it.
# The temporal phase reads the finetuned student's features (temporal.features.student: meta).
TEMPORAL = {"extract_features", "train_temporal", "evaluate_temporal"}
DOWNSTREAM_OF_TRAIN = {"train_supervised", "train_meta", "finetune", "mine_pseudo", "evaluate", "report"} | TEMPORAL


DOWNSTREAM_OF_RAFDB = {"prepare", "gather", "train_supervised", "train_meta", "finetune", "mine_pseudo", "evaluate",
                       "report"} | TEMPORAL


def user_copy_of_rafdb(proj, params) -> None:
    """A dataset the user brings (not an output of the DAG): FaceSynth's writer stands in
    for the download."""
    gen = params["generate"]
    world = World(gen["seed"] + 1, gen["render_size"], gen["nuisance_strength"], tuple(gen["intensity"]))
    write_rafdb_basic(world, proj / "external/rafdb", gen["rafdb"], gen["label_noise"])


def test_dvc_repro_then_snakemake_then_both_tools_agree(tmp_path):
    """The whole tiny DAG once (by `dvc repro`), then the jobs a parameter change outdates
    again by Snakemake; after each, both tools agree that nothing is outdated. One build
    instead of one per tool keeps the suite within its time budget; Snakemake building the
    data stages from scratch is covered by the spatial study test."""
    params = tiny_params()
    params["datasets"]["rafdb"]["root"] = "external/rafdb"
    proj = make_project_copy(tmp_path / "clone", params)
    user_copy_of_rafdb(proj, params)
    run(["fer", "dvc-yaml"], proj)
    run(["dvc", "repro"], proj)

    assert dvc_outdated(proj) == set(), "a finished dvc repro leaves nothing to do"
    assert snakemake_plan(proj) == set(), "Snakemake accepts what dvc repro made"
    # The README's "After `make run`" commands print what it says they print.
    assert "Data and pipelines are up to date" in run(["dvc", "status"], proj).stdout
    assert fer_outdated(proj) == set()
    metrics = run(["dvc", "metrics", "show"], proj).stdout
    assert "reports/summary.json" in metrics and "models.meta.mean_class_accuracy" in metrics
    assert "per_class" not in metrics and "seed" not in metrics, "headline numbers only"
    run(["dvc", "plots", "show"], proj)
    assert (proj / "dvc_plots/index.html").stat().st_size > 0
    # Nothing the user did not make shows in git: dvc.lock, plus what this test made as the
    # user (dvc.yaml re-rendered for the user's rafdb root, and that copy in external/).
    changed = {line[3:] for line in run(["git", "status", "--porcelain"], proj).stdout.splitlines()}
    assert changed <= {"dvc.lock", "dvc.yaml", "external/"}, changed
    # The default remote is a folder beside the clone: push works out of the box.
    run(["dvc", "push"], proj)
    assert any((tmp_path / "fer-pipeline-dvc-remote").rglob("*")), "dvc push wrote to the default remote"
    # ... and a fresh clone beside it pulls the same bytes back.
    run(["git", "add", "dvc.yaml", "dvc.lock"], proj)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lock"], proj)
    pulled = tmp_path / "pulled"
    run(["git", "clone", "-q", str(proj), str(pulled)], tmp_path)
    run(["dvc", "pull"], pulled)
    for rel in ("data/prepared/rafdb", "models/supervised/model.pt", "models/finetuned/student/model.pt",
                "reports/summary.md", "data/features/affwild2"):  # metrics files are not cached (cache: false)
        assert (tree_fingerprint(pulled / rel, cache_dir=tmp_path / "fp-a")
                == tree_fingerprint(proj / rel, cache_dir=tmp_path / "fp-b")), rel

    runs = mlflow_runs(proj)
    jobs = sorted(r.data.tags["job"] for r in runs)
    assert jobs == ["evaluate@control", "evaluate@meta", "evaluate@supervised", "evaluate_temporal", "extract_features",
                    "finetune@control", "finetune@student",
                    "gather@affectnet", "gather@affwild2", "gather@ms1m", "gather@rafdb", "gather@webface",
                    "generate", "mine_pseudo", "prepare@affectnet-0", "prepare@affwild2-0", "prepare@affwild2-1",
                    "prepare@ms1m-0",
                    "prepare@rafdb-0", "prepare@rafdb-1", "prepare@webface-0", "pretrain_fr", "report", "train_meta",
                    "train_supervised", "train_temporal"]
    for name in ("affectnet", "affwild2", "webface"):  # FaceSynth writes all five formats; the readers take them
        manifest = json.loads((proj / f"data/prepared/{name}/manifest.json").read_text())
        assert manifest["kept"] > 0 and manifest["kept"] + manifest["rejected"] == manifest["inputs"]
    assert len({r.data.tags["pipeline_id"] for r in runs}) == 1, "one pipeline id per invocation"
    train = next(r for r in runs if r.data.tags["job"] == "train_supervised")
    # The recorded data version is the bytes' fingerprint, the one the stamp keeps.
    digest = tree_fingerprint(proj / "data/prepared/rafdb", cache_dir=tmp_path / "fp-cache")
    assert train.data.tags["data_version.rafdb"] == digest
    stamp = json.loads((proj / "models/supervised/_stage.json").read_text())
    assert stamp["inputs"]["data/prepared/rafdb"] == digest
    assert set(stamp["inputs"]) == {"data/prepared/rafdb", "models/pretrain_fr"}  # + the FR backbone (init)
    assert "train_loss" in train.data.metrics
    evaluate = next(r for r in runs if r.data.tags["job"] == "evaluate@meta")
    assert 0 <= evaluate.data.metrics["mean_class_accuracy"] <= 1
    meta = next(r for r in runs if r.data.tags["job"] == "train_meta")
    assert {"loss_s", "loss_c", "loss_f", "loss_u", "feedback", "pseudo_label_accuracy"} <= set(meta.data.metrics)
    mine = next(r for r in runs if r.data.tags["job"] == "mine_pseudo")
    mined = json.loads((proj / "data/prepared/ms1m_mined/manifest.json").read_text())
    assert mine.data.metrics["mined"] == mined["mined"] and mined["kept"] + mined["rejected"] == mined["inputs"]
    assert "mining.coverage.all.delta_0" in mine.data.metrics  # audited against FaceSynth's truth
    metrics = json.loads((proj / "reports/eval/supervised/metrics.json").read_text())
    assert metrics["n"] == sum(metrics["per_class_support"].values()) > 0
    summary = (proj / "reports/summary.md").read_text()
    assert "FaceSynth" in summary and "| meta |" in summary and "| supervised |" in summary and "| control |" in summary
    # The control is the baseline put through exactly the student's finetune: same images.
    assert ((proj / "models/finetuned/student/finetune_index.json").read_text()
            == (proj / "models/finetuned/control/finetune_index.json").read_text())
    assert "Temporal phase" in summary and "| + post-processing |" in summary
    temporal = next(r for r in runs if r.data.tags["job"] == "train_temporal")
    assert "seed0.temporal.loss" in temporal.data.metrics  # step-wise curves in MLflow
    features = json.loads((proj / "data/features/affwild2/manifest.json").read_text())
    assert features["rows"] == json.loads((proj / "data/prepared/affwild2/manifest.json").read_text())["kept"]

    # A training parameter: both tools name the same downstream jobs; restoring it makes
    # everything current again without running anything.
    set_param(proj, "train.supervised.lr", 0.02)
    assert snakemake_plan(proj) == DOWNSTREAM_OF_TRAIN
    assert dvc_outdated(proj) == DOWNSTREAM_OF_TRAIN
    assert fer_outdated(proj) == DOWNSTREAM_OF_TRAIN
    set_param(proj, "train.supervised.lr", params["train"]["supervised"]["lr"])
    assert snakemake_plan(proj) == set() and dvc_outdated(proj) == set() and fer_outdated(proj) == set()

    # Code: a module deep in some stages' import closures (the confusion-matrix plot,
    # imported by evaluation and, through the temporal table, by the report). All three
    # tools name exactly those stages and what reads their outputs; a comment-free
    # restore makes everything current again.
    module = proj / "fer_pipeline/eval/plots.py"
    original_code = module.read_text()
    module.write_text(original_code + "\n\ndef _unused_helper():\n    return None\n")
    expected = {"evaluate", "evaluate_temporal", "report"}
    assert snakemake_plan(proj) == expected
    assert dvc_outdated(proj) == expected
    assert fer_outdated(proj) == expected
    module.write_text(original_code)
    assert snakemake_plan(proj) == set() and dvc_outdated(proj) == set() and fer_outdated(proj) == set()

    # Data in place: one prepared shard's bytes changed at the same size. Every tool
    # names the jobs that read the dataset (DVC also names gather, whose output changed).
    shard = sorted((proj / "data/prepared/rafdb").glob("shard-*.parquet"))[0]
    shard_bytes = shard.read_bytes()
    shard.write_bytes(shard_bytes[:100] + bytes([shard_bytes[100] ^ 0xFF]) + shard_bytes[101:])
    readers = {"train_supervised", "train_meta", "finetune", "mine_pseudo", "evaluate"}
    assert readers <= snakemake_plan(proj) and readers <= fer_outdated(proj)
    assert readers | {"gather"} <= dvc_outdated(proj)
    assert snakemake_plan(proj) == fer_outdated(proj)
    shard.write_bytes(shard_bytes)
    assert snakemake_plan(proj) == set() and dvc_outdated(proj) == set() and fer_outdated(proj) == set()

    # A post-processing parameter: Snakemake reruns exactly the temporal evaluation and the
    # report, and records them where DVC looks, so DVC then agrees without running anything.
    set_param(proj, "temporal.evaluate.postprocess.window", 5)
    assert snakemake_plan(proj) == {"evaluate_temporal", "report"}
    assert dvc_outdated(proj) == {"evaluate_temporal", "report"}
    run(["snakemake", "--cores", "2"], proj)
    assert snakemake_plan(proj) == set()
    assert dvc_outdated(proj) == set(), "Snakemake recorded its outputs in dvc.lock"
    stamp = json.loads((proj / "reports/temporal/_stage.json").read_text())
    assert stamp["params"]["temporal.evaluate"]["postprocess"]["window"] == 5
    rerun = [r for r in mlflow_runs(proj) if r.info.run_id not in {old.info.run_id for old in runs}]
    assert sorted(r.data.tags["job"] for r in rerun) == ["evaluate_temporal", "report"]
    assert len({r.data.tags["pipeline_id"] for r in rerun} | {runs[0].data.tags["pipeline_id"]}) == 2

    # The user's raw copy: a touch that keeps the bytes changes nothing; other bytes in one
    # file outdate exactly rafdb's prepare jobs and what depends on them, in both tools; restoring
    # the bytes makes everything current again.
    image = sorted((proj / "external/rafdb/Image/aligned").glob("*.jpg"))[3]
    original = image.read_bytes()
    os.utime(image, (1e9, 1e9))
    assert snakemake_plan(proj) == set() and dvc_outdated(proj) == set()
    image.write_bytes(original + b"\0")  # a re-downloaded file with other bytes
    assert snakemake_plan(proj) == DOWNSTREAM_OF_RAFDB
    assert fer_outdated(proj) == DOWNSTREAM_OF_RAFDB
    # DVC names the jobs that read the changed bytes (raw roots are declared on prepare
    # only, docs/dag.md); `dvc repro` reruns the rest as their inputs change.
    status = json.loads(run(["dvc", "status", "--json"], proj).stdout)
    assert set(status) == {"prepare@rafdb-0", "prepare@rafdb-1"}, "other datasets are fine"
    image.write_bytes(original)
    assert snakemake_plan(proj) == set() and dvc_outdated(proj) == set() and fer_outdated(proj) == set()
