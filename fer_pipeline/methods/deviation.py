"""Fine-tuning with a deviation module: ABAW4-LSD (Li et al., ECCV-W 2022), section 3,
Eq. 2, after DLN's deviation module.

Two feature extractors start from the same pretrained weights; one is frozen, the other
trained. The classifier reads their difference,
    x_bar = g_f(x) - g_t(x) + eps,   eps = 1e-6,
which is eps everywhere at initialisation, so fine-tuning starts from the pretrained
features' "no change" point and the classifier learns from how the trainable copy moves
away from them. (The issue writes the difference as trainable - frozen; the sign is
absorbed by the linear classifier, Eq. 2's is kept.)

The frozen copy's BatchNorm layers keep their running statistics fixed (momentum 0) but
follow the module's train/eval mode like the trainable copy, so the two differ only by
what training changes in the trainable copy (its weights and running statistics): in
training both normalise with the batch's statistics (an always-eval frozen copy would
make x_bar non-zero from the first batch).
"""

from __future__ import annotations

import copy

import torch


def feature_extractor(model: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """A factory backbone with its `fc` head removed, and the feature width."""
    if not isinstance(getattr(model, "fc", None), torch.nn.Linear):
        raise TypeError(f"{type(model).__name__} has no linear `fc` head to remove")
    body = copy.deepcopy(model)
    width = body.fc.in_features
    body.fc = torch.nn.Identity()
    return body, width


class DeviationNet(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, num_classes: int, eps: float = 1e-6):
        super().__init__()
        self.trainable, width = feature_extractor(model)
        self.frozen = copy.deepcopy(self.trainable)
        for p in self.frozen.parameters():
            p.requires_grad_(False)
        for m in self.frozen.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.0  # running statistics stay the pretrained ones
        self.eps = eps
        self.fc = torch.nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            frozen = self.frozen(x)
        return frozen - self.trainable(x) + self.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
