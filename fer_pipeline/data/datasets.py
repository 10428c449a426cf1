"""Reading prepared shards for training and evaluation.

The demo reads a split's JPEG bytes into memory (a few MB); the Parquet row
groups are sized so a lazy row-group reader can replace this for datasets that
do not fit in RAM.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import Dataset, Sampler, default_collate
from torchvision.transforms import v2

from fer_pipeline.common.labels import ClassSet
from fer_pipeline.data.batch_augment import BatchAugment, RawFace, augment_batch
from fer_pipeline.data.prep.shards import read_parquet, shard_paths

log = logging.getLogger(__name__)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def read_split(dataset_dir: str | Path, split: str, columns=("image", "label", "split", "source")) -> pa.Table:
    """One split of a prepared dataset, all shards concatenated in shard order."""
    tables = [read_parquet(p, columns=list(columns), filters=[("split", "=", split)]) for p in shard_paths(dataset_dir)]
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise ValueError(f"{dataset_dir}: split {split!r} has no rows")
    return table


def build_transform(input_size: int, augment: dict | None) -> v2.Compose:
    """The per-image transforms (the eval ones without `augment`). With `augment`,
    BatchAugment draws the same parameters and applies them per batch (batch_augment.py)."""
    steps: list = []
    if augment:
        steps.append(v2.RandomResizedCrop(input_size, scale=tuple(augment["crop_scale"]), antialias=True))
        if augment["hflip"]:
            steps.append(v2.RandomHorizontalFlip())
        if augment["color_jitter"] > 0:
            c = augment["color_jitter"]
            steps.append(v2.ColorJitter(brightness=c, contrast=c, saturation=c))
    else:
        steps.append(v2.Resize(input_size, antialias=True))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    return v2.Compose(steps)


def batched(augment: dict | None) -> bool:
    """Whether a training augmentation runs per batch (`augment.batched`, default true)."""
    return bool(augment) and bool(augment.get("batched", True))


def decode_rgb(data: bytes, source: str) -> torch.Tensor:
    """JPEG bytes -> uint8 RGB tensor (C x H x W view of H x W x C memory)."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"undecodable image in shard row {source!r}")
    # cvtColor swaps channels in one pass; a reversed-stride view made contiguous
    # (bgr[:, :, ::-1]) cost as much as the decode itself.
    return torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator behind epoch `epoch`'s data order: a function of (seed, epoch) only."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return ((seed * 1_000_003 + epoch) * 10_000_019 + index) % (2**63)


