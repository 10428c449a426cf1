"""Formatting shared by every report: the demo-data note and mean ± sd over seeds."""

from __future__ import annotations

import numpy as np

DEMO_NOTE = ("Numbers computed on FaceSynth, the procedural demo data embedded in fer-pipeline, "
             "not on the real datasets: they show that the pipeline works, not how the papers' methods compare.")


def mean_sd(values: list[float], scale: float = 100.0) -> dict:
    """Mean and sample standard deviation (ddof 1; 0 for a single seed), times `scale` (% by default)."""
    arr = scale * np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "sd": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, "n": len(arr)}


def fmt(stat: dict) -> str:
    return f"{stat['mean']:.2f} ± {stat['sd']:.2f}"
