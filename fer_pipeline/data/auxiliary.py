"""Seed 001's auxiliary sets beside a labelled train split: the mined pool faces
(mine_pseudo's output, without the labelled rows it may carry) or the distilled images,
and the sampler that mixes them in at a fixed share of every epoch.

Every model of the distillation table and the cross-dataset matrix takes the same number
of steps: an epoch is distill.train.epoch_size samples, whatever the labelled split's size,
`aux_share` of them drawn from the auxiliary set.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset, Dataset, Sampler

from fer_pipeline.common.labels import ClassSet
from fer_pipeline.data.datasets import FaceShardDataset, epoch_generator, read_split


def mined_pool_sources(mined_dir: str | Path) -> set[str]:
    """The mined pool faces of a mined dataset: its train rows that are not the labelled
    rows `mine.include_labeled` copies in (those carry the labelled folder's name as prefix;
    its test rows must never train)."""
    manifest = json.loads((Path(mined_dir) / "manifest.json").read_text(encoding="utf-8"))
    labelled = manifest.get("labeled_rows_from")
    prefix = f"{Path(labelled).name}/" if labelled else None
    sources = read_split(mined_dir, "train", columns=("split", "source")).column("source").to_pylist()
    pool = {s for s in sources if prefix is None or not s.startswith(prefix)}
    if not pool:
        raise ValueError(f"{mined_dir}: no mined pool faces (only labelled rows): nothing to distil or mix in")
    return pool


def mined_faces(mined_dir: str | Path, class_set: ClassSet, input_size: int, augment: dict | None = None,
                seed: int = 0) -> FaceShardDataset:
    """The mined pool faces as a labelled dataset (pseudo labels), in `class_set`'s ids."""
    data = FaceShardDataset(mined_dir, "train", class_set, input_size, augment, seed)
    data.restrict_to(mined_pool_sources(mined_dir) & set(data.sources), f"{mined_dir} (mined pool faces)")
    return data


def as_tensors(data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sample of an unaugmented dataset, stacked (Algorithm 1 samples real batches in memory)."""
    images, labels = zip(*(data[i] for i in range(len(data))))
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


class DistilledFaces(Dataset):
    """The distilled images (already normalised network inputs: never augmented), their
    labels mapped by class name into `class_set`'s ids."""

    def __init__(self, path: str | Path, class_set: ClassSet):
        saved = torch.load(path, map_location="cpu", weights_only=True)
        classes = json.loads((Path(path).parent / "distilled.json").read_text(encoding="utf-8"))["classes"]
        ids = [class_set.index(classes[k]) for k in saved["labels"].tolist()]
        keep = [i for i, c in enumerate(ids) if c is not None]
        self.images = saved["images"][keep]
        self.targets = torch.tensor([ids[i] for i in keep], dtype=torch.long)

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.targets[index])


def mixed(labelled: FaceShardDataset, auxiliary: Dataset | None) -> Dataset:
    """The labelled split, then the auxiliary set (the index order MixedSampler draws from)."""
    return labelled if auxiliary is None else ConcatDataset([labelled, auxiliary])


def _cycled(n: int, count: int, gen: torch.Generator) -> torch.Tensor:
    """`count` indices below n: shuffled passes over all n, as many as needed, cut to `count`."""
    if count == 0:
        return torch.empty(0, dtype=torch.long)
    return torch.cat([torch.randperm(n, generator=gen) for _ in range(-(-count // n))])[:count]


class MixedSampler(Sampler[int]):
    """Per epoch, `length` indices: round(share * length) from the auxiliary set (indices
    after the `n_labelled` labelled ones), the rest from the labelled split, each drawn in
    shuffled passes over its set (a set smaller than its share repeats), all shuffled
    together. A function of (seed, epoch) only, as EpochSampler. A fixed `length` gives
    every model the same steps, whatever the size of its labelled split."""

    def __init__(self, n_labelled: int, n_auxiliary: int, share: float, seed: int, length: int):
        if n_auxiliary == 0 and share > 0:
            raise ValueError("an auxiliary share without an auxiliary set")
        self.n, self.m, self.seed, self.length, self.epoch = n_labelled, n_auxiliary, seed, length, 0
        self.k = round(share * length) if n_auxiliary else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        gen = epoch_generator(self.seed, self.epoch)
        order = torch.cat([_cycled(self.n, self.length - self.k, gen), _cycled(self.m, self.k, gen) + self.n])
        return iter(order[torch.randperm(len(order), generator=gen)].tolist())
