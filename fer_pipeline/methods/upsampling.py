"""RandAugment up-sampling of the minority classes: ABAW4-LSD (Li et al., ECCV-W 2022),
section 3 "Data Augmentation and Weighted Cross-Entropy Loss": every class is brought
to the size of the largest with RandAugment copies; two of RandAugment's operations per
image, Solarize and Equalize excluded (12 remain), "not suitable for faces".

The copies are never written to disk: an index lists (source, copy) entries, copy 0
being the image itself and copy k >= 1 its k-th extra, augmented occurrence. The
augmentation is drawn per (seed, epoch, entry), so every occurrence (and every epoch)
gets a fresh one. A class's extra entries cycle through a seeded permutation of its
images, so its images are repeated as evenly as possible (counts differ by at most 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from fer_pipeline.common.atomic import write_json
from fer_pipeline.data.datasets import FaceShardDataset, decode_rgb, sample_seed, seeded_cpu_rng

EXCLUDED_OPS = ("Solarize", "Equalize")


class FaceRandAugment(v2.RandAugment):
    """RandAugment without the operations the paper excludes for faces."""

    _AUGMENTATION_SPACE: ClassVar[dict] = {k: v for k, v in v2.RandAugment._AUGMENTATION_SPACE.items() if k not in EXCLUDED_OPS}


def upsample_plan(targets, seed: int) -> list[tuple[int, int]]:
    """(row, copy) entries: every row once as copy 0, plus augmented repeats that bring
    every present class to the largest class's count. Sorted by (row, copy)."""
    targets = np.asarray(targets)
    if targets.size == 0:
        raise ValueError("nothing to up-sample: no rows")
    classes, counts = np.unique(targets, return_counts=True)
    n_max = int(counts.max())
    rng = np.random.default_rng(seed)
    entries = [(int(i), 0) for i in range(len(targets))]
    for c, n in zip(classes, counts):
        rows = rng.permutation(np.flatnonzero(targets == c))
        for k in range(n_max - int(n)):
            entries.append((int(rows[k % n]), 1 + k // int(n)))
    return sorted(entries)


def write_upsample_index(path: str | Path, sources: list[str], plan: list[tuple[int, int]], meta: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {**meta, "count": len(plan), "entries": [[sources[row], copy] for row, copy in plan]})


def read_upsample_index(path: str | Path) -> list[tuple[str, int]]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if "entries" not in data:
        raise KeyError(f"{path}: no `entries` (not an up-sampling index)")
    return [(str(source), int(copy)) for source, copy in data["entries"]]


class UpsampledDataset(Dataset):
    """A FaceShardDataset seen through an up-sampling index."""

    def __init__(self, base: FaceShardDataset, entries: list[tuple[str, int]], num_ops: int = 2,
                 magnitude: int = 9):
        row_of = {s: i for i, s in enumerate(base.sources)}
        missing = sorted({s for s, _ in entries if s not in row_of})
        if missing:
            raise ValueError(f"{len(missing)} up-sampling index entries are not in the dataset, e.g. {missing[0]!r}")
        self.base = base
        self.rows = [row_of[s] for s, _ in entries]
        self.copies = [c for _, c in entries]
        self.targets = base.targets[self.rows]
        self.randaugment = FaceRandAugment(num_ops=num_ops, magnitude=magnitude)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        row = self.rows[index]
        image = decode_rgb(self.base.images[row], self.base.sources[row])
        with seeded_cpu_rng(sample_seed(self.base.seed, epoch, index)):
            if self.copies[index] > 0:
                image = self.randaugment(image)
            if self.base.recipe is not None:
                # Drawn after RandAugment's, from the generator it drew from: the per-image
                # path's parameters. The base's augmentation then runs per batch (collate_faces).
                return self.base.raw(image, torch.default_generator), int(self.targets[index])
            image = self.base.transform(image)
        return image, int(self.targets[index])
