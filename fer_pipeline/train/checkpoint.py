"""Checkpoints that resume to the same result: model, optimizer, scheduler, counters
and RNG state, written atomically (temp file + rename) so a crash never leaves a
truncated checkpoint behind."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from fer_pipeline.common.atomic import atomic_path


def save(path: Path, **state) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # torch.save names the archive's inner folder after the file name less its last
    # suffix: a temp name `<name>.tmp-<pid>` keeps the bytes those of a save to `path`.
    with atomic_path(path, hidden=False) as tmp:
        torch.save(state, tmp)


class CorruptCheckpointError(ValueError):
    """A checkpoint or model file exists but cannot be read (truncated, overwritten)."""


def load(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
        # torch's own message (PytorchStreamReader ...) names neither the file nor a way out.
        first_line = (str(exc).splitlines() or [""])[0][:160]
        raise CorruptCheckpointError(
            f"{path} cannot be read ({type(exc).__name__}: {first_line}): it is truncated or corrupt. "
            f"Delete it (rm '{path}') and run the stage again: a resume checkpoint restarts the stage "
            f"from scratch, a model file is rebuilt by the stage that writes it") from None


def tag_resumed(tracker, step: int) -> None:
    """Tag the job's MLflow run with the step training picked up again at: a resumed job
    continues its run (dag/tracking.py), so the curves go on from there, and the steps
    between the checkpoint and the kill appear twice."""
    set_tag = getattr(tracker, "set_tag", None)  # None: no tracking, or a tracker that logs metrics only
    if set_tag is not None:
        set_tag("resumed_at_step", step)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: Path, parts: dict, **progress) -> None:
    """A resumable checkpoint: each part's `state_dict()` under its name, the RNG state,
    then the run's progress (step, history, ...)."""
    save(path, **{name: part.state_dict() for name, part in parts.items()}, rng=rng_state(), **progress)


def load_state(path: Path, parts: dict) -> dict | None:
    """Restore `parts` and the RNG from the checkpoint `save_state` wrote, if there is
    one; returns the checkpoint (for its progress fields) or None."""
    state = load(path)
    if state is None:
        return None
    for name, part in parts.items():
        part.load_state_dict(state[name])
    restore_rng(state["rng"])
    return state
