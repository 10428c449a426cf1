"""MLflow tracking: one experiment, one run per stage execution.

The store is `sqlite:///mlflow.db` by default (MLflow 3 deprecates the file store),
taken from params `tracking.uri` unless MLFLOW_TRACKING_URI is set. Every run is
tagged with its stage, the git commit, the pipeline id shared by all stages of one
`snakemake` / `dvc repro` invocation, and the content digest of its input datasets.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from fer_pipeline.common.params import flatten, select
from fer_pipeline.common.processes import alive
from fer_pipeline.dag.provenance import git_commit, pipeline_id
from fer_pipeline.dag.stage import StageInstance
from fer_pipeline.dag.stages import uses_facesynth

log = logging.getLogger(__name__)


def tracking_uri(params: dict) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or params["tracking"]["uri"]


def _experiment_id(mlflow, params: dict) -> str:
    name = params["tracking"]["experiment"]
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    # Artifacts go to a folder beside the database, not the deprecated ./mlruns.
    root = Path(params["tracking"]["artifact_root"]).resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        return mlflow.create_experiment(name, artifact_location=root.as_uri())
    except Exception:  # created concurrently by a parallel job
        found = mlflow.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _with_retries(fn, attempts: int = 5):
    """Parallel Snakemake jobs may open a fresh SQLite store at the same moment (schema
    migration, experiment creation); the loser of that race retries."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # sqlalchemy OperationalError / IntegrityError, MlflowException
            if attempt == attempts - 1:
                raise
            log.warning("MLflow store busy (%s); retrying", type(exc).__name__)
            time.sleep(1.0 + attempt)


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """One process at a time opens a SQLite store: the first open migrates the schema,
    and two migrations racing leave a half-built table behind that no retry repairs."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock = Path(uri.removeprefix("sqlite:///") + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _close_killed_runs(mlflow, experiment_id: str, job: str, host: str) -> None:
    """Mark as KILLED the runs of this job still RUNNING whose process is gone (a job
    killed mid-way never closes its run; its rerun does). Runs of live processes, or
    from other hosts, are left alone."""
    client = mlflow.tracking.MlflowClient()
    stale = client.search_runs([experiment_id], filter_string=f"tags.job = '{job}' and attributes.status = 'RUNNING'")
    for run in stale:
        pid = run.data.tags.get("pid", "")
        if run.data.tags.get("host") != host or not pid.isdigit() or alive(int(pid)):
            continue
        client.set_terminated(run.info.run_id, status="KILLED")
        log.warning("MLflow run %s of %s (process %s) was left RUNNING by a killed job: marked KILLED",
                    run.info.run_id, job, pid)


@contextlib.contextmanager
def stage_run(params: dict, inst: StageInstance, data_versions: dict[str, str] | None = None) -> Iterator:
    """Open an MLflow run for one stage job; yields the `mlflow` module."""
    import mlflow  # imported lazily: it costs seconds and only stages need it

    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(params))
    with _store_lock(tracking_uri(params)):
        experiment_id = _with_retries(lambda: _experiment_id(mlflow, params))
    tags = {
        "stage": inst.stage.name,
        "job": inst.name,
        "git_commit": git_commit(),
        "pipeline_id": pipeline_id(),
        "demo_data": "FaceSynth" if uses_facesynth(params) else "no",
    }
    for dataset, version in (data_versions or {}).items():
        tags[f"data_version.{dataset}"] = version
    tags.update({"host": socket.gethostname(), "pid": str(os.getpid())})
    _close_killed_runs(mlflow, experiment_id, inst.name, tags["host"])
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{inst.name}", tags=tags) as run:
        values = {}
        for key in inst.params:
            values.update(flatten(select(params, key), f"{key}."))
        # MLflow caps a param value at 6000 chars; ours are short scalars or lists.
        mlflow.log_params({k: str(v) for k, v in values.items()})
        log.info("MLflow run %s (experiment %s, pipeline %s)", run.info.run_id, experiment_id, tags["pipeline_id"])
        yield mlflow
