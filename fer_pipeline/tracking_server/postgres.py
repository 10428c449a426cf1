"""A PostgreSQL cluster in a folder of the project, for MLflow's backend store.

Debian's `postgresql` package provides the binaries (/usr/lib/postgresql/<version>/bin);
nothing is installed system-wide and no system service is used: `initdb` creates the
cluster in `<tracking.server.dir>/postgres`, and `postgres` runs in the foreground on
127.0.0.1 only (no Unix socket), with one password-protected role, `mlflow`.

PostgreSQL refuses to run as root. When this process is root (CI containers), the
binaries run as the `postgres` system user (setpriv, which execs: the pid we hold is
the server's own), and the cluster folder is owned by that user; its parent folders
must let that user through (a 0700 folder in the path, e.g. pytest's tmp_path, does not).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path

ROLE = "mlflow"
DATABASE = "mlflow"
SYSTEM_USER = "postgres"  # the Debian package's user: the cluster's owner when we are root


class PostgresError(RuntimeError):
    """PostgreSQL could not be set up or started; the message says why."""


def bindir() -> Path:
    """The newest PostgreSQL server binaries: Debian keeps them off PATH."""
    on_path = shutil.which("initdb")
    if on_path:  # a link on PATH (/usr/local/bin/initdb) stands for the folder it points into
        return Path(on_path).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise PostgresError("PostgreSQL's server binaries (initdb, postgres) were not found: install Debian's "
                            "`postgresql` package (`make system-deps`)")
    return Path(found[-1]).parent


def _as_owner() -> list[str]:
    """The command prefix that runs a binary as the cluster's owner."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PostgresError(f"running as root, and there is no `{SYSTEM_USER}` user to run PostgreSQL as "
                            "(PostgreSQL refuses root): install Debian's `postgresql` package") from None
    return ["setpriv", f"--reuid={SYSTEM_USER}", f"--regid={SYSTEM_USER}", "--init-groups", "--"]


def passfile(folder: Path) -> Path:
    """libpq's password file for the `mlflow` role (mode 0600, owned by whoever starts the
    server): clients find the password there (PGPASSFILE), never on a command line."""
    return folder / "pgpass"


def _password(folder: Path) -> str:
    line = passfile(folder).read_text(encoding="utf-8").strip()
    return line.rsplit(":", 1)[1]


def init_cluster(folder: Path) -> Path:
    """Create the cluster in `folder/postgres` unless it exists; returns its data folder."""
    data = folder / "postgres"
    if (data / "PG_VERSION").is_file():
        if not passfile(folder).is_file():
            raise PostgresError(f"{data} exists but {passfile(folder)} (the role's password) is missing: "
                                f"remove {data} to start an empty store")
        return data
    folder.mkdir(parents=True, exist_ok=True)
    owner = _as_owner()
    password = secrets.token_urlsafe(24)
    pw_file = folder / ".initdb-password"
    # The password is written before initdb reads it, readable by the cluster's owner only.
    fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    data.mkdir(mode=0o700, exist_ok=True)
    if owner:
        user = pwd.getpwnam(SYSTEM_USER)
        for path in (pw_file, data):
            os.chown(path, user.pw_uid, user.pw_gid)
        if subprocess.run([*owner, "test", "-w", str(data)], capture_output=True).returncode != 0:
            pw_file.unlink()
            raise PostgresError(f"the `{SYSTEM_USER}` user cannot reach {data} (a parent folder without "
                                "the x bit for others?): set params tracking.server.dir to a folder it can reach")
    try:
        proc = subprocess.run([*owner, str(bindir() / "initdb"), "-D", str(data), "-U", ROLE,
                               "--auth=scram-sha-256", f"--pwfile={pw_file}", "-E", "UTF8", "--no-instructions"],
                              capture_output=True, text=True, timeout=120)
    finally:
        pw_file.unlink(missing_ok=True)
    if proc.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        raise PostgresError(f"initdb failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    fd = os.open(passfile(folder), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"*:*:*:{ROLE}:{password}\n")
    return data


def start(data: Path, port: int, log_path: Path) -> subprocess.Popen:
    """`postgres` in the foreground of its own session (a Ctrl-C to `fer server` does not
    reach it: fer stops it after MLflow), listening on 127.0.0.1:port only."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen([*_as_owner(), str(bindir() / "postgres"), "-D", str(data), "-p", str(port),
                                 "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def wait_ready(proc: subprocess.Popen, port: int, log_path: Path, timeout: float = 60.0) -> None:
    """Until the server accepts connections; a server that exits or never answers is an
    error quoting its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PostgresError(f"postgres exited ({proc.returncode}) on port {port}: {_tail(log_path)}")
        ready = subprocess.run([str(bindir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)])
        if ready.returncode == 0:
            return
        time.sleep(0.3)
    raise PostgresError(f"postgres did not accept connections on port {port} within {timeout:.0f} s: "
                        f"{_tail(log_path)}")


def ensure_database(folder: Path, port: int) -> str:
    """Create MLflow's database if missing; returns its SQLAlchemy URI (no password in it:
    psycopg2 reads it from PGPASSFILE)."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=port, user=ROLE, dbname="postgres", password=_password(folder))
    try:
        conn.autocommit = True  # CREATE DATABASE refuses to run inside a transaction
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        conn.close()
    return f"postgresql://{ROLE}@127.0.0.1:{port}/{DATABASE}"


def stop(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Fast shutdown (SIGINT: open sessions are ended, the data is consistent); SIGQUIT,
    then SIGKILL, only if it does not finish in time."""
    for sig, wait in ((2, timeout), (3, 10.0), (9, 10.0)):
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:].strip()
    except OSError:
        return "(no log)"
