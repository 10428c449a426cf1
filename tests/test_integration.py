"""The tiny DAG end to end through Snakemake and through `dvc repro`, in temporary
copies of the project, and the two tools' answers to "what is outdated?"."""

import json
import os
import re

import pytest
import yaml

from conftest import make_project_copy, run, tiny_params
from fer_pipeline.synth.world import World
from fer_pipeline.synth.writers import write_rafdb_basic

pytestmark = pytest.mark.integration

# train_meta starts from the supervised baseline (params train.meta.init), so it is downstream of it.
# The temporal phase reads the finetuned student's features (temporal.features.student: meta).
TEMPORAL = {"extract_features", "train_temporal", "evaluate_temporal"}
DOWNSTREAM_OF_TRAIN = {"train_supervised", "train_meta", "finetune", "mine_pseudo", "evaluate", "report"} | TEMPORAL
DOWNSTREAM_OF_META = {"train_meta", "finetune", "evaluate", "report"} | TEMPORAL


def snakemake_plan(proj) -> set[str]:
    """Rules `snakemake -n` would run (empty when there is nothing to do)."""
    proc = run(["snakemake", "-n"], proj)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return set()
    table = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m for m in re.findall(r"^(\w+)\s+\d+\s*$", table, re.M)} - {"all", "job"}


def dvc_outdated(proj, dvc_file: str = "dvc.yaml") -> set[str]:
    """Stages of one dvc.yaml that `dvc status` reports (the spatial study has its own file)."""
    status = json.loads(run(["dvc", "status", "--json", dvc_file], proj).stdout or "{}")
    return {name.rpartition(":")[2].split("@")[0] for name in status}


def set_param(proj, dotted: str, value) -> None:
    path = proj / "params.yaml"
    params = yaml.safe_load(path.read_text())
    node = params
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def mlflow_runs(proj):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{proj / 'mlflow.db'}")
    experiments = client.search_experiments()
    assert [e.name for e in experiments if e.name != "Default"] == ["fer-pipeline"]
    exp = next(e for e in experiments if e.name == "fer-pipeline")
    return client.search_runs([exp.experiment_id], max_results=1000)


DOWNSTREAM_OF_RAFDB = {"prepare", "gather", "train_supervised", "train_meta", "finetune", "mine_pseudo", "evaluate",
                       "report"} | TEMPORAL


def user_copy_of_rafdb(proj, params) -> None:
    """A dataset the user brings (not an output of the DAG): FaceSynth's writer stands in
    for the download."""
    gen = params["generate"]
    world = World(gen["seed"] + 1, gen["render_size"], gen["nuisance_strength"], tuple(gen["intensity"]))
    write_rafdb_basic(world, proj / "external/rafdb", gen["rafdb"], gen["label_noise"])


def test_snakemake_run_then_both_tools_agree(tmp_path):
    params = tiny_params()
    params["datasets"]["rafdb"]["root"] = "external/rafdb"
    proj = make_project_copy(tmp_path, params)
    user_copy_of_rafdb(proj, params)
    run(["fer", "dvc-yaml"], proj)
    run(["snakemake", "--cores", "2"], proj)

    assert snakemake_plan(proj) == set(), "a finished run leaves nothing to do"
    assert dvc_outdated(proj) == set(), "Snakemake recorded its outputs in dvc.lock"

    runs = mlflow_runs(proj)
    jobs = sorted(r.data.tags["job"] for r in runs)
    assert jobs == ["evaluate@meta", "evaluate@supervised", "evaluate_temporal", "extract_features", "finetune",
                    "gather@affectnet", "gather@affwild2", "gather@ms1m", "gather@rafdb", "gather@webface",
                    "generate", "mine_pseudo", "prepare@affectnet-0", "prepare@affwild2-0", "prepare@affwild2-1",
                    "prepare@ms1m-0",
                    "prepare@rafdb-0", "prepare@rafdb-1", "prepare@webface-0", "report", "train_meta",
                    "train_supervised", "train_temporal"]
    for name in ("affectnet", "affwild2", "webface"):  # FaceSynth writes all five formats; the readers take them
        manifest = json.loads((proj / f"data/prepared/{name}/manifest.json").read_text())
        assert manifest["kept"] > 0 and manifest["kept"] + manifest["rejected"] == manifest["inputs"]
    assert len({r.data.tags["pipeline_id"] for r in runs}) == 1, "one pipeline id per invocation"
    train = next(r for r in runs if r.data.tags["job"] == "train_supervised")
    digest = json.loads((proj / "data/prepared/rafdb/manifest.json").read_text())["content_digest"]
    assert train.data.tags["data_version.rafdb"] == digest
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
    assert "FaceSynth" in summary and "| meta |" in summary and "| supervised |" in summary
    assert "Temporal phase" in summary and "| + post-processing |" in summary
    temporal = next(r for r in runs if r.data.tags["job"] == "train_temporal")
    assert "seed0.temporal.loss" in temporal.data.metrics  # step-wise curves in MLflow
    features = json.loads((proj / "data/features/affwild2/manifest.json").read_text())
    assert features["rows"] == json.loads((proj / "data/prepared/affwild2/manifest.json").read_text())["kept"]

    set_param(proj, "train.supervised.lr", 0.02)
    assert snakemake_plan(proj) == DOWNSTREAM_OF_TRAIN
    assert dvc_outdated(proj) == DOWNSTREAM_OF_TRAIN
    set_param(proj, "train.supervised.lr", 0.001)
    set_param(proj, "temporal.evaluate.postprocess.window", 5)
    assert snakemake_plan(proj) == {"evaluate_temporal", "report"}
    assert dvc_outdated(proj) == {"evaluate_temporal", "report"}
    set_param(proj, "temporal.evaluate.postprocess.window", 3)
    assert snakemake_plan(proj) == set() and dvc_outdated(proj) == set()

    # The user's raw copy: a touch that keeps the bytes changes nothing; other bytes in one
    # file outdate exactly rafdb's prepare jobs and what depends on them, in both tools; restoring
    # the bytes makes everything current again.
    image = sorted((proj / "external/rafdb/Image/aligned").glob("*.jpg"))[3]
    original = image.read_bytes()
    os.utime(image, (1e9, 1e9))
    assert snakemake_plan(proj) == set() and dvc_outdated(proj) == set()
    image.write_bytes(original + b"\0")  # a re-downloaded file with other bytes
    assert snakemake_plan(proj) == DOWNSTREAM_OF_RAFDB
    assert dvc_outdated(proj) == DOWNSTREAM_OF_RAFDB
    status = json.loads(run(["dvc", "status", "--json"], proj).stdout)
    assert {name for name in status if name.startswith(("prepare@", "gather@"))} == {
        "prepare@rafdb-0", "prepare@rafdb-1", "gather@rafdb"}, "other datasets are fine"
    image.write_bytes(original)
    assert snakemake_plan(proj) == set() and dvc_outdated(proj) == set()


