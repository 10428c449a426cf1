"""Backbones by name. Weights are never downloaded: pass a local state_dict path."""

from __future__ import annotations

import logging

import torch
import torchvision

log = logging.getLogger(__name__)

ARCHS = {
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
}


def build_model(arch: str, num_classes: int, weights: str | None = None) -> torch.nn.Module:
    if arch not in ARCHS:
        raise KeyError(f"unknown arch {arch!r}; known: {sorted(ARCHS)}")
    model = ARCHS[arch](weights=None, num_classes=num_classes)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = state.get("model", state)
        own = model.state_dict()
        # A pretrained head has another number of classes: keep our freshly initialised one.
        skipped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
        state = {k: v for k, v in state.items() if k not in skipped}
        missing, unexpected = model.load_state_dict(state, strict=False)
        log.info("loaded %s: skipped %s, missing %s, unexpected %s", weights, skipped, missing, unexpected)
    return model
