"""Re-balanced smooth labels (RSL): LNSU (Zhang et al., NeurIPS 2023) section 3.2, Eq. 8.

Two forms of the smoothed target of a sample of class y, with class weights B
(class_weights.py):

* ``official`` (default, LNSU's official code): the true class keeps 1 - eps and the
  other classes share eps in proportion to their weights,
  t_l = eps * B_l / sum_{k != y} B_k for l != y; eps = 0.3.
* ``paper`` (Eq. 8): t_l = (1 - alpha) [l = y] + alpha * B_l / L, alpha = 0.1. Eq. 8's
  targets sum to 1 only when the weights sum to L, so they are rescaled to do so here
  (effective_number_weights already are).

The classification loss is the cross-entropy with these soft targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FORMS = ("official", "paper")
DEFAULT_SMOOTHING = {"official": 0.3, "paper": 0.1}


def rsl_targets(labels: torch.Tensor, weights: torch.Tensor, smoothing: float | None = None,
                form: str = "official") -> torch.Tensor:
    """N x L soft targets, each row summing to 1 (smoothing: 0.3 official, 0.1 paper)."""
    if form not in FORMS:
        raise ValueError(f"unknown RSL form {form!r}; choose one of {FORMS}")
    smoothing = DEFAULT_SMOOTHING[form] if smoothing is None else smoothing
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    if (weights <= 0).any():
        raise ValueError("RSL class weights must be positive")
    num_classes = len(weights)
    onehot = F.one_hot(labels, num_classes).to(weights.dtype)
    if form == "official":
        others = weights.expand(len(labels), -1) * (1 - onehot)
        return (1 - smoothing) * onehot + smoothing * others / others.sum(dim=1, keepdim=True)
    scaled = weights * num_classes / weights.sum()
    return (1 - smoothing) * onehot + smoothing * scaled.expand(len(labels), -1) / num_classes


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_l t_l log p_l (Eq. 7 with soft targets)."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def rsl_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, smoothing: float | None = None,
             form: str = "official") -> torch.Tensor:
    return soft_cross_entropy(logits, rsl_targets(labels, weights.to(logits), smoothing, form))
