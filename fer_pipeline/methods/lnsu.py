"""LNSU's training objective (Zhang et al., NeurIPS 2023, section 3, Eq. 1 and 6):
l_train = l_cls + lambda * l_cons, where l_cls is the cross-entropy of the image and of
its horizontal flip (Eq. 1; with re-balanced smooth labels, Eq. 8, when `rsl_smoothing`
is not 0) and l_cons the re-balanced attention consistency (Eq. 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fer_pipeline.methods.cam import MapsAndLogits
from fer_pipeline.methods.rac import rac_loss
from fer_pipeline.methods.rsl import rsl_loss


@dataclass(frozen=True)
class LNSUConfig:
    consistency_weight: float = 2.0   # lambda (paper section 4.2)
    rsl_smoothing: float | None = None  # None: the form's default; 0: plain cross-entropy
    rsl_form: str = "official"
    rac_on: str = "loss"


def lnsu_loss(net: MapsAndLogits, images: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
              cfg: LNSUConfig = LNSUConfig()) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch and its parts (for logging)."""
    both = torch.cat([images, torch.flip(images, dims=(-1,))])
    maps, logits = net(both)  # one forward for both views: BatchNorm sees them together
    n = len(images)
    weights = weights.to(logits)
    l_cls = rsl_loss(logits, torch.cat([labels, labels]), weights, cfg.rsl_smoothing, cfg.rsl_form) * 2
    # x 2: Eq. 1 sums the two views' cross-entropies instead of averaging them.
    l_cons = rac_loss(maps[:n], maps[n:], net.fc.weight, weights, cfg.rac_on)
    total = l_cls + cfg.consistency_weight * l_cons
    return total, {"cls": l_cls.item(), "cons": l_cons.item()}
