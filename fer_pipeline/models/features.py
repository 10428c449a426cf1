"""Penultimate features: what a backbone's classifier `fc` reads, tapped with
torchvision's FX feature extraction (same numbers as the full forward pass up to `fc`)."""

from __future__ import annotations

import torch
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names


class Penultimate(torch.nn.Module):
    """images -> the features fed to `fc` (every backbone of models/factory.py names its head `fc`)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        _, nodes = get_graph_node_names(model)
        if nodes[-1:] != ["fc"]:
            raise ValueError(f"{type(model).__name__}: the last node is {nodes[-1:]}, not the classifier `fc`")
        # Nodes are in execution order: the one before `fc` is its input.
        self.tap = create_feature_extractor(model, {nodes[-2]: "features"})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tap(x)["features"]
