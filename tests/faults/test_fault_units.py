"""Fault tests at the unit level (issue 17 item 5; the rows of the fault table with
"records lost" 0 by construction: these faults involve no dataset records).

Faults end cleanly: a truncated checkpoint or model names the file and the way out;
a killed job's temp folders are removed before its stage runs again and never count
as data; its MLflow run is closed as KILLED by the next run of the same job; two
processes never run the same job at once; a failed `dvc commit` says why."""

import contextlib
import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml

from ._support import tiny_params, tool_env

from fer_pipeline.common.atomic import remove_dead_temps
from fer_pipeline.dag.fingerprint import tree_fingerprint
from fer_pipeline.models.bundle import load_bundle
from fer_pipeline.train import checkpoint


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.fault("truncated checkpoint file (checkpoint.load)")
def test_a_truncated_checkpoint_names_the_file_and_what_to_delete(tmp_path, fault):
    fault.injected, fault.lost = True, 0  # injected below; no dataset records involved
    path = tmp_path / "last.pt"
    checkpoint.save(path, model={"w": torch.arange(1000.0)}, step=3)
    assert checkpoint.load(path)["step"] == 3
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(checkpoint.CorruptCheckpointError) as err:
        checkpoint.load(path)
    assert str(path) in str(err.value) and f"rm '{path}'" in str(err.value)


@pytest.mark.fault("zero-byte model file")
def test_a_zero_byte_model_file_is_a_clear_error_not_a_raw_traceback(tmp_path, fault):
    fault.injected, fault.lost = True, 0  # injected below; no dataset records involved
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(checkpoint.CorruptCheckpointError, match="model.pt cannot be read"):
        load_bundle(tmp_path)


@pytest.mark.fault("temp folders of a dead process")
def test_temps_of_dead_processes_are_removed_and_live_ones_kept(tmp_path, fault):
    fault.injected, fault.lost = True, 0  # injected below; no dataset records involved
    final = tmp_path / "parts" / "0"
    final.mkdir(parents=True)
    dead, live = _dead_pid(), subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "parts" / f".0.tmp-{dead}").mkdir()
        (tmp_path / "parts" / f".0.tmp-{dead}" / "shard.parquet").write_bytes(b"x" * 100)
        (tmp_path / "parts" / f".1.tmp-{live.pid}").mkdir()
        (final / f".manifest.json.tmp-{dead}").write_text("{")
        (final / "manifest.json").write_text("{}")
        # One level up: this output's own outside-parent temp, and another output's (kept).
        (tmp_path / f".parts-0.tmp-{dead}").mkdir()
        (tmp_path / f".parts-1.tmp-{dead}").mkdir()
        removed = remove_dead_temps(final)
        assert sorted(p.name for p in removed) == sorted([f".0.tmp-{dead}", f".manifest.json.tmp-{dead}",
                                                          f".parts-0.tmp-{dead}"])
        assert (tmp_path / f".parts-1.tmp-{dead}").is_dir(), "another output's temp is not this job's to remove"
        assert (tmp_path / "parts" / f".1.tmp-{live.pid}").is_dir(), "a running job's temp folder is left alone"
        assert (final / "manifest.json").is_file()
    finally:
        live.kill()


@pytest.mark.fault("temp files inside a dependency")
def test_temp_names_never_count_as_data(tmp_path, fault):
    fault.injected, fault.lost = True, 0  # injected below; no dataset records involved
    data = tmp_path / "data"
    data.mkdir()
    (data / "shard-0.parquet").write_bytes(b"rows")
    before = tree_fingerprint(data, cache_dir=tmp_path / "cache")
    (data / ".shard-1.parquet.tmp-4242").write_bytes(b"half")
    (data / ".sub.tmp-4242").mkdir()
    (data / ".sub.tmp-4242" / "x").write_bytes(b"half")
    assert tree_fingerprint(data, cache_dir=tmp_path / "cache2") == before
    (data / "shard-1.parquet").write_bytes(b"more rows")
    assert tree_fingerprint(data, cache_dir=tmp_path / "cache3") != before


@pytest.mark.fault("killed job's MLflow run left RUNNING")
def test_a_killed_jobs_mlflow_run_is_closed_by_the_next_run_of_that_job(tmp_path, fault):
    fault.injected, fault.lost = True, 0  # injected below; no dataset records involved
    import mlflow
    from mlflow.tracking import MlflowClient

    from fer_pipeline.dag.tracking import _close_killed_runs

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    exp = client.create_experiment("t", artifact_location=(tmp_path / "art").as_uri())
    host = socket.gethostname()
    killed = client.create_run(exp, tags={"job": "train_meta", "host": host, "pid": str(_dead_pid())})
    other_job = client.create_run(exp, tags={"job": "evaluate@meta", "host": host, "pid": str(_dead_pid())})
    running = client.create_run(exp, tags={"job": "train_meta", "host": host, "pid": str(subprocess.os.getpid())})
    _close_killed_runs(mlflow, exp, "train_meta", host)
    assert client.get_run(killed.info.run_id).info.status == "KILLED"
    assert client.get_run(running.info.run_id).info.status == "RUNNING", "a live process keeps its run"
    assert client.get_run(other_job.info.run_id).info.status == "RUNNING", "only the same job's runs"


# ---- one process per job (dag/joblock.py) ----

