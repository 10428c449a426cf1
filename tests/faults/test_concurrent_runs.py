"""Two orchestrators at once in one project: a `snakemake` run holds train_supervised
(paused inside the job at its first optimiser step, _inject.py), and meanwhile a second
`snakemake` for the same target and a `dvc repro` of the same stage start. Snakemake
refuses the second by its directory lock; DVC's run of the job is refused by the job's
lock (dag/joblock.py) naming the holder. Then the first run finishes and mlflow.db is
intact: every run closed, none lost.

The tests of this module run in order against one held run (module fixture)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from ._support import BIN_DIR, copy_project, fer_wrapper_dir, mlflow_runs, sqlite_ok, tool_env


@pytest.fixture(scope="module")
def held(base, tmp_path_factory):
    """(project, first snakemake process, its env) while the first run is paused in the job."""
    tmp = tmp_path_factory.mktemp("concurrent")
    proj = copy_project(base, tmp / "proj")
    shutil.rmtree(proj / "models/supervised")
    signals = tmp / "signals"
    signals.mkdir()
    env = tool_env()
    env["PATH"] = f"{fer_wrapper_dir(tmp / 'bin')}{os.pathsep}{env['PATH']}"
    env["FER_FAULT"] = json.dumps({"action": "pause", "target": "torch.optim:Adam.step", "at": 1,
                                   "dir": str(signals), "timeout": 240})
    runs_before = len(mlflow_runs(proj))
    first = subprocess.Popen(["snakemake", "--cores", "1", "models/supervised"], cwd=proj, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while not (signals / "paused").exists():
        if first.poll() is not None or time.monotonic() > deadline:
            first.kill()
            pytest.fail(f"the first snakemake never reached the job:\n{first.stdout.read()[-4000:]}")
        time.sleep(0.2)
    state = {"proj": proj, "first": first, "signals": signals, "runs_before": runs_before, "output": None}
    yield state
    if state["output"] is None:  # the last test did not run: release the job and wait
        (signals / "go").write_text("")
        first.communicate(timeout=300)


def _second(proj, *cmd) -> subprocess.CompletedProcess:
    env = tool_env()
    env["PATH"] = f"{BIN_DIR}{os.pathsep}{env['PATH']}"
    return subprocess.run(list(cmd), cwd=proj, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.fault("two snakemake runs at once in one directory")
def test_a_second_snakemake_is_refused(held, fault):
    fault.injected = True
    proc = _second(held["proj"], "snakemake", "--cores", "1", "models/supervised")
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0, said[-3000:]
    assert "Directory cannot be locked" in said, said[-3000:]
    assert held["first"].poll() is None, "the first run goes on"
    fault.lost = 0


@pytest.mark.fault("dvc repro beside snakemake (same stage)")
def test_dvc_repro_of_the_same_stage_is_refused_naming_the_holder(held, fault):
    fault.injected = True
    proc = _second(held["proj"], "dvc", "repro", "--single-item", "train_supervised")
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0, said[-3000:]
    holder = json.loads((held["proj"] / ".fer/locks/train_supervised.lock").read_text())
    assert f"job train_supervised is already running: process {holder['pid']}" in said, said[-3000:]
    assert f"kill {holder['pid']}" in said, "the refusal says how to stop the other run"
    assert held["first"].poll() is None
    fault.lost = 0


@pytest.mark.fault("mlflow.db after concurrent runs")
def test_the_first_run_finishes_and_mlflow_db_is_intact(held, fault):
    fault.injected = True
    (held["signals"] / "go").write_text("")
    output, _ = held["first"].communicate(timeout=300)
    held["output"] = output
    assert held["first"].returncode == 0, output[-4000:]
    proj = held["proj"]
    assert (proj / "models/supervised/_stage.json").exists()
    assert sqlite_ok(proj / "mlflow.db")
    runs = mlflow_runs(proj)
    statuses = [status for _, status in runs]
    assert "RUNNING" not in statuses, statuses
    # One new run: the snakemake job's (the refused processes opened none).
    fault.lost = held["runs_before"] + 1 - len(runs)
    assert [s for _, s in mlflow_runs(proj, "train_supervised")].count("FINISHED") == 2  # the base's and this one
    assert fault.lost == 0
