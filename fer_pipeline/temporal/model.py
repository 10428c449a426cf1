"""The temporal encoder of seed 002 (section 3.4): self-attention over the frozen
student's features of L consecutive frames, one prediction per frame."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_encoding(length: int, dim: int) -> torch.Tensor:
    """The Transformer's fixed positional encoding (Vaswani et al.), length x dim."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class TemporalEncoder(nn.Module):
    """Input projection (LayerNorm + Linear) of each frame's feature, sinusoidal position
    of the frame inside its window, `nn.TransformerEncoder`, a per-frame linear classifier.

    Gap positions (`present` False) are keys no frame attends to. With `window` 1 the
    same network sees one frame at a time: the frame-level baseline it is compared to."""

    def __init__(self, in_dim: int, num_classes: int, window: int, d_model: int, layers: int, heads: int,
                 ff_dim: int, dropout: float):
        super().__init__()
        self.window = window
        self.project = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, d_model), nn.Dropout(dropout))
        self.register_buffer("position", sinusoidal_encoding(window, d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff_dim, dropout, batch_first=True, norm_first=True)
        # No nested-tensor fast path: padded positions then give ordinary (ignored) outputs.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """features B x L x D, present B x L (bool) -> logits B x L x C."""
        if features.shape[1] != self.window:
            raise ValueError(f"expected windows of {self.window} frames, got {features.shape[1]}")
        if not bool(present.any(dim=1).all()):
            raise ValueError("every window needs at least one present frame")
        return self.logits(features, present)

    def logits(self, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """forward without its input checks (which torch.export cannot trace)."""
        x = self.project(features) + self.position
        x = self.encoder(x, src_key_padding_mask=~present)
        return self.head(self.norm(x))


class EveryFramePresent(nn.Module):
    """The encoder with one input, for serving (MLflow's logged model): every frame of
    each window is present."""

    def __init__(self, encoder: TemporalEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        present = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        return self.encoder.logits(features, present)  # every frame present: nothing to check
