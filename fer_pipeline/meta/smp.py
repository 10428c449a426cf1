"""Smp, Face2Exp's sampling module: a labelled subset with the same count per class.

A subset is defined by (labelled fraction, seed) and written as an index file of
row sources, so every run at that fraction trains on exactly the same images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fer_pipeline.common.atomic import write_text


def balanced_subset(targets: np.ndarray, fraction: float, seed: int, num_classes: int) -> np.ndarray:
    """Indices of `fraction` of the data split equally over the classes present.

    Each class gets k = min(round(fraction * N / C), n_rarest) images (the rarest
    class caps every class, so the subset stays balanced), drawn without
    replacement by `seed`. Returned sorted, so order never depends on the draw."""
    if not 0 < fraction <= 1:
        raise ValueError(f"labelled fraction must be in (0, 1], got {fraction}")
    targets = np.asarray(targets)
    present = [c for c in range(num_classes) if (targets == c).any()]
    counts = {c: int((targets == c).sum()) for c in present}
    per_class = min(max(1, round(fraction * len(targets) / len(present))), min(counts.values()))
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(targets == c), size=per_class, replace=False) for c in present]
    return np.sort(np.concatenate(chosen))


def labelled_subset(targets: np.ndarray, cfg: dict, num_classes: int) -> np.ndarray:
    """The labelled images a meta run may see (`train.meta`: labeled_fraction, balanced, seed):
    Smp's balanced subset, or an unbalanced fraction as drawn (the paper's RAF-DB 25/50/100 %)."""
    if cfg["balanced"]:
        return balanced_subset(targets, cfg["labeled_fraction"], cfg["seed"], num_classes)
    rng = np.random.default_rng(cfg["seed"])
    n = max(1, round(cfg["labeled_fraction"] * len(targets)))
    return np.sort(rng.choice(len(targets), size=n, replace=False))


def finetune_subset(targets: np.ndarray, meta_cfg: dict, finetune_cfg: dict, num_classes: int) -> np.ndarray:
    """The labelled images the student's finetune (and its control, the baseline put
    through the same finetune) train on: inside the meta run's labelled subset, so no
    finetune sees labels the meta run did not have; with `balanced`, Smp's equal count
    per class drawn from it (the rarest class caps every class)."""
    subset = labelled_subset(targets, meta_cfg, num_classes)
    if finetune_cfg["balanced"]:
        subset = subset[balanced_subset(targets[subset], 1.0, meta_cfg["seed"], num_classes)]
    return subset


def write_index(path: str | Path, sources: list[str], indices: np.ndarray, meta: dict) -> None:
    """JSON index: the chosen rows' sources plus how they were chosen (atomic write)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps({**meta, "count": int(len(indices)),
                                 "sources": [sources[i] for i in indices]}, indent=1) + "\n")


def read_index(path: str | Path) -> set[str]:
    return set(json.loads(Path(path).read_text(encoding="utf-8"))["sources"])
