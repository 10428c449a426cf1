"""Multi-backbone ensemble: ABAW4-LSD (Li et al., ECCV-W 2022), section 3 "Ensemble
Learning": each model's softmax probabilities, averaged.

The issue says "summing"; the average has the same arg-max and stays a probability
vector (so an ensemble of identical models is that model).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def average_probabilities(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    if not logits:
        raise ValueError("an ensemble needs at least one model's logits")
    shapes = {tuple(x.shape) for x in logits}
    if len(shapes) != 1:
        raise ValueError(f"the models' logits differ in shape: {sorted(shapes)}")
    return torch.stack([x.softmax(dim=1) for x in logits]).mean(dim=0)


class SoftmaxEnsemble(torch.nn.Module):
    """Models over the same class set (any backbones); forward gives probabilities."""

    def __init__(self, models: Sequence[torch.nn.Module]):
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.members = torch.nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return average_probabilities([m(x) for m in self.members])
