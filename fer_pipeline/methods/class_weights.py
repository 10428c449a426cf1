"""Per-class re-balancing weights from class counts.

* ``effective``: the class-balanced weights that LNSU (Zhang et al., NeurIPS 2023,
  section 3.1, Eq. 4) takes from Cui et al. (CVPR 2019): B_l = (1 - beta) / (1 - beta^n_l),
  beta = 0.9999, the inverse of the effective number of samples. Normalised so the
  weights sum to the number of classes, as Cui et al. do.
* ``inverse``: plain inverse frequency N / (C * n_l), what LNSU's official code uses
  instead of Eq. 4 (offered for comparison; the paper's form is the default).

ABAW4-LSD's weighted cross-entropy takes its weights from here too (or from params).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

SCHEMES = ("effective", "inverse")


def _counts(counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.ndim != 1 or len(counts) == 0:
        raise ValueError(f"class counts must be a non-empty vector, got shape {tuple(counts.shape)}")
    empty = torch.nonzero(counts <= 0).flatten().tolist()
    if empty:
        # A class without samples has no defined weight (Eq. 4 divides by zero).
        raise ValueError(f"class counts must be positive; classes {empty} have none")
    return counts


def effective_number_weights(counts, beta: float = 0.9999, normalise: bool = True) -> torch.Tensor:
    """(1 - beta) / (1 - beta^n_c) per class (LNSU Eq. 4), summing to C when `normalise`."""
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    n = _counts(counts)
    weights = (1 - beta) / (1 - torch.pow(torch.tensor(beta, dtype=torch.float64), n))
    if normalise:
        weights = weights * len(n) / weights.sum()
    return weights.float()


def inverse_frequency_weights(counts) -> torch.Tensor:
    """N / (C * n_c) per class: 1 for every class of a balanced set."""
    n = _counts(counts)
    return (n.sum() / (len(n) * n)).float()


def class_weights(counts, scheme: str = "effective", beta: float = 0.9999) -> torch.Tensor:
    if scheme == "effective":
        return effective_number_weights(counts, beta)
    if scheme == "inverse":
        return inverse_frequency_weights(counts)
    raise ValueError(f"unknown class weight scheme {scheme!r}; choose one of {SCHEMES}")


def given_or_counted(num_classes: int, given: Sequence[float] | None = None, counts=None,
                     scheme: str = "inverse") -> torch.Tensor:
    """Weights from a list (ABAW4-LSD sets [1, 3, 5, 1, 1, 1] by hand), else from counts."""
    if given is not None:
        if len(given) != num_classes or any(w <= 0 for w in given):
            raise ValueError(f"class weights {list(given)} must be {num_classes} positive numbers, one per class")
        return torch.tensor(given, dtype=torch.float32)
    if counts is None:
        raise ValueError("class weights need either a list of weights or the class counts")
    if len(counts) != num_classes:
        raise ValueError(f"{len(counts)} class counts for {num_classes} classes")
    return class_weights(counts, scheme)
