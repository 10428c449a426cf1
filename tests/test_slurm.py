"""The demo DAG's data slice submitted to a real single-node SLURM (tests/slurm_local.py)
through `snakemake --workflow-profile workflow/profiles/slurm`: generate, then prepare and
gather of one dataset, each an sbatch job; then a rerun has nothing to do.

If SLURM cannot start here the test fails, saying why: it is part of CI, not optional."""

import json
import re
import subprocess

import pytest

from conftest import make_project_copy, run, tiny_params, tool_env
from slurm_local import CPUS, PARTITION, SlurmUnavailable, job_records, single_node_slurm

pytestmark = pytest.mark.integration

TARGET = "data/prepared/rafdb"  # gather@rafdb's output: generate -> prepare@rafdb-{0,1} -> gather@rafdb
PROFILE = ["--workflow-profile", "workflow/profiles/slurm",
           # The test cluster has no accounting database, so no sacct job states: squeue's.
           "--slurm-status-command", "squeue",
           # Poll soon after submitting: these jobs take seconds, not hours.
           "--slurm-init-seconds-before-status-checks", "2",
           # The plugin deletes a successful job's log; the test reads one.
           "--slurm-keep-successful-logs"]


def snakemake(proj, env, *args):
    proc = subprocess.run(["snakemake", *PROFILE, *args], cwd=proj, env={**tool_env(), "SLURM_CONF": env["SLURM_CONF"]},
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {log} ---\n{log.read_text()[-3000:]}"
                         for log in (proj / ".snakemake/slurm_logs").rglob("*.log"))
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-6000:]}\n{logs}")
    return proc.stdout + proc.stderr


def slurm_jobs_by_rule(out: str) -> dict[str, list[str]]:
    """SLURM job ids per rule, as the plugin reports each submission."""
    found: dict[str, list[str]] = {}
    for job, rule in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", out):
        found.setdefault(rule, []).append(job)
    return found


@pytest.fixture
def slurm(tmp_path):
    """The cluster's client environment; its daemons stop after the test, passed or failed."""
    try:
        cluster = single_node_slurm(tmp_path / "slurm")
        env = cluster.__enter__()
    except SlurmUnavailable as exc:
        pytest.fail(f"single-node SLURM did not start: {exc}")
    try:
        yield env
    finally:
        cluster.__exit__(None, None, None)


def test_data_slice_runs_as_slurm_jobs_and_a_rerun_has_nothing_to_do(tmp_path, slurm):
    params = tiny_params()
    # Honest CPU requests that fit the 2-CPU node: generate and prepare use this many workers.
    params["generate"]["workers"] = 1
    params["prepare"]["workers"] = 1
    proj = make_project_copy(tmp_path / "proj", params)
    out = snakemake(proj, slurm, TARGET)

    # The outputs: a prepared dataset with both splits, written by the gather job.
    manifest = json.loads((proj / TARGET / "manifest.json").read_text())
    assert (proj / TARGET / "_stage.json").is_file()
    text = json.dumps(manifest)
    assert '"train"' in text and '"test"' in text, manifest

    # Every job went through SLURM: one sbatch job per Snakemake job, each completed.
    by_rule = slurm_jobs_by_rule(out)
    assert {rule: len(ids) for rule, ids in by_rule.items()} == {"generate": 1, "prepare": 2, "gather": 1}, by_rule
    records = {r["JobID"]: r for r in job_records(slurm)}
    ours = [job for ids in by_rule.values() for job in ids]
    assert sorted(records) == sorted(ours), (records, by_rule)
    for job in ours:
        rec = records[job]
        assert (rec["State"], rec["ExitCode"], rec["Partition"]) == ("COMPLETED", "0:0", PARTITION), rec
        assert 1 <= int(rec["NCPUS"]) <= CPUS, rec
    # One Snakemake invocation: the plugin names every job after its run id.
    assert len({records[job]["JobName"] for job in ours}) == 1
    # The job ran the stage's command inside SLURM (the plugin's job log holds its output).
    gather_log = next((proj / ".snakemake/slurm_logs/rule_gather").rglob("*.log")).read_text()
    assert re.search(r"fer gather --dataset rafdb", gather_log), gather_log[-2000:]

    # A rerun has nothing to do and submits nothing; the local profile agrees.
    assert "Nothing to be done" in snakemake(proj, slurm, TARGET)
    assert sorted(r["JobID"] for r in job_records(slurm)) == sorted(ours)
    local = run(["snakemake", "-n", TARGET], proj)
    assert "Nothing to be done" in local.stdout + local.stderr
