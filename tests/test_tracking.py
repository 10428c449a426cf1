"""What a stage command records in MLflow: one real, cheap stage (`fer report`) in a
throw-away project whose inputs are hand-made, read back with MlflowClient."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from conftest import tiny_params, tool_env
from fer_pipeline.common.params import flatten


def _metrics(n: int) -> dict:
    return {"dataset": "rafdb", "n": n, "overall_accuracy": 0.5, "mean_class_accuracy": 0.5,
            "std_class_accuracy": 0.1, "macro_f1": 0.4, "per_class_accuracy": {"neutral": 0.5}}


def test_fer_report_logs_its_params_tags_and_artifacts(tmp_path):
    from mlflow.tracking import MlflowClient

    from fer_pipeline.dag.stages import evaluated_models
    from fer_pipeline.reporting.temporal import build_table

    params = tiny_params()
    params["report"]["out_dir"] = "out/report"  # not the default: the logged value must come from params
    params["tracking"]["experiment"] = "tracking-test"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The inputs `fer report` reads, each with the stamp of the job that makes it
    # (dag/runner.py check_inputs refuses an input whose producing job did not finish).
    for model in evaluated_models(params):  # supervised, control, meta
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
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    [run] = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'job'")
    assert run.info.status == "FINISHED"
    # The invocation's parent run: the job sits under it, and it ended when the job did.
    [parent] = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'pipeline'")
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.data.tags["pipeline_id"] == "pipeline-under-test" and parent.info.status == "FINISHED"
    assert run.data.params == {k: str(v) for k, v in flatten(params["report"], "report.").items()}
    assert run.data.params["report.out_dir"] == "out/report"
    tags = run.data.tags
    assert tags["stage"] == "report" and tags["job"] == "report"
    assert tags["git_commit"] == head, "the commit of the project the command ran in (clean tree)"
    assert tags["pipeline_id"] == "pipeline-under-test"
    assert tags["demo_data"] == "FaceSynth"
    inputs = {f"{params['evaluate']['out_dir']}/{m}/metrics.json" for m in evaluated_models(params)}
    inputs.add(f"{params['temporal']['evaluate']['out_dir']}/metrics.json")
    assert {k.removeprefix("data_version.") for k in tags if k.startswith("data_version.")} == inputs
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"summary.md", "summary.json"}
    stamp = json.loads((tmp_path / "out/report/_stage.json").read_text())
    assert stamp["pipeline_id"] == "pipeline-under-test" and set(stamp["inputs"]) == inputs


# ---- a resumed training job continues its run (dag/tracking.py, RUN_ID_FILE) ----

# A training job's process killed mid-way: it opens the job's run with its work folder,
# logs `loss` at steps 0..2, leaves a checkpoint, and is killed before closing its run.
_KILLED_JOB = """
import os, signal
from pathlib import Path
import yaml
from fer_pipeline.dag.lineage import get_instance
from fer_pipeline.dag.tracking import stage_run

params = yaml.safe_load(Path("params.yaml").read_text())
with stage_run(params, get_instance(params, "train_supervised"), {}, Path("work")) as mlflow:
    for step in range(3):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    Path("work/last.pt").write_bytes(b"a checkpoint at step 2")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _training_job(params: dict, first: int, last: int) -> str:
    """The same job run to the end in this process, as a trainer resumed at `first` (0:
    from scratch) logs and tags; returns its run id."""
    from fer_pipeline.dag.lineage import get_instance
    from fer_pipeline.dag.tracking import stage_run
    from fer_pipeline.train.checkpoint import tag_resumed

    with stage_run(params, get_instance(params, "train_supervised"), {}, Path("work")) as mlflow:
        if first:
            tag_resumed(mlflow, first)
        for step in range(first, last + 1):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        Path("work/last.pt").unlink(missing_ok=True)  # finished: nothing left to resume
        return mlflow.active_run().info.run_id


@pytest.fixture(scope="module")
def migrated_store():
    """An empty MLflow store, its schema built once for these tests and copied into each:
    building it takes seconds of fsyncs (less on tmpfs, where it is built when there is one)."""
    from mlflow.tracking import MlflowClient

    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as folder:
        path = Path(folder) / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
        yield path


