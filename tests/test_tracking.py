"""What a stage command records in MLflow: one real, cheap stage (`fer report`) in a
throw-away project whose inputs are hand-made, read back with MlflowClient."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from conftest import tiny_params, tool_env
from fer_pipeline.common.params import flatten


def _metrics(n: int) -> dict:
    return {"dataset": "rafdb", "n": n, "overall_accuracy": 0.5, "mean_class_accuracy": 0.5,
            "std_class_accuracy": 0.1, "macro_f1": 0.4, "per_class_accuracy": {"neutral": 0.5}}


def test_fer_report_logs_its_params_tags_and_artifacts(tmp_path):
    from mlflow.tracking import MlflowClient

    from fer_pipeline.reporting.temporal import build_table

    params = tiny_params()
    params["report"]["out_dir"] = "out/report"  # not the default: the logged value must come from params
    params["tracking"]["experiment"] = "tracking-test"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The inputs `fer report` reads, each with the stamp of the job that makes it
    # (dag/runner.py check_inputs refuses an input whose producing job did not finish).
    for model in ("supervised", "meta"):
        folder = tmp_path / params["evaluate"]["out_dir"] / model
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(_metrics(40)))
        (folder / "_stage.json").write_text("{}")
    rows = {name: {"macro_f1": 0.5, "accuracy": 0.5, "switches_per_100_frames": 1.0, "per_class_f1": {"neutral": 0.5},
                   "n": 10} for name in ("frame-level", "+ temporal encoder", "+ post-processing",
                                         "frame-level + post-processing (control)")}
    temporal = tmp_path / params["temporal"]["evaluate"]["out_dir"]
    temporal.mkdir(parents=True)
    table = build_table({0: {**rows, "truth": {"switches_per_100_frames": 1.0}}})
    (temporal / "metrics.json").write_text(json.dumps({"table": table}))
    (temporal / "_stage.json").write_text("{}")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "inputs"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout.strip()

    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    env = {**tool_env(), "MLFLOW_TRACKING_URI": uri, "FER_PIPELINE_ID": "pipeline-under-test"}
    proc = subprocess.run([sys.executable, "-m", "fer_pipeline.cli", "report"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out/report/summary.md").exists() and (tmp_path / "out/report/_stage.json").exists()
    assert not (tmp_path / "mlflow.db").exists(), "MLFLOW_TRACKING_URI overrides tracking.uri"

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tracking-test")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params == {k: str(v) for k, v in flatten(params["report"], "report.").items()}
    assert run.data.params["report.out_dir"] == "out/report"
    tags = run.data.tags
    assert tags["stage"] == "report" and tags["job"] == "report"
    assert tags["git_commit"] == head, "the commit of the project the command ran in (clean tree)"
    assert tags["pipeline_id"] == "pipeline-under-test"
    assert tags["demo_data"] == "FaceSynth"
    inputs = {f"{params['evaluate']['out_dir']}/{m}/metrics.json" for m in ("supervised", "meta")}
    inputs.add(f"{params['temporal']['evaluate']['out_dir']}/metrics.json")
    assert {k.removeprefix("data_version.") for k in tags if k.startswith("data_version.")} == inputs
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"summary.md", "summary.json"}
    stamp = json.loads((tmp_path / "out/report/_stage.json").read_text())
    assert stamp["pipeline_id"] == "pipeline-under-test" and set(stamp["inputs"]) == inputs
