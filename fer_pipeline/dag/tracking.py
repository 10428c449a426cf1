"""MLflow tracking: one experiment, one run per stage execution.

The store is `sqlite:///mlflow.db` by default (MLflow 3 deprecates the file store),
taken from params `tracking.uri` unless MLFLOW_TRACKING_URI is set; an http URI names a
tracking server (`fer server`), which stores the artifacts (dag/tracking_location.py).
Every run is tagged with its stage, the git commit, the pipeline id shared by all
stages of one `snakemake` / `dvc repro` invocation, the content digest of its input
datasets, and under `dvc exp run` the DVC experiment's name.
The runs of one invocation are the children of one parent run (PIPELINE_KIND), so
MLflow's runs table shows each pipeline as one row that unfolds into its jobs.

A training job killed mid-way and resumed from the checkpoint in its work folder
continues its MLflow run rather than starting a new one: the run's id waits in the work
folder (RUN_ID_FILE) while the job is unfinished, so its metric curves go on at the step
the checkpoint holds.
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

from fer_pipeline.common.atomic import is_temp_name, write_text
from fer_pipeline.common.params import flatten, select
from fer_pipeline.common.processes import alive
from fer_pipeline.dag.provenance import git_commit, pipeline_id
from fer_pipeline.dag.stage import StageInstance
from fer_pipeline.dag.stages import uses_facesynth
from fer_pipeline.dag.tracking_location import artifact_location, dvc_experiment_tags, store_uri
from fer_pipeline.dag.tracking_view import VIEW_TAG, view_tag_value

log = logging.getLogger(__name__)


def tracking_uri(params: dict) -> str:
    return store_uri(params)


# The experiment declares itself a model-training one. MLflow 3.17.2's UI reads this tag
# only while its GenAI / Model training switch is off, and 3.17.2 turns the switch on for
# good: there the switch, not the tag, decides where the experiment opens (docs/dag.md,
# "MLflow"). Kept: the UI's code still reads it wherever that switch is off.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def _missing_tags(tags: dict[str, str]) -> dict[str, str]:
    """The experiment tags to set, given those it has: its kind unless already so, and
    the saved view of the headline metrics unless there (a user who overrides that view
    in the UI keeps their version)."""
    missing = {}
    if tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
        missing[EXPERIMENT_KIND[0]] = EXPERIMENT_KIND[1]
    if VIEW_TAG not in tags:
        missing[VIEW_TAG] = view_tag_value(int(time.time() * 1000))
    return missing


def _experiment_id(mlflow, params: dict) -> str:
    name = params["tracking"]["experiment"]
    found = mlflow.get_experiment_by_name(name)
    if found is not None:  # perhaps made before a tag was set
        for key, value in _missing_tags(found.tags).items():
            mlflow.MlflowClient().set_experiment_tag(found.experiment_id, key, value)
        return found.experiment_id
    # Artifacts go to a folder beside the database, not the deprecated ./mlruns; a
    # tracking server chooses (its artifact proxy: clients share no disk).
    try:
        return mlflow.create_experiment(name, artifact_location=artifact_location(params, tracking_uri(params)),
                                        tags=_missing_tags({}))
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
    with _file_lock(Path(uri.removeprefix("sqlite:///") + ".lock")):
        yield


@contextlib.contextmanager
def _file_lock(lock: Path) -> Iterator[None]:
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


PIPELINE_KIND = ("kind", "pipeline")  # the tag of a pipeline's parent run (its jobs' runs: kind = job)
PIPELINE_LOCK_DIR = Path(".fer/locks")


def _pipeline_run(mlflow, experiment_id: str, tags: dict) -> str:
    """The id of this invocation's parent run, made by the first of its jobs to ask.

    Parallel jobs ask at the same moment: a lock file per pipeline id (in the project,
    so every job of a local or shared-filesystem run sees it) lets one create it while
    the others wait, then find it. Should two parents exist all the same (jobs on hosts
    that share no lock), every job picks the oldest, so later jobs still agree."""
    client = mlflow.MlflowClient()
    query = f"tags.pipeline_id = '{tags['pipeline_id']}' and tags.{PIPELINE_KIND[0]} = '{PIPELINE_KIND[1]}'"

    def oldest():
        found = client.search_runs([experiment_id], filter_string=query, max_results=50)
        return min(found, key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id if found else None

    with _file_lock(PIPELINE_LOCK_DIR / f"pipeline-{tags['pipeline_id']}.lock"):
        if (run_id := oldest()) is not None:
            return run_id
        keep = ("pipeline_id", "git_commit", "demo_data")
        client.create_run(experiment_id, run_name=f"pipeline {tags['pipeline_id']}",
                          tags={**{k: tags[k] for k in keep}, PIPELINE_KIND[0]: PIPELINE_KIND[1]})
        return oldest()


@contextlib.contextmanager
def _pipeline_status(mlflow, run_id: str) -> Iterator[None]:
    """The parent run's status follows its jobs: RUNNING while one runs, FINISHED when
    one ends (its end time then the last job's), FAILED for good once one fails."""
    client = mlflow.MlflowClient()

    def mark(status: str) -> None:
        if client.get_run(run_id).info.status == "FAILED":
            return
        if status == "RUNNING":
            client.update_run(run_id, status="RUNNING")
        else:
            client.set_terminated(run_id, status=status)

    mark("RUNNING")
    try:
        yield
    except BaseException:
        mark("FAILED")
        raise
    mark("FINISHED")


RUN_ID_FILE = "mlflow_run_id"  # in a job's work folder while the job is unfinished


def _may_be_live(run, host: str) -> bool:
    """True unless the run's process is known to be gone (a run from another host, or
    without a pid, may belong to a live process)."""
    pid = run.data.tags.get("pid", "")
    return run.data.tags.get("host") != host or not pid.isdigit() or alive(int(pid))


def _close_killed_runs(mlflow, experiment_id: str, job: str, host: str, keep: str | None = None) -> None:
    """Mark as KILLED the runs of this job still RUNNING whose process is gone (a job
    killed mid-way never closes its run; its rerun does). Runs of live processes, or
    from other hosts, are left alone, and so is `keep` (the run a resumed job continues)."""
    client = mlflow.tracking.MlflowClient()
    stale = client.search_runs([experiment_id], filter_string=f"tags.job = '{job}' and attributes.status = 'RUNNING'")
    for run in stale:
        if run.info.run_id == keep or _may_be_live(run, host):
            continue
        client.set_terminated(run.info.run_id, status="KILLED")
        log.warning("MLflow run %s of %s (process %s) was left RUNNING by a killed job: marked KILLED",
                    run.info.run_id, job, run.data.tags.get("pid"))


def has_progress(work_dir: Path) -> bool:
    """The work folder holds something to resume from (a checkpoint, a finished part):
    any finished file besides the run id."""
    return work_dir.is_dir() and any(path.is_file() and path.name != RUN_ID_FILE and not is_temp_name(path.name)
                                     for path in work_dir.rglob("*"))


def run_to_continue(mlflow, work_dir: Path | None, experiment_id: str, host: str) -> str | None:
    """The id of the run a resumed job continues: the one its work folder names, when
    the folder holds progress to resume from and that run is still in this experiment
    and not held by a live process; None for a fresh start."""
    if work_dir is None or not (work_dir / RUN_ID_FILE).is_file() or not has_progress(work_dir):
        return None
    run_id = (work_dir / RUN_ID_FILE).read_text(encoding="utf-8").strip()
    try:
        run = mlflow.tracking.MlflowClient().get_run(run_id)
    except Exception:  # MlflowException: not in this store (another tracking URI, deleted for good)
        log.warning("MLflow run %s named in %s is not in the store: starting a new run", run_id, work_dir)
        return None
    if run.info.experiment_id != experiment_id or run.info.lifecycle_stage != "active":
        return None
    if run.info.status == "RUNNING" and _may_be_live(run, host):
        return None
    return run_id


@contextlib.contextmanager
def stage_run(params: dict, inst: StageInstance, data_versions: dict[str, str] | None = None,
              work_dir: Path | None = None) -> Iterator:
    """Open an MLflow run for one stage job; yields the `mlflow` module. `work_dir`: the
    folder a resumable job resumes from (None: the job does not resume); a job resumed
    from it continues the run it started there."""
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
    tags.update(dvc_experiment_tags())
    tags.update({"host": socket.gethostname(), "pid": str(os.getpid())})
    parent = _with_retries(lambda: _pipeline_run(mlflow, experiment_id, tags))
    # As a tag, not start_run's parent_run_id: a continued run moves to this invocation too.
    tags.update({PIPELINE_KIND[0]: "job", "mlflow.parentRunId": parent})
    previous = run_to_continue(mlflow, work_dir, experiment_id, tags["host"])
    _close_killed_runs(mlflow, experiment_id, inst.name, tags["host"], keep=previous)
    where = {"run_id": previous} if previous else {"experiment_id": experiment_id}
    with _pipeline_status(mlflow, parent), mlflow.start_run(**where, run_name=inst.name, tags=tags) as run:
        if work_dir is not None:
            work_dir.mkdir(parents=True, exist_ok=True)
            write_text(work_dir / RUN_ID_FILE, run.info.run_id)
        values = {}
        for key in inst.params:
            values.update(flatten(select(params, key), f"{key}."))
        # MLflow caps a param value at 6000 chars; ours are short scalars or lists.
        mlflow.log_params({k: str(v) for k, v in values.items()})
        log.info("MLflow run %s%s (experiment %s, pipeline %s)", run.info.run_id,
                 ", continued: the job resumes from its checkpoint" if previous else "", experiment_id,
                 tags["pipeline_id"])
        yield mlflow
    if work_dir is not None:  # finished: the next run of this job is a fresh one
        (work_dir / RUN_ID_FILE).unlink(missing_ok=True)