@contextmanager
def seeded_cpu_rng(seed: int):
    """Run a block with torch's CPU generator seeded, then put its state back.

    Per-sample augmentation draws only on the CPU generator. `torch.manual_seed` would
    also reseed every CUDA device (changing the training loop's dropout draws when
    num_workers=0) and costs ~0.4 ms a call, a large share of a 112-px sample; so the
    fork names no device and only the CPU generator is seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


class FaceShardDataset(Dataset):
    """Labelled faces of one split, with class ids of the experiment's class set.

    Augmentation randomness is seeded per (seed, epoch, index), so a sample looks
    the same whatever worker loads it and a resumed run sees the same pixels.

    With a batched augmentation (`augment.batched`, the default) an item's image is a
    RawFace (the decoded uint8 face and its drawn parameters), which `collate_faces`
    augments per batch: a DataLoader over this dataset needs `collate_fn=collate_faces`
    (the default collate refuses a RawFace rather than pass it on).
    """

    def __init__(self, dataset_dir: str | Path, split: str, class_set: ClassSet, input_size: int,
                 augment: dict | None = None, seed: int = 0):
        table = read_split(dataset_dir, split)
        labels = table.column("label").to_pylist()
        ids = [class_set.index(lbl) for lbl in labels]
        keep = [i for i, c in enumerate(ids) if c is not None]
        dropped = Counter(labels[i] for i, c in enumerate(ids) if c is None)
        if dropped:
            # Not an error: e.g. contempt in a 7-class experiment. Said, never silent.
            log.warning("%s/%s: %d rows outside class set %s are not used: %s",
                        dataset_dir, split, sum(dropped.values()), class_set.name, dict(dropped))
        images = table.column("image").to_pylist()
        sources = table.column("source").to_pylist()
        self.images = [images[i] for i in keep]
        self.sources = [sources[i] for i in keep]
        self.targets = torch.tensor([ids[i] for i in keep], dtype=torch.long)
        self.class_set = class_set
        self.transform = build_transform(input_size, augment)
        self.augment = bool(augment)
        self.recipe = BatchAugment.from_config(input_size, augment) if batched(augment) else None
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def restrict_to(self, sources: set[str], what: str) -> None:
        """Keep only the rows whose source is listed (an Smp subset index, say)."""
        keep = [i for i, s in enumerate(self.sources) if s in sources]
        if len(keep) != len(sources):
            raise ValueError(f"{what}: {len(sources) - len(keep)} of its {len(sources)} images are not in this split")
        self.images = [self.images[i] for i in keep]
        self.sources = [self.sources[i] for i in keep]
        self.targets = self.targets[keep]

    def __len__(self) -> int:
        return len(self.images)

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.targets, minlength=len(self.class_set))

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor | RawFace, int]:
        """`dataset[i]` uses the epoch set by set_epoch; `dataset[i, epoch]` names it
        (step-based samplers pass it, since workers do not see set_epoch)."""
        index, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        image = decode_rgb(self.images[index], self.sources[index])
        if self.recipe is not None:
            # The sample's seed: the same draws as the per-image path's reseeded CPU
            # generator, without touching torch's global state.
            return self.raw(image, sample_seed(self.seed, epoch, index)), int(self.targets[index])
        if self.augment:
            with seeded_cpu_rng(sample_seed(self.seed, epoch, index)):
                image = self.transform(image)
        else:
            image = self.transform(image)
        return image, int(self.targets[index])

    def raw(self, image: torch.Tensor, source: int | torch.Generator) -> RawFace:
        """A decoded face with its batched augmentation's parameters drawn from `source`
        (a seed, or a generator: BatchAugment.draw)."""
        return RawFace(image, self.recipe.draw(image.shape[-2], image.shape[-1], source))


_MEAN = torch.tensor(MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(STD).view(1, 3, 1, 1)


def collate_faces(batch: list[tuple]) -> tuple | list:
    """default_collate, except that RawFace images (first field of an item) are augmented
    together and normalised: the batched half of FaceShardDataset's augmentation. Items
    whose image is already a tensor (an unaugmented or distilled set mixed in) keep it."""
    firsts = [item[0] for item in batch]
    raw = [k for k, x in enumerate(firsts) if isinstance(x, RawFace)]
    if not raw:
        return default_collate(batch)
    augmented = augment_batch([firsts[k].image for k in raw], [firsts[k].params for k in raw])
    augmented = (augmented - _MEAN) / _STD
    if len(raw) == len(batch):
        images = augmented
    else:
        ready = sorted(set(range(len(batch))) - set(raw))
        images = torch.empty((len(batch), *augmented.shape[1:]), dtype=augmented.dtype)
        images[raw] = augmented
        images[ready] = torch.stack([firsts[k] for k in ready])
    rest = default_collate([tuple(item[1:]) for item in batch])
    return (images, *rest)


class EpochSampler(Sampler[int]):
    """Shuffled (or class-balanced) order that depends only on (seed, epoch).

    Balanced mode draws with replacement with probability 1/n_c per class, so every
    class is equally likely in a batch (the Smp sampler of Face2Exp)."""

    def __init__(self, targets: torch.Tensor, seed: int, balanced: bool):
        self.targets = targets
        self.seed = seed
        self.balanced = balanced
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.targets)

    def __iter__(self):
        gen = epoch_generator(self.seed, self.epoch)
        n = len(self.targets)
        if not self.balanced:
            return iter(torch.randperm(n, generator=gen).tolist())
        counts = torch.bincount(self.targets).float()
        weights = 1.0 / counts[self.targets]
        return iter(torch.multinomial(weights, n, replacement=True, generator=gen).tolist())
