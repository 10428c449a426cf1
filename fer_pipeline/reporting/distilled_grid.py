"""The distilled images as a picture: each image de-normalised back to RGB, one tile per
image, one column per class (images_per_class rows), the class name under its column."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from fer_pipeline.data.datasets import MEAN, STD  # noqa: E402
from fer_pipeline.eval.plots import save_figure  # noqa: E402


def to_rgb(images: torch.Tensor) -> np.ndarray:
    """Normalised network inputs (N x 3 x H x W) -> uint8 RGB (N x H x W x 3); the learned
    pixels may leave the image range, so they are clipped."""
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    rgb = (images.detach().cpu().float() * std + mean).clamp(0, 1)
    return (rgb * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def grid_array(images: torch.Tensor, labels: torch.Tensor, num_classes: int, pad: int = 2) -> np.ndarray:
    """One uint8 RGB array: column c holds class c's images top to bottom, `pad` white
    pixels between tiles (a white tile where a class has fewer images)."""
    tiles = to_rgb(images)
    _, h, w, _ = tiles.shape
    per_class = [np.flatnonzero(labels.numpy() == c) for c in range(num_classes)]
    rows = max(1, max(len(found) for found in per_class))
    grid = np.full((rows * (h + pad) + pad, num_classes * (w + pad) + pad, 3), 255, np.uint8)
    for c, found in enumerate(per_class):
        for j, i in enumerate(found):
            y, x = pad + j * (h + pad), pad + c * (w + pad)
            grid[y:y + h, x:x + w] = tiles[i]
    return grid


def save_grid(images: torch.Tensor, labels: torch.Tensor, classes: list[str], path: str | Path,
              title: str) -> np.ndarray:
    grid = grid_array(images, labels, len(classes))
    cols = len(classes)
    rows = grid.shape[0] / grid.shape[1] * cols
    fig, ax = plt.subplots(figsize=(1.2 * cols + 0.6, 1.2 * rows + 1.2))
    ax.imshow(grid, interpolation="nearest")
    step = grid.shape[1] / cols
    ax.set_xticks([step * (c + 0.5) for c in range(cols)], classes, fontsize=8, rotation=30)
    ax.set_yticks([])
    ax.set_title(title, fontsize=8, wrap=True)
    fig.tight_layout()
    save_figure(fig, path, dpi=110, bbox_inches=None)
    return grid
