"""One process at a time per job. Snakemake locks its working directory against another
Snakemake and DVC its repository against another DVC, but neither sees the other: a
`snakemake` and a `dvc repro` started side by side would run the same job twice, both
resuming from and writing to its work folder, its outputs and its MLflow run.

Each `fer` stage command holds an exclusive flock on `.fer/locks/<job>.lock` while it
runs. The kernel releases a flock when its process dies, however it dies, so a lock is
never left behind by a killed job; the file itself stays (removing it would let a
third process lock a fresh file while the second still holds the old one).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Iterator

LOCK_DIR = Path(".fer/locks")


class JobLocked(SystemExit):
    """Another live process runs this job (a SystemExit carrying its reason: `fer`
    prints it as one error line and exits 1)."""


def lock_path(job: str) -> Path:
    return LOCK_DIR / f"{job.replace('/', '_')}.lock"


def _holder_record() -> bytes:
    """Who holds the lock: what the refusal tells the next process."""
    return json.dumps({
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
    }).encode()


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 65536, 0) or b"{}")
    except ValueError:  # caught between the holder's truncate and its write
        return {}


def refusal(job: str, path: Path, holder: dict) -> str:
    if not holder.get("pid"):
        return (f"job {job} is already running in another process (it holds {path} and has not written its "
                f"details yet): wait for it to finish, or find and stop it, then run this again")
    return (f"job {job} is already running: process {holder['pid']} on {holder.get('host', '?')}, since "
            f"{holder.get('since', '?')}, command `{holder.get('command', '?')}`. Wait for it to finish, or "
            f"stop it (kill {holder['pid']}) and run this again (lock file {path})")


@contextlib.contextmanager
def job_lock(job: str) -> Iterator[None]:
    """Hold `job`'s lock for the block; raise JobLocked at once if another process holds it."""
    path = lock_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobLocked(refusal(job, path, _read_holder(fd))) from None
        # Written only once the lock is ours: truncating before would erase the holder's record.
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_record(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
