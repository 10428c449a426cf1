"""Helpers of the fault suite: the tiny project every job-level fault starts from (built
once per session and shared by the xdist workers), copies of it, `fer` run with a fault
injected (_inject.py), and the checks every fault repeats."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import BIN as BIN_DIR, make_project_copy, run, tiny_params, tool_env  # tests/conftest.py

HERE = Path(__file__).resolve().parent
INJECT = HERE / "_inject.py"
SEED = 17  # the kill points are drawn from random.Random(f"{SEED}-<job>"): random, but the same every run


def fault_params() -> dict:
    """The root conftest's tiny params, smaller still, with shards of a few rows so a
    kill lands between rows, and the supervised model from scratch (no FR backbone)
    as the frozen feature extractor."""
    params = tiny_params()
    params["generate"]["rafdb"] = {"identities": 8, "train_images": 40, "test_images": 16}
    for name in ("rafdb", "affwild2"):
        params["datasets"][name]["parts"] = 1
    params["prepare"].update(row_group_size=4, rows_per_shard=8)
    params["train"]["supervised"].update(init="scratch", epochs=2, batch_size=16)
    params["temporal"]["features"].update(student="supervised", batch_size=4)
    return params


# Job groups run one after the other; the jobs of a group at once (2 cores: while
# the other xdist worker waits for this base, its core builds it too).
BASE_JOBS = (
    (["generate"],),
    (["prepare", "--dataset", "rafdb", "--part", "0"], ["prepare", "--dataset", "affwild2", "--part", "0"]),
    (["gather", "--dataset", "rafdb"], ["gather", "--dataset", "affwild2"], ["dvc-yaml"]),
    (["train-supervised"],),
    (["extract-features"],),
)


def build_base(dest: Path) -> Path:
    """The tiny project with every job the faults need run once, uninterrupted: each
    fault's rerun is compared with these outputs."""
    dest.mkdir(parents=True)
    make_project_copy(dest, fault_params())
    for group in BASE_JOBS:
        procs = [(args, subprocess.Popen(["fer", *args], cwd=dest, env=tool_env(), stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True)) for args in group]
        for args, proc in procs:
            output, _ = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise AssertionError(f"fer {' '.join(args)} failed ({proc.returncode}) building {dest}:\n"
                                     f"{output[-6000:]}")
    (dest / ".built").write_text("ok")
    return dest


def shared_base(tmp_path_factory, worker_id: str | None) -> Path:
    """One base per session: under xdist the first worker builds it in the session's
    shared temp folder while the others wait on a lock."""
    root = tmp_path_factory.getbasetemp()
    if worker_id is not None:  # an xdist worker: the parent is the session's folder
        root = root.parent
    base = root / "fault-base"
    with open(root / "fault-base.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / ".built").exists():
            if base.exists():
                raise RuntimeError(f"{base} is half built (an earlier worker failed building it)")
            build_base(base)
    return base


def copy_project(base: Path, dest: Path) -> Path:
    """A copy keeping hard links and times (Snakemake compares them)."""
    subprocess.run(["cp", "-a", f"{base}/.", str(dest)], check=True)
    return dest


def fer_injected(proj: Path, args: list[str], action: str, target: str, at: int, signals: Path | None = None,
                 timeout: int = 300, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    env = tool_env()
    env["FER_FAULT"] = json.dumps({"action": action, "target": target, "at": at,
                                   "dir": str(signals) if signals else ""})
    cmd = [sys.executable, str(INJECT), *args]
    if popen:
        return subprocess.Popen(cmd, cwd=proj, env=env, **popen)
    return subprocess.run(cmd, cwd=proj, env=env, capture_output=True, text=True, timeout=timeout)


def fer_wrapper_dir(folder: Path) -> Path:
    """A folder whose `fer` runs _inject.py: put first on PATH, the tools' jobs get the fault."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "fer"
    wrapper.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.argv[0] = {str(INJECT)!r}\n"
                       f"runpy.run_path({str(INJECT)!r}, run_name='__main__')\n")
    wrapper.chmod(0o755)
    return folder


def temp_litter(proj: Path) -> list[str]:
    """Files and folders under the project named as writes in progress (common/atomic.py)."""
    from fer_pipeline.common.atomic import is_temp_name

    found = []
    for top in ("data", "models", "reports", ".fer"):
        for folder, dirs, files in os.walk(proj / top):
            found += [os.path.relpath(os.path.join(folder, n), proj) for n in dirs + files if is_temp_name(n)]
    return sorted(found)


def mlflow_runs(proj: Path, job: str | None = None) -> list[tuple[str, str]]:
    """(run id, status) of the project's job runs (of one job), read straight from SQLite;
    not the parent run that groups one invocation's jobs (dag/tracking.py)."""
    with contextlib.closing(sqlite3.connect(proj / "mlflow.db")) as db:
        sql = "select r.run_uuid, r.status from runs r"
        if job is None:
            return db.execute(sql + " join tags t on t.run_uuid = r.run_uuid where t.key = 'kind' and t.value = 'job'"
                              ).fetchall()
        return db.execute(sql + " join tags t on t.run_uuid = r.run_uuid where t.key = 'job' and t.value = ?",
                          (job,)).fetchall()


def sqlite_ok(path: Path) -> bool:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("pragma integrity_check").fetchone()[0] == "ok"
