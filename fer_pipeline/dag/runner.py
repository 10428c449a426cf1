"""The one wrapper every stage command runs in: find the job in the stage list, take
its lock (dag/joblock.py), take its inputs' versions, open its MLflow run, run it, write
its stamp.

A stage's module (`fer_pipeline/jobs/<command>.py`) declares `STAGE` (its name in the
stage list), optionally `item(args, params)` (which job of a scattered stage) and
`RESUME_FLAG` (the params key saying whether it resumes from the checkpoint in its work
folder: then a resumed job continues its MLflow run), optionally `SPLITS` (the splits of
its prepared datasets it reads, logged as the run's dataset inputs; default: all), and
`run(job)`, which does the
science and returns what the stamp should record. It reads
its paths from `job.inst` (the stage list), never re-derives them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from fer_pipeline.common.atomic import remove_dead_temps
from fer_pipeline.common.params import select
from fer_pipeline.dag.joblock import job_lock
from fer_pipeline.dag.lineage import get_instance, upstream
from fer_pipeline.dag.provenance import input_versions, write_stamp
from fer_pipeline.dag.stage import StageInstance, is_under

log = logging.getLogger(__name__)


@dataclass
class Job:
    """What a stage's `run` gets: the params, the parsed arguments, its job in the stage
    list, and the MLflow module (None on the non-zero ranks of a torchrun launch)."""

    params: dict
    args: Any
    inst: StageInstance
    tracker: Any
    inputs: dict[str, str]
    logged_models: dict[str, dict] = field(default_factory=dict)  # name -> what the stamp records

    @property
    def is_main_process(self) -> bool:
        return self.tracker is not None

    def work_dir(self) -> Path:
        """Where an in-progress checkpoint lives: keyed by the job's key, outside its
        outputs (the tools delete outputs before a rerun; a checkpoint made with other
        parameters or code must never be resumed)."""
        return work_dir(self.params, self.inst)

    def data_versions(self) -> dict[str, str]:
        """Input versions by name (the tags runs are compared by)."""
        return version_names(self.params, self.inputs)

    def log_bundle(self, model_dir: str | Path, bundle: str = "model.pt", name: str = "model") -> None:
        """The trained network in `model_dir` as the run's logged model `name`."""
        from fer_pipeline.dag.tracked_models import log_bundle

        if self.tracker is not None:
            self.logged_models[name] = log_bundle(self.tracker, model_dir, bundle, name)

    def log_model(self, name: str, log) -> None:
        """Record a logged model: `log(tracker) -> what the stamp records` (dag/tracked_models.py)."""
        if self.tracker is not None:
            self.logged_models[name] = log(self.tracker)

    def log_artifacts(self, folder: str | Path, names: tuple[str, ...] | None = None,
                      suffixes: tuple[str, ...] = (".md", ".json", ".png", ".csv")) -> None:
        if self.tracker is None:
            return
        folder = Path(folder)
        paths = [folder / n for n in names] if names else sorted(p for p in folder.glob("*") if p.suffix in suffixes)
        for path in paths:
            self.tracker.log_artifact(str(path))


def work_dir(params: dict, inst: StageInstance) -> Path:
    """A job's work folder (see Job.work_dir)."""
    from fer_pipeline.dag.provenance import expected_key

    return Path(".fer/work") / inst.name / expected_key(params, inst)


def resume_dir(module: ModuleType, params: dict, inst: StageInstance) -> Path | None:
    """The work folder a job resumes from, when its module says it resumes and its
    params let it (None otherwise: its MLflow run is always a new one)."""
    flag = getattr(module, "RESUME_FLAG", None)
    return work_dir(params, inst) if flag is not None and select(params, flag) else None


def version_names(params: dict, inputs: dict[str, str]) -> dict[str, str]:
    """`rafdb` for a prepared dataset, the path for any other input (a model, features)."""
    prep_dir = params["prepare"]["out_dir"].rstrip("/")
    return {(path[len(prep_dir) + 1:] if path.startswith(prep_dir + "/") else path): digest
            for path, digest in inputs.items()}


def launched_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))


def check_inputs(params: dict, inst: StageInstance) -> None:
    """Every input exists and, when a job writes it, that job finished (its stamp is
    there): otherwise one line naming the input and the command that makes it."""
    for dep in inst.deps:
        producer = next((up for up in upstream(params, inst) if any(is_under(dep, out) or is_under(out, dep)
                                                                   for out in up.all_outputs)), None)
        if producer is None:
            if not Path(dep).exists():
                raise FileNotFoundError(f"input {dep} not found (a path params.yaml names; check it)")
            continue
        if not Path(dep).exists() or not Path(producer.stamp).exists():
            raise FileNotFoundError(f"input {dep} not found or incomplete: it is made by job {producer.name} "
                                    f"(`{producer.cmd}`); run that first, or `snakemake`")


def run_stage(module: ModuleType, params: dict, args) -> None:
    item = module.item(args, params) if hasattr(module, "item") else None
    inst = get_instance(params, module.STAGE, item)
    # Under torchrun every rank runs this: rank 0 holds the job's lock for them all.
    with job_lock(inst.name) if launched_rank() == 0 else contextlib.nullcontext():
        _run_job(module, params, args, inst)


def _run_job(module: ModuleType, params: dict, args, inst: StageInstance) -> None:
    from fer_pipeline.dag.tracked_data import log_datasets
    from fer_pipeline.dag.tracking import stage_run

    check_inputs(params, inst)
    for out in inst.all_outputs:
        for path in remove_dead_temps(out):
            log.warning("removed %s, left by a job that was killed while writing", path)
    # Taken before reading: a file changed while the job runs leaves it outdated.
    inputs = input_versions(inst)
    if launched_rank() != 0:  # under torchrun, rank 0 alone tracks, writes and stamps
        module.run(Job(params, args, inst, None, inputs))
        return
    with stage_run(params, inst, version_names(params, inputs), resume_dir(module, params, inst)) as mlflow:
        log_datasets(mlflow, params, inputs, getattr(module, "SPLITS", None))
        job = Job(params, args, inst, mlflow, inputs)
        record = module.run(job) or {}
        tracked = {"run_id": mlflow.active_run().info.run_id, "models": job.logged_models}
    write_stamp(params, inst, {"inputs": inputs, "mlflow": tracked, **record})
