"""A single-node SLURM cluster on this machine, for tests: munged, slurmctld and slurmd on
localhost, everything (key, config, state, logs) in one temporary folder.

Needs Debian's slurm-wlm and munge (`make system-deps`) and root: slurmd starts jobs as
their user. No accounting database: the job records come from jobcomp/filetxt
(`sacct --completion`), and the executor plugin reads job states with squeue (jobs stay
listed MinJobAge = 300 s after they end).

One thing lives outside the folder: the link /run/slurm/conf, SLURM's own fallback
location for its configuration. The plugin's job step strips SLURM_CONF from the
environment before it calls `srun` inside the job, so on a cluster whose configuration
is not in /etc/slurm the step would find none; on a real node, configless SLURM provides
that link. The link is made only where none exists (or one left dangling by a killed
run), and removed on shutdown.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

RUN_CONF = Path("/run/slurm/conf")
PARTITION = "cpu"  # workflow/profiles/slurm's default partition
CPUS = 2


# The daemons live in /usr/sbin, which a non-login PATH may lack.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


def _tool(name: str) -> str:
    return shutil.which(name, path=SEARCH_PATH) or name


class SlurmUnavailable(RuntimeError):
    """SLURM could not be started here; the message says why (and holds the daemons' logs)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _real_memory_mb() -> int:
    """What slurmd finds on this machine (a node configured with more is drained)."""
    out = subprocess.run([_tool("slurmd"), "-C"], capture_output=True, text=True, timeout=30).stdout
    found = re.search(r"RealMemory=(\d+)", out)
    if not found:
        raise SlurmUnavailable(f"`slurmd -C` printed no RealMemory: {out!r}")
    return int(found.group(1))


def _conf(root: Path, host: str, memory_mb: int) -> str:
    return "\n".join([
        "ClusterName=fertest",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root}/munge/munge.socket",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid",
        f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log",
        f"SlurmdLogFile={root}/log/slurmd.log",
        # No cgroups in a container: process groups track a job's processes.
        "ProctrackType=proctrack/pgid",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={root}/log/jobcomp.txt",
        "MinJobAge=300",
        "SchedulerType=sched/builtin",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "MpiDefault=none",
        "ReturnToService=2",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=60 State=UP",
        "",
    ])


def _logs(root: Path) -> str:
    parts = []
    for name in ("munged.log", "slurmctld.log", "slurmd.log"):
        path = root / "log" / name
        text = path.read_text(errors="replace")[-3000:] if path.exists() else "(none)"
        parts.append(f"--- {name} ---\n{text}")
    return "\n".join(parts)


def _start(cmd: list[str], env: dict, root: Path) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise SlurmUnavailable(f"`{' '.join(cmd)}` exited {proc.returncode}: {proc.stderr.strip()}\n{_logs(root)}")


def _stop(pid_file: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)  # raises ProcessLookupError once it is gone
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def single_node_slurm(root: Path):
    """Start the cluster in `root`; yield the environment its clients need (SLURM_CONF).
    Raises SlurmUnavailable, with the reason, when it cannot start; always stops what it started."""
    missing = [tool for tool in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sacct")
               if shutil.which(tool, path=SEARCH_PATH) is None]
    if missing:
        raise SlurmUnavailable(f"not installed: {', '.join(missing)} (`make system-deps` installs slurm-wlm, munge)")
    if os.geteuid() != 0:
        raise SlurmUnavailable("slurmd must run as root to start jobs (CI runs as root)")
    if RUN_CONF.is_symlink() and not RUN_CONF.exists():
        RUN_CONF.unlink()  # left by a run that was killed: its folder is gone
    if RUN_CONF.exists() or RUN_CONF.is_symlink():
        raise SlurmUnavailable(f"{RUN_CONF} exists ({os.path.realpath(RUN_CONF)}): another SLURM's configuration; "
                               "this test will not replace it")
    root = root.resolve()
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o700)
    host = socket.gethostname().split(".")[0]
    (root / "slurm.conf").write_text(_conf(root, host, _real_memory_mb()))
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    made_run_dir = not RUN_CONF.parent.exists()
    try:
        _start([_tool("mungekey"), "--create", f"--keyfile={root}/munge/munge.key"], env, root)
        # --force: munged refuses some setups (root, a world-writable /tmp above the socket) without it.
        _start([_tool("munged"), "--force", f"--socket={root}/munge/munge.socket", f"--key-file={root}/munge/munge.key",
                f"--log-file={root}/log/munged.log", f"--pid-file={root}/munge/munged.pid",
                f"--seed-file={root}/munge/seed"], env, root)
        RUN_CONF.parent.mkdir(parents=True, exist_ok=True)
        RUN_CONF.symlink_to(root)
        _start([_tool("slurmctld"), "-i"], env, root)  # -i: no saved state to recover
        _start([_tool("slurmd")], env, root)
        _wait_idle(env, root)
        yield env
    finally:
        with contextlib.suppress(Exception):
            jobs = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True,
                                  timeout=30).stdout.split()
            if jobs:
                subprocess.run(["scancel", *jobs], env=env, capture_output=True, timeout=30)
        _stop(root / "slurmd.pid")
        _stop(root / "slurmctld.pid")
        _stop(root / "munge" / "munged.pid")
        if RUN_CONF.is_symlink() and os.path.realpath(RUN_CONF) == str(root):
            RUN_CONF.unlink()
        if made_run_dir:
            with contextlib.suppress(OSError):
                RUN_CONF.parent.rmdir()


def _wait_idle(env: dict, root: Path, timeout: float = 60) -> None:
    """Until the node is idle in the partition (slurmd registered with slurmctld)."""
    deadline, state = time.time() + timeout, ""
    while time.time() < deadline:
        proc = subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%t"], env=env, capture_output=True, text=True,
                              timeout=30)
        state = (proc.stdout + proc.stderr).strip()
        if state == "idle":
            return
        time.sleep(0.5)
    raise SlurmUnavailable(f"the node did not become idle within {timeout:.0f} s (sinfo: {state!r})\n{_logs(root)}")


def job_records(env: dict) -> list[dict[str, str]]:
    """Every finished job, from the job completion log (no accounting database)."""
    fields = ["JobID", "JobName", "Partition", "State", "ExitCode", "NCPUS"]
    out = subprocess.run(["sacct", "--completion", "--parsable2", "--noheader", f"--format={','.join(fields)}"],
                         env=env, capture_output=True, text=True, timeout=30, check=True).stdout
    return [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line.strip()]
