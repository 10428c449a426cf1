"""Long-tailed subsets with a given imbalance factor: LNSU (Zhang et al., NeurIPS 2023)
section 4.4, following Cui et al. (CVPR 2019).

Classes are ranked by their count in the full train split (largest first; ties by
class id). The class of rank r (0 .. C'-1, over the C' classes present) keeps
    n_r = floor(n_max * IF^(-r / (C' - 1)))       (at least 1)
images, an exponential profile from n_max (the largest class, all of it) down to
n_max / IF, i.e. n_max * mu^r with mu = IF^(-1 / (C' - 1)). A class that has fewer
images than its target keeps all of them (capped by availability), so the realised
factor can be smaller than asked; the index records both. Images are drawn without
replacement by `seed`; the test split is never read.

Departure: the paper writes n = n_l mu^l with n_l the class's own count; that only
gives the stated max/min ratio if every class starts from n_max, so (as Cui et al.'s
long-tailed CIFAR) the profile starts from the largest class's count.
"""

from __future__ import annotations

import math

import numpy as np


def class_ranks(counts: np.ndarray) -> dict[int, int]:
    """Rank of every present class, largest first (ties: lower class id first)."""
    present = [c for c in range(len(counts)) if counts[c] > 0]
    order = sorted(present, key=lambda c: (-counts[c], c))
    return {c: r for r, c in enumerate(order)}


def target_counts(counts, imbalance_factor: float) -> np.ndarray:
    """Images kept per class (0 for absent classes), before sampling."""
    if not imbalance_factor >= 1:
        raise ValueError(f"imbalance factor must be >= 1, got {imbalance_factor}")
    counts = np.asarray(counts, dtype=np.int64)
    ranks = class_ranks(counts)
    if not ranks:
        raise ValueError("no class has any image")
    n_max, last = int(counts.max()), max(len(ranks) - 1, 1)
    out = np.zeros(len(counts), dtype=np.int64)
    for c, r in ranks.items():
        # 1e-9: n_max / IF computed in floating point must not drop below an exact integer.
        ideal = max(1, math.floor(n_max * imbalance_factor ** (-r / last) + 1e-9))
        out[c] = min(ideal, int(counts[c]))
    return out


def imbalanced_subset(targets, imbalance_factor: float, seed: int, num_classes: int) -> np.ndarray:
    """Sorted row indices of the long-tailed subset of `targets` (class ids)."""
    targets = np.asarray(targets)
    if targets.size and (targets.min() < 0 or targets.max() >= num_classes):
        raise ValueError(f"class ids must lie in 0 .. {num_classes - 1}")
    keep = target_counts(np.bincount(targets, minlength=num_classes), imbalance_factor)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(targets == c), size=int(keep[c]), replace=False)
              for c in range(num_classes) if keep[c] > 0]
    return np.sort(np.concatenate(chosen))


def realised_factor(kept_counts) -> float:
    kept = [int(n) for n in kept_counts if n > 0]
    return max(kept) / min(kept)
