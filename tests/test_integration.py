"""The tiny DAG end to end through Snakemake and through `dvc repro`, in temporary
copies of the project, and the two tools' answers to "what is outdated?"."""

import json
import re

import pytest
import yaml

from conftest import make_project_copy, run, tiny_params

pytestmark = pytest.mark.integration

# train_meta starts from the supervised baseline (params train.meta.init), so it is downstream of it.
DOWNSTREAM_OF_TRAIN = {"train_supervised", "train_meta", "finetune", "mine_pseudo", "evaluate", "report"}
DOWNSTREAM_OF_META = {"train_meta", "finetune", "evaluate", "report"}


def snakemake_plan(proj) -> set[str]:
    """Rules `snakemake -n` would run (empty when there is nothing to do)."""
    proc = run(["snakemake", "-n"], proj)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return set()
    table = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m for m in re.findall(r"^(\w+)\s+\d+\s*$", table, re.M)} - {"all", "job"}


def dvc_outdated(proj) -> set[str]:
    status = json.loads(run(["dvc", "status", "--json"], proj).stdout or "{}")
    return {name.split("@")[0] for name in status}


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


def test_snakemake_run_then_both_tools_agree(tmp_path):
    proj = make_project_copy(tmp_path, tiny_params())
    run(["snakemake", "--cores", "2"], proj)

    assert snakemake_plan(proj) == set(), "a finished run leaves nothing to do"
    assert dvc_outdated(proj) == set(), "Snakemake recorded its outputs in dvc.lock"

    runs = mlflow_runs(proj)
    jobs = sorted(r.data.tags["job"] for r in runs)
    assert jobs == ["evaluate@meta", "evaluate@supervised", "finetune", "generate", "mine_pseudo",
                    "prepare@ms1m", "prepare@rafdb", "report", "train_meta", "train_supervised"]
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
    assert mine.data.metrics["mined"] == mined["kept"] and mined["kept"] + mined["rejected"] == mined["inputs"]
    assert "mining.coverage.all.delta_0" in mine.data.metrics  # audited against FaceSynth's truth
    metrics = json.loads((proj / "reports/eval/supervised/metrics.json").read_text())
    assert metrics["n"] == sum(metrics["per_class_support"].values()) > 0
    summary = (proj / "reports/summary.md").read_text()
    assert "FaceSynth" in summary and "| meta |" in summary and "| supervised |" in summary

    set_param(proj, "train.supervised.lr", 0.02)
    assert snakemake_plan(proj) == DOWNSTREAM_OF_TRAIN
    assert dvc_outdated(proj) == DOWNSTREAM_OF_TRAIN


def test_dvc_repro_then_both_tools_agree(tmp_path):
    proj = make_project_copy(tmp_path, tiny_params())
    run(["dvc", "repro"], proj)
    assert dvc_outdated(proj) == set()
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