def test_dvc_repro_then_both_tools_agree(tmp_path):
    proj = make_project_copy(tmp_path / "clone", tiny_params())
    run(["dvc", "repro"], proj)
    assert dvc_outdated(proj) == set()
    # The default remote is a folder beside the clone: push works out of the box.
    run(["dvc", "push"], proj)
    assert any((tmp_path / "fer-pipeline-dvc-remote").rglob("*")), "dvc push wrote to the default remote"
    assert snakemake_plan(proj) == set(), "Snakemake accepts what dvc repro made"
    assert len({r.data.tags["pipeline_id"] for r in mlflow_runs(proj)}) == 1

    set_param(proj, "train.meta.steps", 3)
    assert snakemake_plan(proj) == DOWNSTREAM_OF_META, "a parameter change after dvc repro is seen"
    assert dvc_outdated(proj) == DOWNSTREAM_OF_META

    # Snakemake brings it up to date; DVC then agrees without running anything.
    run(["snakemake", "--cores", "2"], proj)
    assert dvc_outdated(proj) == set()
    assert snakemake_plan(proj) == set()
    stamp = json.loads((proj / "models/meta/_stage.json").read_text())
    assert stamp["params"]["train.meta"]["steps"] == 3


def test_spatial_study_target_builds_the_tables_and_both_tools_agree(tmp_path):
    params = tiny_params()
    params["spatial"].update({"seeds": [0, 1], "labeled_fractions": [1.0], "ablation_fraction": 1.0,
                              "sl_epochs": 1, "meta_steps": 2})
    params["train"]["meta"]["batch_size"] = 4
    proj = make_project_copy(tmp_path, params)
    run(["fer", "dvc-yaml"], proj)  # two seeds instead of three: the study's dvc.yaml changes shape
    run(["snakemake", "--cores", "2", "report_spatial"], proj)
    assert not (proj / "models/supervised").exists(), "the study target does not build the main DAG's models"

    for seed in (0, 1):
        results = json.loads((proj / f"models/spatial/seed{seed}/results.json").read_text())
        assert set(results["results"]) == {"sl_100", "meta_100", "abl_s", "abl_su", "abl_suc"}
        assert results["mining"]["0"]["all"]["coverage"] is not None
        assert not list((proj / f"models/spatial/seed{seed}").rglob("*.pt")), "the study keeps numbers, not weights"
    tables = (proj / "reports/spatial/tables.md").read_text()
    assert "FaceSynth" in tables and "Table 4" in tables and "Table 6" in tables and "over 2 seeds" in tables
    data = json.loads((proj / "reports/spatial/tables.json").read_text())
    seed_means = [json.loads((proj / f"models/spatial/seed{s}/results.json").read_text())["results"]["sl_100"]
                  ["mean_class_accuracy"] for s in (0, 1)]
    assert abs(data["table4"]["SL 100 %"]["mean_class_accuracy"]["mean"] - 50 * sum(seed_means)) < 1e-9
    for name in ("table4", "table6", "pseudo_label_accuracy", "mining"):
        assert (proj / f"reports/spatial/{name}.png").stat().st_size > 0

    jobs = sorted(r.data.tags["job"] for r in mlflow_runs(proj))
    assert jobs == ["gather@ms1m", "gather@rafdb", "generate", "prepare@ms1m-0", "prepare@rafdb-0",
                    "prepare@rafdb-1", "report_spatial", "spatial_study@0", "spatial_study@1"]
    assert dvc_outdated(proj, "workflow/studies/spatial/dvc.yaml") == set()
    proc = run(["snakemake", "-n", "report_spatial"], proj)
    assert "Nothing to be done" in proc.stdout + proc.stderr

