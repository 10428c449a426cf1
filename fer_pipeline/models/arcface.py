"""Additive angular margin (ArcFace, Deng et al. 2019) and the network it trains.

logits_j = s * cos(theta_j) for every identity j, except the true one, which gets
s * cos(theta_y + m): the embedding must be m radians closer to its own identity's
centre than the decision boundary asks, which makes embeddings of one person cluster
tightly on the hypersphere (what verification by cosine similarity needs).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fer_pipeline.models.factory import build_model

HEAD = "fc."  # the backbone's last layer (the embedding layer here): never exported as an initialisation


class ArcFaceHead(torch.nn.Module):
    def __init__(self, embedding_dim: int, num_classes: int, scale: float, margin: float):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(num_classes, embedding_dim))
        torch.nn.init.xavier_uniform_(self.weight)
        self.scale, self.margin = scale, margin
        # Past theta = pi - m, cos(theta + m) would rise again; there the margin is applied
        # as a linear penalty instead, so the target logit keeps falling as theta grows.
        self.threshold = math.cos(math.pi - margin)
        self.penalty = math.sin(math.pi - margin) * margin

    def forward(self, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        cosine = F.linear(F.normalize(embeddings.float()), F.normalize(self.weight)).clamp(-1.0, 1.0)
        sine = torch.sqrt((1.0 - cosine * cosine).clamp(min=1e-7))
        with_margin = cosine * math.cos(self.margin) - sine * math.sin(self.margin)
        with_margin = torch.where(cosine > self.threshold, with_margin, cosine - self.penalty)
        target = F.one_hot(targets, cosine.shape[1]).bool()
        return self.scale * torch.where(target, with_margin, cosine)


class EmbeddingNet(torch.nn.Module):
    """A backbone whose `fc` maps pooled features to the embedding, then batch norm
    (the usual FR neck). `backbone` is what FER networks start from, less `fc`."""

    def __init__(self, arch: str, embedding_dim: int):
        super().__init__()
        self.backbone = build_model(arch, embedding_dim)
        self.norm = torch.nn.BatchNorm1d(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.backbone(x))

    def backbone_state(self) -> dict[str, torch.Tensor]:
        """The backbone's weights without its last layer, on the CPU."""
        return {k: v.detach().cpu() for k, v in self.backbone.state_dict().items() if not k.startswith(HEAD)}
