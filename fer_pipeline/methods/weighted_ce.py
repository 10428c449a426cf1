"""Label smoothing with a class-weighted cross-entropy: ABAW4-LSD (Li et al., "Facial
Expression Recognition In-the-Wild with Deep Pre-trained Models", ECCV-W 2022),
section 3, Eq. 1 and "Data Augmentation and Weighted Cross-Entropy Loss".

Smoothed target (Eq. 1): t_k = (1 - alpha) [k = y] + alpha / K, alpha = 0.2.
Weighted loss: each sample's cross-entropy with its smoothed target is weighted by its
class's weight w_y, and the batch loss is sum_i w_{y_i} CE_i / sum_i w_{y_i}, so the
loss keeps the scale of an unweighted mean. Weights come from params (the paper sets
[1, 3, 5, 1, 1, 1] by hand) or from class counts (class_weights.given_or_counted).

Departure: the paper does not say how the weights meet the smoothed targets; weighting
whole samples by their labelled class (rather than each target entry by its class, as
torch's `cross_entropy(weight=..., label_smoothing=...)` does) keeps "weight the
minority classes' samples" literal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smoothed_targets(labels: torch.Tensor, num_classes: int, smoothing: float = 0.2) -> torch.Tensor:
    if not 0 <= smoothing <= 1:
        raise ValueError(f"label smoothing must be in [0, 1], got {smoothing}")
    onehot = F.one_hot(labels, num_classes).float()
    return onehot * (1 - smoothing) + smoothing / num_classes


def weighted_smoothed_ce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                         smoothing: float = 0.2) -> torch.Tensor:
    targets = smoothed_targets(labels, logits.shape[1], smoothing).to(logits)
    per_sample = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)
    if weights is None:
        return per_sample.mean()
    if weights.shape != (logits.shape[1],):
        raise ValueError(f"{tuple(weights.shape)} class weights for {logits.shape[1]} classes")
    w = weights.to(logits)[labels]
    return (w * per_sample).sum() / w.sum()
