"""Data for meta-training: step-indexed batches of labelled faces and of the
unlabelled face-recognition pool (weak + strong views).

Batches are a function of (seed, step) only: the order of epoch e is a
permutation seeded by (seed, e), and a sample's augmentation is seeded by
(seed, epoch, index). A run resumed at step t therefore sees the same batches as
an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from fer_pipeline.meta.augment import WeakStrongViews
from fer_pipeline.data.datasets import decode_rgb, epoch_generator, read_split, sample_seed, seeded_cpu_rng


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless batches of (index, epoch) over `indices`, starting at `start_step`.

    Under DDP each of `world_size` processes takes its slice (`rank`) of one global
    batch of `batch_size * world_size`, so the ranks never see the same image in a step."""

    def __init__(self, indices: np.ndarray, batch_size: int, seed: int, start_step: int = 0,
                 rank: int = 0, world_size: int = 1):
        global_batch = batch_size * world_size
        if len(indices) < global_batch:
            raise ValueError(f"batch size {batch_size} x {world_size} process(es) exceeds the {len(indices)} "
                             "available images")
        self.indices = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        self.batch_size = global_batch
        self.rank_slice = slice(rank * batch_size, (rank + 1) * batch_size)
        self.seed = seed
        self.start_step = start_step
        self.steps_per_epoch = len(indices) // global_batch

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        return self.indices[torch.randperm(len(self.indices), generator=epoch_generator(self.seed, epoch))]

    def __iter__(self):
        step = self.start_step
        while True:
            epoch, offset = divmod(step, self.steps_per_epoch)
            order = self._epoch_order(epoch)
            batch = order[offset * self.batch_size:(offset + 1) * self.batch_size][self.rank_slice]
            yield [(int(i), epoch) for i in batch]
            step += 1

    def __len__(self) -> int:  # endless; DataLoader only needs it for progress bars
        return 2**31


class PoolViews(Dataset):
    """The unlabelled pool: each item is (weak view, strong view, index)."""

    def __init__(self, dataset_dir: str | Path, split: str, views: WeakStrongViews, seed: int):
        table = read_split(dataset_dir, split, columns=("image", "split", "source", "landmarks5"))
        self.images = table.column("image").to_pylist()
        self.sources = table.column("source").to_pylist()
        self.landmarks = np.asarray(table.column("landmarks5").to_pylist(), dtype=np.float32).reshape(-1, 5, 2)
        self.views = views
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]):
        index, epoch = key
        image = decode_rgb(self.images[index], self.sources[index])
        with seeded_cpu_rng(sample_seed(self.seed, epoch, index)):
            weak, strong = self.views(image, self.landmarks[index])
        return weak, strong, index
