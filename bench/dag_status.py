"""How long the three answers to "what is outdated?" take on an up-to-date project.

Run after `make run` (or in a folder where the demo DAG has run):

    python bench/dag_status.py [--project DIR] [--repeats 3]

Prints one JSON object: for `snakemake -n`, `dvc status` and `fer status`, the median
wall time over --repeats runs, each run's time, whether the answer was "nothing to
do" (so a slow *and* wrong answer is not mistaken for a fast one), and where `fer
status` spends its time (import, stage list and lineage, code closures, input
fingerprints), measured in-process. Target: each <= 3 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "snakemake -n": (["snakemake", "-n"], lambda out: "Nothing to be done" in out),
    "dvc status": (["dvc", "status"], lambda out: "Data and pipelines are up to date" in out),
    "fer status": (["fer", "status"], lambda out: "OUTDATED" not in out and "up to date" in out),
}


def time_command(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, proc.stdout + proc.stderr


def fer_status_breakdown(cwd: Path) -> dict:
    """Phases of `fer status`, timed in a fresh interpreter (cold caches, as a user's call)."""
    code = r"""
import json, time
t0 = time.perf_counter()
from fer_pipeline.common import params as params_mod
from fer_pipeline.dag import codedeps, lineage, provenance
t1 = time.perf_counter()
params = params_mod.load("params.yaml")
jobs = lineage.instances(params)
for job in jobs:
    lineage.upstream(params, job)
t2 = time.perf_counter()
for job in jobs:
    codedeps.code_digest(codedeps.stage_code(job.stage.command))
t3 = time.perf_counter()
for job in jobs:
    provenance.input_versions(job, memo=True)
t4 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "stage_list_and_lineage_s": t2 - t1, "code_closures_s": t3 - t2,
                  "input_fingerprints_s": t4 - t3, "jobs": len(jobs)}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True).stdout
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in json.loads(out).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--project", default=".", help="a project folder where the demo DAG has run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cwd = Path(args.project).resolve()
    result: dict = {"project": str(cwd), "cores": os.cpu_count(), "load_avg_start": os.getloadavg()[0]}
    for name, (cmd, clean) in COMMANDS.items():
        times, answers = [], []
        for _ in range(args.repeats):
            seconds, out = time_command(cmd, cwd)
            times.append(round(seconds, 3))
            answers.append(clean(out))
        result[name] = {"median_s": round(statistics.median(times), 3), "runs_s": times,
                        "nothing_to_do": all(answers), "target_met": statistics.median(times) <= 3.0}
    result["fer status breakdown"] = fer_status_breakdown(cwd)
    result["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
