"""Faces by identity, for face-recognition pretraining: the union of the prepared FR
pools' rows (their `identity` column), split into train and held-out identities.

Identities are namespaced by pool (`ms1m/17`, `webface/id_003`): two datasets' labels
are unrelated numberings, never the same person by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fer_pipeline.data.datasets import build_transform, decode_rgb, read_split, sample_seed, seeded_cpu_rng

POOL_SPLIT = "unlabeled"  # the split every FR pool's reader writes


@dataclass
class IdentityFaces:
    """Every face of the pools: JPEG bytes, `pool/source` and `pool/identity` per row."""

    images: list[bytes]
    sources: list[str]
    identities: list[str]


def read_pools(pool_dirs: dict[str, str | Path]) -> IdentityFaces:
    """The union of the pools' rows, in pool order then shard order."""
    faces = IdentityFaces([], [], [])
    for name, folder in pool_dirs.items():
        table = read_split(folder, POOL_SPLIT, columns=("image", "split", "source", "identity"))
        ids = table.column("identity").to_pylist()
        if any(i is None for i in ids):
            raise ValueError(f"{folder}: {ids.count(None)} rows have no identity; face-recognition pretraining "
                             "needs an identity per face (an FR pool's reader writes it)")
        faces.images += table.column("image").to_pylist()
        faces.sources += [f"{name}/{s}" for s in table.column("source").to_pylist()]
        faces.identities += [f"{name}/{i}" for i in ids]
    return faces


def split_identities(identities: list[str], held_out_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out) identity names, sorted; a function of the identity set and the seed.

    At least two identities are held out (a different-identity pair needs two) and at
    least two kept for training."""
    names = sorted(set(identities))
    n_held = max(2, round(held_out_fraction * len(names)))
    if len(names) - n_held < 2:
        raise ValueError(f"{len(names)} identities in the FR pools: too few to hold {n_held} out and train on "
                         "the rest (train.pretrain_fr.held_out_fraction)")
    order = np.random.default_rng(seed).permutation(len(names))
    held = sorted(names[i] for i in order[:n_held])
    train = sorted(names[i] for i in order[n_held:])
    return train, held


class IdentityDataset(Dataset):
    """The faces of some identities, with a class id per identity (sorted name order).

    Augmentation is seeded per (seed, epoch, index), as FaceShardDataset's, so a
    resumed run sees the same pixels."""

    def __init__(self, faces: IdentityFaces, names: list[str], input_size: int, augment: dict | None, seed: int):
        index = {name: k for k, name in enumerate(names)}
        keep = [i for i, ident in enumerate(faces.identities) if ident in index]
        self.images = [faces.images[i] for i in keep]
        self.sources = [faces.sources[i] for i in keep]
        self.identities = [faces.identities[i] for i in keep]
        self.targets = torch.tensor([index[faces.identities[i]] for i in keep], dtype=torch.long)
        self.names = list(names)
        self.transform = build_transform(input_size, augment)
        self.augment = bool(augment)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = decode_rgb(self.images[index], self.sources[index])
        if self.augment:
            with seeded_cpu_rng(sample_seed(self.seed, self.epoch, index)):
                image = self.transform(image)
        else:
            image = self.transform(image)
        return image, int(self.targets[index])
