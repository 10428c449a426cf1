"""What a job asks a scheduler for, and how its command is launched, from params.

params `resources.<stage>` holds what a user tunes per stage (gpus, mem_mb, runtime);
workflow/profiles/slurm holds where the site runs it (partition, account, GPU model).
A job's CPUs are the stage's own threads key, so the count the scheduler reserves is
the count the job uses.
"""

from __future__ import annotations

import os

from fer_pipeline.common.params import select
from fer_pipeline.common.params_checks import DDP_STAGES

# The params key that sets each stage's worker processes or torch threads (0 = all cores).
# Finetuning, the imbalance study and its distillation and auxiliary trainings run the
# supervised trainer's settings, the spatial study the meta one.
THREADS_KEYS = {
    "generate": "generate.workers",
    "prepare": "prepare.workers",
    "pretrain_fr": "train.pretrain_fr.threads",
    "train_supervised": "train.supervised.threads",
    "finetune": "train.supervised.threads",
    "train_meta": "train.meta.threads",
    "train_temporal": "temporal.train.threads",
    "spatial_study": "train.meta.threads",
    "imbalance_study": "train.supervised.threads",
    "distill": "train.supervised.threads",
    "train_auxiliary": "train.supervised.threads",
}


def gpus(params: dict, stage: str) -> int:
    return (params.get("resources") or {}).get(stage, {}).get("gpus", 0)


def processes(params: dict, stage: str) -> int:
    """How many processes the job starts: one per GPU for a data-parallel trainer."""
    n = gpus(params, stage)
    return n if n > 1 and stage in DDP_STAGES else 1


def launch(params: dict, stage: str, cmd: str) -> str:
    """The command as run: under torchrun, one process per GPU, when a data-parallel
    trainer asks for several (params_checks refuses that for the others)."""
    n = processes(params, stage)
    if n == 1:
        return cmd
    # --no-python: `fer` is a console script, torchrun runs it as it is.
    return f"torchrun --standalone --nproc_per_node={n} --no-python {cmd}"


def threads(params: dict, stage: str) -> int:
    """The CPUs the job uses: its threads key (0: every core of this machine) times its
    processes; 1 for a stage without one."""
    key = THREADS_KEYS.get(stage)
    if key is None:
        return 1
    value = select(params, key)
    return (value if value > 0 else (os.cpu_count() or 1)) * processes(params, stage)


def scheduler_resources(params: dict, stage: str) -> dict[str, int]:
    """Snakemake `resources:` of the stage's rule: `gpu` (the SLURM plugin's --gpus),
    mem_mb, runtime; only the keys params set, so the profile's defaults fill the rest."""
    given = dict((params.get("resources") or {}).get(stage, {}))
    n = given.pop("gpus", 0)
    return ({"gpu": n} if n > 0 else {}) | given
