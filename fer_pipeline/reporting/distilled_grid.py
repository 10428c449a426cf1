"""The distilled images as a picture: each image de-normalised back to RGB, one tile per
image, one row per class (images_per_class columns), the class name beside its row."""

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
    """One uint8 RGB array: row c holds class c's images in order, `pad` white pixels between tiles."""
    tiles = to_rgb(images)
    _, h, w, _ = tiles.shape
    per_class = [np.flatnonzero(labels.numpy() == c) for c in range(num_classes)]
    cols = max(1, max(len(rows) for rows in per_class))
    grid = np.full((num_classes * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for c, rows in enumerate(per_class):
        for j, i in enumerate(rows):
            y, x = pad + c * (h + pad), pad + j * (w + pad)
            grid[y:y + h, x:x + w] = tiles[i]
    return grid


def save_grid(images: torch.Tensor, labels: torch.Tensor, classes: list[str], path: str | Path,
              title: str) -> np.ndarray:
    grid = grid_array(images, labels, len(classes))
    rows = len(classes)
    fig, ax = plt.subplots(figsize=(2.0 + 0.9 * grid.shape[1] / grid.shape[0] * rows, 0.9 * rows + 0.6))
    ax.imshow(grid, interpolation="nearest")
    step = grid.shape[0] / rows
    ax.set_yticks([step * (c + 0.5) for c in range(rows)], classes)
    ax.set_xticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110, bbox_inches=None)
    return grid
