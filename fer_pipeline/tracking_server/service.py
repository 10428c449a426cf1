"""`mlflow server` on the local PostgreSQL, in the foreground until stopped.

MLflow serves the artifacts itself (`--serve-artifacts`): runs are created with
`mlflow-artifacts:/` locations and clients upload and download through the server, so
they need no shared disk, only HTTP to 127.0.0.1:<port> (an SSH tunnel from another
machine). Both processes run in sessions of their own: a Ctrl-C (or `fer server --stop`,
SIGTERM) reaches `fer server` only, which stops MLflow first, then PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from fer_pipeline.common.processes import alive
from fer_pipeline.tracking_server import postgres

log = logging.getLogger(__name__)

PID_FILE = "server.pid"  # in tracking.server.dir while `fer server` runs


class ServerError(RuntimeError):
    """The MLflow server could not be started; the message says why."""


@dataclass(frozen=True)
class Settings:
    folder: Path  # the cluster (postgres/), the artifacts (artifacts/), logs, the pid file
    port: int
    db_port: int
    workers: int

    @classmethod
    def from_params(cls, params: dict) -> "Settings":
        cfg = params["tracking"]["server"]
        return cls(Path(cfg["dir"]).resolve(), cfg["port"], cfg["db_port"], cfg["workers"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _mlflow_command(settings: Settings, backend_uri: str) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(settings.port),
            "--workers", str(settings.workers), "--backend-store-uri", backend_uri, "--serve-artifacts",
            "--artifacts-destination", str(settings.folder / "artifacts")]


def _wait_healthy(proc: subprocess.Popen, settings: Settings, log_path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"mlflow server exited ({proc.returncode}): {postgres._tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{settings.url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise ServerError(f"mlflow server did not answer on {settings.url} within {timeout:.0f} s: "
                      f"{postgres._tail(log_path)}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_group(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM to the server's whole process group, SIGKILL if late. The group, not the
    `mlflow server` process: that one starts uvicorn (and its workers) as children, which
    outlive it if it dies first."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        if not _group_alive(proc.pid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + wait
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            proc.poll()  # reaps the leader: a zombie would keep the group alive
            time.sleep(0.2)
    proc.poll()


def running_pid(folder: Path) -> int | None:
    """The pid of the `fer server` serving this folder, or None."""
    try:
        pid = int((folder / PID_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Ctrl-C, SIGTERM (`fer server --stop`, a service manager) and a closed terminal all
    end the wait the same way; set explicitly, as a process started in the background
    inherits SIGINT ignored."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(settings: Settings) -> None:
    """Start PostgreSQL, then MLflow; wait until either exits or we are told to stop;
    stop both (MLflow first), whatever happened."""
    other = running_pid(settings.folder)
    if other is not None:
        raise ServerError(f"a server for {settings.folder} already runs (pid {other}): `fer server --stop` stops it")
    data = postgres.init_cluster(settings.folder)
    (settings.folder / "artifacts").mkdir(parents=True, exist_ok=True)
    (settings.folder / PID_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")
    db_log, mlflow_log = settings.folder / "postgres.log", settings.folder / "mlflow.log"
    db = mlflow = None
    try:
        with _stop_on_signals():
            db = postgres.start(data, settings.db_port, db_log)
            postgres.wait_ready(db, settings.db_port, db_log)
            backend = postgres.ensure_database(settings.folder, settings.db_port)
            env = {**os.environ, "PGPASSFILE": str(postgres.passfile(settings.folder))}
            # MLflow's job runner serves GenAI features (online scoring, trace archival) the
            # pipeline does not use: one process less, unless the user exports it as true.
            env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            with open(mlflow_log, "ab") as out:
                mlflow = subprocess.Popen(_mlflow_command(settings, backend), env=env, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            _wait_healthy(mlflow, settings, mlflow_log)
            log.info("MLflow at %s (backend %s, artifacts in %s); logs in %s; Ctrl-C or `fer server --stop` "
                     "stops it", settings.url, backend, settings.folder / "artifacts", settings.folder)
            print(f"ready: export MLFLOW_TRACKING_URI={settings.url}", flush=True)
            while mlflow.poll() is None and db.poll() is None:
                time.sleep(0.5)
            raise ServerError(f"{'mlflow server' if mlflow.poll() is not None else 'postgres'} exited on its own: "
                              f"see {mlflow_log} and {db_log}")
    except KeyboardInterrupt:
        log.info("stopping MLflow, then PostgreSQL")
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave a daemon behind.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
        if mlflow is not None:
            _stop_group(mlflow)
        if db is not None:
            postgres.stop(db)
        (settings.folder / PID_FILE).unlink(missing_ok=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_running(folder: Path, timeout: float = 150.0) -> bool:
    """Ask the `fer server` serving `folder` to stop and wait until it has; False when
    none runs."""
    pid = running_pid(folder)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    # The server removes its pid file last, once both services are down (its process may
    # linger as a zombie of whoever started it).
    while alive(pid) and (folder / PID_FILE).exists():
        if time.monotonic() > deadline:
            raise ServerError(f"fer server (pid {pid}) did not stop within {timeout:.0f} s")
        time.sleep(0.3)
    return True