@pytest.fixture
def resume_project(tmp_path, monkeypatch, migrated_store):
    params = tiny_params()
    params["tracking"]["experiment"] = "resume-test"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copyfile(migrated_store, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("FER_PIPELINE_ID", "resume-test")
    return params


def _runs():
    from mlflow.tracking import MlflowClient

    # Absolute: MLflow caches a store per URI string, and other tests in this process
    # open `sqlite:///mlflow.db` from other folders.
    client = MlflowClient(tracking_uri=f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("resume-test")
    return client, experiment.experiment_id, client.search_runs([experiment.experiment_id],
                                                                 filter_string="tags.kind = 'job'")


def test_an_experiment_made_earlier_gets_its_tags_and_a_users_saved_view_is_kept(resume_project):
    import mlflow
    from mlflow.tracking import MlflowClient

    from fer_pipeline.dag.tracking import EXPERIMENT_KIND, _experiment_id, tracking_uri
    from fer_pipeline.dag.tracking_view import VIEW_NAME, VIEW_TAG, metric_column

    uri = tracking_uri(resume_project)
    client = MlflowClient(tracking_uri=uri)
    earlier = client.create_experiment("resume-test")  # as before the pipeline tagged it
    mlflow.set_tracking_uri(uri)
    assert _experiment_id(mlflow, resume_project) == earlier
    tags = client.get_experiment(earlier).tags
    assert tags[EXPERIMENT_KIND[0]] == EXPERIMENT_KIND[1]
    # The envelope MLflow's UI accepts as a saved view (name, createdAt, state as a string).
    view = json.loads(tags[VIEW_TAG])
    assert view["name"] == VIEW_NAME and isinstance(view["createdAt"], int)
    assert metric_column("mean_class_accuracy") in json.loads(view["state"])["selectedColumns"]

    client.set_experiment_tag(earlier, VIEW_TAG, "the view as a user overrode it")
    client.set_experiment_tag(earlier, EXPERIMENT_KIND[0], "genai_development")
    _experiment_id(mlflow, resume_project)
    tags = client.get_experiment(earlier).tags
    assert tags[VIEW_TAG] == "the view as a user overrode it"
    assert tags[EXPERIMENT_KIND[0]] == EXPERIMENT_KIND[1]


def test_a_resumed_job_continues_its_run_at_the_step_it_stopped(resume_project, tmp_path):
    from fer_pipeline.dag.tracking import RUN_ID_FILE

    killed = subprocess.run([sys.executable, "-c", _KILLED_JOB], cwd=tmp_path, capture_output=True, text=True,
                            env={**tool_env(), "FER_PIPELINE_ID": "resume-test"}, timeout=120)
    assert killed.returncode == -9, killed.stderr[-3000:]
    run_id = _training_job(resume_project, 3, 4)

    client, _, runs = _runs()
    assert [r.info.run_id for r in runs] == [run_id], "the resumed job went on in the killed job's run"
    assert runs[0].info.status == "FINISHED" and runs[0].data.tags["resumed_at_step"] == "3"
    assert runs[0].data.tags["pid"] == str(os.getpid()), "the run names the process that finished it"
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [0, 1, 2, 3, 4]
    assert not (tmp_path / "work" / RUN_ID_FILE).exists(), "finished: nothing to continue"

    assert _training_job(resume_project, 0, 1) != run_id, "the job run again from scratch: a new run"


def test_a_job_killed_before_its_first_checkpoint_starts_a_new_run(resume_project, tmp_path):
    from fer_pipeline.dag.tracking import RUN_ID_FILE

    first = _training_job(resume_project, 0, 1)
    client, experiment_id, _ = _runs()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = client.create_run(experiment_id, tags={"job": "train_supervised", "host": socket.gethostname(),
                                                    "pid": str(dead.pid)})
    (tmp_path / "work" / RUN_ID_FILE).write_text(killed.info.run_id)
    (tmp_path / "work" / ".last.pt.tmp-999999").write_bytes(b"half")  # a half-written checkpoint is no progress
    again = _training_job(resume_project, 0, 1)
    assert again not in (first, killed.info.run_id)
    assert client.get_run(killed.info.run_id).info.status == "KILLED"
    assert [m.step for m in client.get_metric_history(again, "loss")] == [0, 1]


def test_only_a_job_that_resumes_from_its_work_folder_passes_it_to_its_run(params):
    from types import SimpleNamespace

    from fer_pipeline.dag.lineage import get_instance
    from fer_pipeline.dag.runner import resume_dir, work_dir

    trainer = SimpleNamespace(STAGE="train_supervised", RESUME_FLAG="train.supervised.resume")
    inst = get_instance(params, "train_supervised")
    assert resume_dir(trainer, params, inst) == work_dir(params, inst)
    params["train"]["supervised"]["resume"] = False  # the trainer starts over: so does its run
    assert resume_dir(trainer, params, inst) is None
    assert resume_dir(SimpleNamespace(STAGE="evaluate"), params, get_instance(params, "evaluate", "supervised")) is None


@pytest.mark.parametrize("command", ["train_supervised", "pretrain_fr", "train_meta", "train_temporal", "finetune"])
def test_each_training_job_names_its_resume_flag(command, params):
    """Read from the source (importing the jobs costs torch's import): the flag is a
    boolean params key of the job's own recipe."""
    import ast

    from fer_pipeline.common.params import select

    tree = ast.parse((Path(__file__).resolve().parents[1] / f"fer_pipeline/jobs/{command}.py").read_text())
    flags = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
             and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["RESUME_FLAG"]]
    assert len(flags) == 1 and flags[0].endswith(".resume") and isinstance(select(params, flags[0]), bool)
