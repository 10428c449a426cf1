"""What the studies share to resume a killed job: each run leaves `<work>/<run>/results.json`
once evaluated, and its weights only while a pending run still reads them."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def results_file(work_dir: Path, run_name: str) -> Path:
    return work_dir / run_name / "results.json"


def pending(work_dir: Path, runs: list) -> list:
    """The runs without metrics yet (a killed job's finished runs have theirs)."""
    return [run for run in runs if not results_file(work_dir, run.name).exists()]


def finished(work_dir: Path, run_name: str, weights: Path, needed_later: bool) -> bool:
    """Its metrics are there, and so are its `weights` if a pending run reads them
    (else it trains again: same seed, same start, so the same weights on CPU)."""
    if not results_file(work_dir, run_name).exists():
        return False
    if needed_later and not weights.exists():
        log.warning("%s: finished earlier, but its weights are gone and a pending run reads them: trained again "
                    "(same seed, same start)", run_name)
        return False
    return True
