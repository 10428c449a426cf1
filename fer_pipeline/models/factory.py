"""Backbones by name. Weights are never downloaded: pass a local state_dict path."""

from __future__ import annotations

import logging

import torch
import torchvision

log = logging.getLogger(__name__)

def small_cnn(weights=None, num_classes: int = 7) -> torch.nn.Module:
    """Four conv blocks (32-64-128-256 channels) and a linear head named `fc`, like the
    ResNets (mining reads the features before `fc`). For CPU-sized studies on small
    crops: about 1.2 M parameters, an order of magnitude cheaper per step than ResNet-18."""
    del weights  # the signature matches torchvision's builders; there are no pretrained weights
    blocks, channels = [], 3
    for width in (32, 64, 128, 256):
        blocks += [torch.nn.Conv2d(channels, width, 3, padding=1, bias=False), torch.nn.BatchNorm2d(width),
                   torch.nn.ReLU(inplace=True), torch.nn.Conv2d(width, width, 3, padding=1, bias=False),
                   torch.nn.BatchNorm2d(width), torch.nn.ReLU(inplace=True), torch.nn.MaxPool2d(2)]
        channels = width
    model = torch.nn.Sequential(*blocks, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    model.fc = torch.nn.Linear(channels, num_classes)
    return _WithHead(model)


class _WithHead(torch.nn.Module):
    def __init__(self, body: torch.nn.Sequential):
        super().__init__()
        self.fc = body.fc
        del body.fc
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


ARCHS = {
    "small_cnn": small_cnn,
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
