"""A job SIGKILLed at a random-but-seeded point (the N-th call of a function it runs,
N drawn from random.Random(f"{SEED}-<job>")), then run again: the rerun's output equals
the uninterrupted run's (the session's base project), no temp file or folder is left,
the killed run left no output that looks finished, and its MLflow run is not left
RUNNING. Records lost = reference rows (entries) missing from the rerun's output."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from ._support import SEED, copy_project, fer_injected, mlflow_runs, run, temp_litter


def _rows(folder: Path, pattern: str) -> list[dict]:
    rows = []
    for path in sorted(folder.glob(pattern)):
        rows += pq.read_table(path).to_pylist()
    return rows


def _same_rows(ref: Path, new: Path, pattern: str) -> int:
    """Reference rows missing from the rerun; the rerun must hold the same rows, in order."""
    ref_rows, new_rows = _rows(ref, pattern), _rows(new, pattern)
    assert new_rows == ref_rows
    return len(ref_rows) - sum(1 for r in ref_rows if r in new_rows)


def _kill_point(job: str, choices: list[tuple[str, int, int]]) -> tuple[str, int]:
    """(target, N): one of the (target, first, last) ranges, N uniform in it, seeded."""
    rng = random.Random(f"{SEED}-{job}")
    target, first, last = rng.choice(choices)
    return target, rng.randint(first, last)


def _shard_rows(folder: Path) -> list[int]:
    return [pq.ParquetFile(p).metadata.num_rows for p in sorted(folder.glob("*.parquet")) if "reject" not in p.name]


def _prepare(base):
    kept = json.loads((base / "data/prepared/_parts/rafdb/0/manifest.json").read_text())["kept"]
    return [("fer_pipeline.data.prep.shards:ShardWriter.add", 1, kept)]


def _gather(base):
    shards = len(json.loads((base / "data/prepared/rafdb/manifest.json").read_text())["shards"])
    return [("fer_pipeline.data.prep.gather:_link", 1, shards), ("fer_pipeline.data.prep.gather:write_manifest", 1, 1)]


def _train(base):
    history = json.loads((base / "models/supervised/history.json").read_text())
    epochs = history["epochs"] if isinstance(history, dict) and "epochs" in history else history
    steps = epochs[-1]["step"]
    per_epoch = steps // len(epochs)
    # After the first epoch's checkpoint, so the rerun resumes; or while writing a checkpoint.
    return [("torch.optim:Adam.step", per_epoch + 1, steps), ("fer_pipeline.train.checkpoint:save_state", 1, 2)]


def _extract(base):
    batches = sum(-(-n // 4) for n in _shard_rows(base / "data/prepared/affwild2"))  # batch_size 4 (fault_params)
    return [("fer_pipeline.temporal.features:FrameEmbedder.__call__", 1, batches)]


def _compare_prepare(base, proj):
    out = "data/prepared/_parts/rafdb/0"
    ref, new = (json.loads((p / out / "manifest.json").read_text()) for p in (base, proj))
    assert new == ref
    assert _rows(base / out, "rejects.parquet") == _rows(proj / out, "rejects.parquet")
    return _same_rows(base / out, proj / out, "shard-*.parquet")


def _compare_gather(base, proj):
    out = "data/prepared/rafdb"
    ref, new = (json.loads((p / out / "manifest.json").read_text()) for p in (base, proj))
    assert new == ref
    return _same_rows(base / out, proj / out, "shard-*.parquet")


def _compare_train(base, proj):
    ref, new = (torch.load(p / "models/supervised/model.pt", map_location="cpu", weights_only=True) for p in (base, proj))
    ref_sd, new_sd = ref["state_dict"] if "state_dict" in ref else ref, new["state_dict"] if "state_dict" in new else new
    assert ref_sd.keys() == new_sd.keys()
    differ = [k for k in ref_sd if torch.is_tensor(ref_sd[k]) and not torch.equal(ref_sd[k], new_sd[k])]
    assert not differ, f"weights differ from the uninterrupted run's: {differ[:5]}"
    ref_h, new_h = (json.loads((p / "models/supervised/history.json").read_text()) for p in (base, proj))
    timing = ("seconds", "images_per_s")  # wall-clock figures: the only fields allowed to differ
    ref_e = [{k: v for k, v in e.items() if k not in timing} for e in _epochs(ref_h)]
    new_e = [{k: v for k, v in e.items() if k not in timing} for e in _epochs(new_h)]
    assert new_e == ref_e
    return len(ref_e) - len(new_e)


def _epochs(history):
    return history["epochs"] if isinstance(history, dict) and "epochs" in history else history


def _compare_extract(base, proj):
    out = "data/features/affwild2"
    ref, new = (json.loads((p / out / "manifest.json").read_text()) for p in (base, proj))
    assert new == ref
    return _same_rows(base / out, proj / out, "features-*.parquet")


JOBS = {
    # job: (fer arguments, its output folder, its MLflow job name, kill points, comparison)
    "prepare": (["prepare", "--dataset", "rafdb", "--part", "0"], "data/prepared/_parts/rafdb/0", "prepare@rafdb-0",
                _prepare, _compare_prepare),
    "gather": (["gather", "--dataset", "rafdb"], "data/prepared/rafdb", "gather@rafdb", _gather, _compare_gather),
    "training": (["train-supervised"], "models/supervised", "train_supervised", _train, _compare_train),
    "feature extraction": (["extract-features"], "data/features/affwild2", "extract_features", _extract,
                           _compare_extract),
}


@pytest.mark.fault("killed job")
@pytest.mark.parametrize("job", list(JOBS))
def test_a_killed_job_reruns_to_the_uninterrupted_result(base, tmp_path, fault, job):
    args, out, mlflow_job, points, compare = JOBS[job]
    fault.fault = f"killed {job} (SIGKILL, then rerun)"
    proj = copy_project(base, tmp_path / "proj")
    shutil.rmtree(proj / out)
    target, at = _kill_point(job, points(base))
    killed = fer_injected(proj, args, "kill", target, at)
    assert killed.returncode == -9, f"not killed at {target} call {at}: {killed.stderr[-3000:]}"
    fault.injected = True
    # Nothing half-written accepted: the output is absent or its stamp is (the tools and
    # `fer status` treat a folder without its stamp as not made).
    assert not (proj / out / "_stage.json").exists(), f"killed at {target} #{at}, yet {out} looks finished"

    run(["fer", *args], proj)
    fault.lost = compare(base, proj)
    assert temp_litter(proj) == [], "temp files or folders left behind"
    assert (proj / out / "_stage.json").exists()
    statuses = [status for _, status in mlflow_runs(proj, mlflow_job)]
    assert "RUNNING" not in statuses, f"an MLflow run of {mlflow_job} left RUNNING: {statuses}"
    assert fault.lost == 0
