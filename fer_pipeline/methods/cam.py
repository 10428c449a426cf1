"""Feature maps before pooling and class activation maps (CAM, Zhou et al. 2016), as
LNSU (Zhang et al., NeurIPS 2023) section 3.1 Eq. 2 uses them:
A(i, l, h, w) = sum_c W(l, c) F(i, c, h, w), with F the last convolutional features
and W the classifier's weight (its bias is not part of a CAM).
"""

from __future__ import annotations

import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor


class MapsAndLogits(torch.nn.Module):
    """Wraps a backbone of models/factory.py so one forward gives both the feature maps
    before global average pooling (N x C x H x W) and the logits computed from them."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        if isinstance(model, torchvision.models.ResNet):
            self.trunk = create_feature_extractor(model, return_nodes={"layer4": "maps"})
        elif hasattr(model, "body") and isinstance(model.body, torch.nn.Sequential):
            # small_cnn: its body ends with AdaptiveAvgPool2d + Flatten; keep what comes before.
            if not isinstance(model.body[-2], torch.nn.AdaptiveAvgPool2d):
                raise TypeError("small_cnn body does not end with AdaptiveAvgPool2d + Flatten")
            self.trunk = model.body[:-2]
        else:
            raise TypeError(f"no feature maps before pooling known for {type(model).__name__}")
        self.fc = model.fc

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        out = self.trunk(x)
        return out["maps"] if isinstance(out, dict) else out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.maps(x)
        # Global average pooling then the classifier: the backbone's own forward.
        return maps, self.fc(maps.mean(dim=(2, 3)))


def class_activation_maps(maps: torch.Tensor, fc_weight: torch.Tensor) -> torch.Tensor:
    """N x C x H x W features, L x C weights -> N x L x H x W maps of all classes (Eq. 2)."""
    if maps.shape[1] != fc_weight.shape[1]:
        raise ValueError(f"{maps.shape[1]} feature channels but the classifier reads {fc_weight.shape[1]}")
    return torch.einsum("nchw,lc->nlhw", maps, fc_weight)
