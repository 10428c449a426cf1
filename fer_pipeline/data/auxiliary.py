"""Seed 001's auxiliary sets beside a labelled train split: the mined pool faces
(mine_pseudo's output, without the labelled rows it may carry) or the distilled images,
and the sampler that mixes them in at a fixed share of every epoch.

Every model of the distillation table takes the same number of steps: an epoch is as
many samples as the labelled split has, `aux_share` of them drawn from the auxiliary set.
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


class MixedSampler(Sampler[int]):
    """Per epoch, `n_labelled` indices: round(share * n) auxiliary samples (indices after the
    labelled ones, cycling through a shuffled auxiliary set, so a set smaller than its share
    repeats) and the rest a shuffled prefix of the labelled split, all shuffled together.
    A function of (seed, epoch) only, as EpochSampler."""

    def __init__(self, n_labelled: int, n_auxiliary: int, share: float, seed: int):
        if n_auxiliary == 0 and share > 0:
            raise ValueError("an auxiliary share without an auxiliary set")
        self.n, self.m, self.seed, self.epoch = n_labelled, n_auxiliary, seed, 0
        self.k = round(share * n_labelled) if n_auxiliary else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        gen = epoch_generator(self.seed, self.epoch)
        own = torch.randperm(self.n, generator=gen)[: self.n - self.k]
        repeats = -(-self.k // self.m) if self.m else 0
        aux = torch.cat([torch.randperm(self.m, generator=gen) for _ in range(repeats)] or
                        [torch.empty(0, dtype=torch.long)])[: self.k] + self.n
        order = torch.cat([own, aux])
        return iter(order[torch.randperm(len(order), generator=gen)].tolist())
