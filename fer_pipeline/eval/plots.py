"""Confusion matrix and per-class accuracy charts (PNG, declared as DVC plots)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run on servers
import matplotlib.pyplot as plt
import numpy as np

from fer_pipeline.common.atomic import atomic_path


def save_figure(fig, path: Path, dpi: int = 120, bbox_inches: str | None = "tight") -> None:
    """Write `fig` atomically, then close it."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:  # the temp name has no image extension: name the format
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches=bbox_inches)
    finally:
        plt.close(fig)


def plot_confusion(matrix: list[list[int]], classes: list[str], path: Path, title: str) -> None:
    from sklearn.metrics import ConfusionMatrixDisplay  # here: sklearn costs seconds to import, most plots skip it

    cm = np.asarray(matrix, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)  # rows: true class, sum to 1
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ConfusionMatrixDisplay(norm, display_labels=classes).plot(ax=ax, cmap="Blues", values_format=".2f",
                                                               colorbar=False, xticks_rotation=45)
    ax.set_title(title)
    save_figure(fig, path)


def plot_per_class(per_class: dict[str, float | None], mean: float, path: Path, title: str) -> None:
    names = list(per_class)
    values = [100 * (per_class[n] or 0.0) for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.bar(names, values, color="#4C72B0")
    ax.axhline(100 * mean, color="#C44E52", linestyle="--", label=f"mean {100 * mean:.1f}%")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(loc="upper right")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    save_figure(fig, path)