def _hold_lock(cwd, job: str) -> subprocess.Popen:
    """A process holding `job`'s lock until killed; returns once it holds it."""
    script = ("import sys, time\n"
              "from fer_pipeline.dag.joblock import job_lock\n"
              f"with job_lock({job!r}):\n"
              "    print('held', flush=True)\n"
              "    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", script, "--as-holder"], cwd=cwd, stdout=subprocess.PIPE, text=True,
                              env=tool_env())
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.fault("a second process for a running job")
def test_a_second_process_is_refused_the_job_until_the_holder_dies(tmp_path, monkeypatch, fault):
    fault.injected, fault.lost = True, 0  # injected below; no dataset records involved
    from fer_pipeline.dag.joblock import JobLocked, job_lock

    monkeypatch.chdir(tmp_path)
    holder = _hold_lock(tmp_path, "train_meta")
    try:
        with pytest.raises(JobLocked) as err:
            with job_lock("train_meta"):
                pytest.fail("two processes ran the same job")
        said = str(err.value)
        assert f"process {holder.pid} on {socket.gethostname()}" in said and "--as-holder`" in said
        assert "since " in said and f"kill {holder.pid}" in said and "Wait for it to finish" in said
        with job_lock("evaluate@meta"):  # another job is not blocked
            pass
    finally:
        holder.kill()
        holder.wait()
    with job_lock("train_meta"):  # the kernel released the dead holder's lock
        pass


@pytest.mark.fault("fer started for a job another process runs")
def test_fer_refuses_to_run_a_job_another_process_runs(tmp_path, fault):
    fault.injected, fault.lost = True, 0  # injected below; no dataset records involved
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    holder = _hold_lock(tmp_path, "report")
    try:
        proc = subprocess.run([sys.executable, "-m", "fer_pipeline.cli", "report"], cwd=tmp_path,
                              capture_output=True, text=True, env=tool_env(), timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"job report is already running: process {holder.pid}" in proc.stderr
    assert "not found" not in proc.stderr, "refused before looking at its inputs"
    assert "Traceback" not in proc.stderr and not (tmp_path / "mlflow.db").exists()


@pytest.mark.fault("failed dvc commit after snakemake")
def test_a_failed_dvc_commit_says_why(tmp_path, monkeypatch, fault):
    fault.injected, fault.lost = True, 0  # injected below; no dataset records involved
    from fer_pipeline.orchestrators.dvc_render import dvc_commit

    fake = tmp_path / "bin" / "dvc"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho \"ERROR: output 'models/meta' is not tracked: the cause\" >&2\nexit 255\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    with pytest.raises(SystemExit) as err:
        dvc_commit(["train_meta"])
    assert "dvc commit failed (exit 255)" in str(err.value.code)
    assert "output 'models/meta' is not tracked: the cause" in str(err.value.code)


# ---- pool workers die with their parent (common/workers.py) ----

# A parent that makes a pool of 2 the way the pipeline does, runs one task per worker
# (so both have started and run their initializer), keeps both busy (an idle worker of
# some pools notices its parent's end by itself; a busy one would finish its task
# first), prints its children's pids, and waits.
_POOL_PARENT = """
import time, psutil
from {module} import {make} as make
pool = make(2)
list(pool.map(time.sleep, [0.5, 0.5]))
{busy}
time.sleep(0.5)
print(" ".join(str(child.pid) for child in psutil.Process().children(recursive=True)), flush=True)
time.sleep(60)
"""


@pytest.mark.fault("pool parent SIGKILLed")
@pytest.mark.parametrize("module, make, busy", [
    ("fer_pipeline.data.prep.pool", "start_pool", "running = pool.map(time.sleep, [30, 30])"),
    ("fer_pipeline.data.synth.writers", "render_pool", "running = pool.map_async(time.sleep, [30, 30], chunksize=1)"),
], ids=["prepare", "generate"])
def test_pool_workers_die_when_their_parent_is_killed(module, make, busy, fault):
    fault.injected, fault.lost = True, 0  # injected below; no dataset records involved
    fault.fault = f"pool parent SIGKILLed ({module.rsplit('.', 2)[-2]} pool)"
    import psutil

    parent = subprocess.Popen([sys.executable, "-c", _POOL_PARENT.format(module=module, make=make, busy=busy)],
                              stdout=subprocess.PIPE, text=True, env=tool_env())
    pids: list[int] = []
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) >= 2, "the pool's workers were not started"
        parent.kill()
        parent.wait()
        _, alive = psutil.wait_procs([psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)], timeout=5)
        assert not alive, f"left running after their parent was killed: {alive}"
    finally:
        parent.kill()
        for pid in pids:  # this test's own strays only
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()


@pytest.mark.fault("pool worker orphaned")
def test_a_worker_whose_parent_is_gone_exits_on_its_own(fault):
    """The second guard alone (no death signal): a parent pid that is not this
    process's parent any more ends the worker within the watch interval."""
    fault.injected, fault.lost = True, 0  # injected below; no dataset records involved
    script = ("import os, time\n"
              "from fer_pipeline.common import workers\n"
              "workers.watch_parent(os.getppid(), interval=0.1)\n"
              "print('watching', flush=True)\n"
              "os.getppid = lambda: 1  # as if adopted by init\n"
              "time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=tool_env())
    try:
        assert proc.stdout.readline().strip() == "watching"
        assert proc.wait(timeout=5) == 1
    finally:
        proc.kill()
