"""Time the demo DAG: run `snakemake --cores all` from scratch in a fresh copy of the
project and print, as JSON, the wall time of the whole run and of each job (from
Snakemake's own benchmark-free job log timestamps), plus the demo's metrics.

    python bench/pipeline_walltime.py [--params params.yaml] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import make_project_copy, tool_env  # noqa: E402


def job_times(log_text: str) -> dict[str, float]:
    """Seconds per job from the first and last timestamp each `fer` log carries."""
    stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+", log_text, re.M)
    if len(stamps) < 2:
        return {}
    t0, t1 = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S") for s in (stamps[0], stamps[-1]))
    return {"seconds_logged": (t1 - t0).total_seconds()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--keep", help="run in this folder and keep it")
    args = ap.parse_args()
    params = yaml.safe_load(Path(args.params).read_text())
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fer-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    proj = make_project_copy(work, params)
    t0 = time.time()
    proc = subprocess.run(["snakemake", "--cores", "all"], cwd=proj, env=tool_env(), capture_output=True, text=True)
    total = time.time() - t0
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        sys.exit(proc.returncode)
    jobs = {}
    for log in sorted((proj / "logs").rglob("*.log")):
        jobs[str(log.relative_to(proj / "logs"))] = job_times(log.read_text())
    metrics = json.loads((proj / "reports/eval/supervised/metrics.json").read_text())
    history = json.loads((proj / "models/supervised/history.json").read_text())
    print(json.dumps({
        "what": "snakemake --cores all, demo DAG from scratch (FaceSynth data)",
        "wall_seconds_total": round(total, 1),
        "jobs": jobs,
        "train_images_per_s": [h["images_per_s"] for h in history],
        "metrics": {k: round(metrics[k], 4) for k in ("overall_accuracy", "mean_class_accuracy",
                                                       "std_class_accuracy", "macro_f1")},
        "per_class_accuracy": {k: (round(v, 4) if v is not None else None)
                               for k, v in metrics["per_class_accuracy"].items()},
    }, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
