"""`fer mine-pseudo`: omni-supervised pseudo-label mining (seed 001, Eq. 3-5).

A primitive model trained on the labelled set gives one centroid per class: the
mean of its penultimate features over that class's training images (Eq. 3).
Each face of the unlabelled pool gets class k when its cosine similarity to
centroid k beats its similarity to every other centroid by at least the margin
delta (Eq. 5 written for a similarity: sim_k >= sim_j + delta for all j != k;
the paper writes it with <=, which fits a distance, not the cosine of Eq. 4).
The mined faces form a new prepared dataset (split "train") that the training
stages read like any other.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, Dataset

from fer_pipeline.common.atomic import building_dir, write_json
from fer_pipeline.common.labels import ClassSet
from fer_pipeline.data.datasets import FaceShardDataset, build_transform, decode_rgb, read_split
from fer_pipeline.data.prep.manifest import Ledger, read_manifest, write_manifest
from fer_pipeline.data.prep.shards import SHARD_SCHEMA, ShardWriter, write_rejects
from fer_pipeline.models.bundle import load_bundle
from fer_pipeline.models.features import Penultimate

log = logging.getLogger(__name__)


def assign_by_margin(similarity: np.ndarray, delta: float) -> np.ndarray:
    """Class of each row whose best similarity beats the runner-up by >= delta, else -1."""
    order = np.sort(similarity, axis=1)
    best, runner_up = order[:, -1], order[:, -2]
    labels = similarity.argmax(axis=1)
    return np.where(best - runner_up >= delta, labels, -1)


def cosine_to_centroids(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    f = features / np.linalg.norm(features, axis=1, keepdims=True).clip(min=1e-12)
    c = centroids / np.linalg.norm(centroids, axis=1, keepdims=True).clip(min=1e-12)
    return f @ c.T


def class_centroids(features: np.ndarray, targets: np.ndarray, num_classes: int) -> tuple[np.ndarray, list[int]]:
    """Eq. 3: the mean feature of each class that has labelled images, and those classes' ids.
    A class without labelled images has no centroid and can never be mined."""
    present = [k for k in range(num_classes) if (targets == k).any()]
    if len(present) < 2:
        raise ValueError(f"mining needs labelled images of at least two classes, found {present}")
    return np.stack([features[targets == k].mean(axis=0) for k in present]), present


def mining_audit(mined: np.ndarray, truth: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Per class: precision of the mined labels and coverage (mined and correct / truly of that class)."""
    out = {}
    for k, name in enumerate(classes):
        chosen = mined == k
        true_k = truth == k
        out[name] = {
            "mined": int(chosen.sum()),
            "precision": float((truth[chosen] == k).mean()) if chosen.any() else None,
            "coverage": float((chosen & true_k).sum() / true_k.sum()) if true_k.any() else None,
        }
    known = truth >= 0
    kept = (mined >= 0) & known
    out["all"] = {"mined": int((mined >= 0).sum()),
                  "precision": float((mined[kept] == truth[kept]).mean()) if kept.any() else None,
                  "coverage": float(kept.sum() / known.sum()) if known.any() else None}
    return out


class _PoolImages(Dataset):
    def __init__(self, images: list[bytes], sources: list[str], input_size: int):
        self.images, self.sources = images, sources
        self.transform = build_transform(input_size, None)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(decode_rgb(self.images[i], self.sources[i])), 0


@torch.no_grad()
def penultimate_features(model: torch.nn.Module, dataset: Dataset, batch_size: int) -> np.ndarray:
    """Features before the classifier (the input of `fc`)."""
    tap = Penultimate(model).eval()
    feats = [tap(x).float() for x, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False)]
    return torch.cat(feats).numpy()


def centroid_similarity(model: torch.nn.Module, input_size: int, class_set: ClassSet, labeled_dir: str | Path,
                        pool: pa.Table, batch_size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Cosine similarity of every pool face to every class centroid (Eq. 3-4); the class id
    of each column (plus a trailing -1 for "none"); the classes without a centroid."""
    labeled = FaceShardDataset(labeled_dir, "train", class_set, input_size, augment=None)
    centroids, present = class_centroids(penultimate_features(model, labeled, batch_size),
                                         labeled.targets.numpy(), len(class_set))
    absent = [c for k, c in enumerate(class_set.classes) if k not in present]
    if absent:
        log.warning("no labelled images of %s: these classes cannot be mined", absent)
    images, sources = pool.column("image").to_pylist(), pool.column("source").to_pylist()
    similarity = cosine_to_centroids(penultimate_features(model, _PoolImages(images, sources, input_size),
                                                          batch_size), centroids)
    return similarity, np.asarray(present + [-1]), absent  # column j is class present[j]; -1 stays -1


def mine_pseudo_labels(model_dir: str | Path, labeled_dir: str | Path, pool_dir: str | Path, out_dir: str | Path,
                       delta: float, audit_deltas: list[float], batch_size: int, row_group_size: int,
                       truth: np.ndarray | None = None, include_labeled: bool = False) -> dict:
    """Write the mined dataset to `out_dir` (shards + manifest + audit); returns the manifest.

    With `include_labeled` the dataset also carries every row of the labelled set
    (train and test splits, sources prefixed by its folder name): seed 001's
    omni-supervised training set, labelled + mined faces, that a stage names as one
    dataset and tests on the labelled set's own test split."""
    model, bundle = load_bundle(model_dir)
    class_set = ClassSet(bundle["class_set"], tuple(bundle["classes"]))
    pool = read_split(pool_dir, "unlabeled", columns=("image", "split", "source", "identity", "landmarks5"))
    similarity, class_ids, absent = centroid_similarity(model, bundle["input_size"], class_set, labeled_dir, pool,
                                                        batch_size)
    mined = class_ids[assign_by_margin(similarity, delta)]
    per_class = Counter(class_set.classes[k] for k in mined if k >= 0)
    rows = pool.to_pylist()
    labeled_rows = _labeled_rows(Path(labeled_dir)) if include_labeled else []
    out_dir = Path(out_dir)
    with building_dir(out_dir) as tmp:
        shards, ledger = _write_mined(tmp, rows, mined, per_class, labeled_rows, class_set, delta, row_group_size)
        manifest = {
            "dataset": out_dir.name, "format": "mined", "source_pool": str(pool_dir), "model": str(model_dir),
            "labeled_rows_from": str(labeled_dir) if include_labeled else None,
            "delta": delta, "classes_without_centroid": absent, "mined": int((mined >= 0).sum()),
            **ledger.counts(out_dir.name), "shards": shards,
            "content_digest": _digest(mined, [row["source"] for row in rows], delta, model_dir, pool_dir,
                                      labeled_dir if include_labeled else None),
        }
        write_manifest(tmp, manifest)
        if truth is not None:
            write_json(tmp / "mining_audit.json", {
                f"{d:g}": mining_audit(class_ids[assign_by_margin(similarity, d)], truth, class_set.classes)
                for d in sorted(set(audit_deltas) | {delta})})
    log.info("mined %d of %d pool faces at delta %.3f: %s", manifest["mined"], len(rows), delta, dict(per_class))
    return manifest


def _write_mined(out: Path, rows: list[dict], mined: np.ndarray, per_class: Counter, labeled_rows: list[dict],
                 class_set: ClassSet, delta: float, row_group_size: int) -> tuple[list[str], Ledger]:
    """Shards (the labelled rows, then the mined pool faces as split "train") and the
    rejects ledger of the faces left unlabelled; returns the shard names and the counts."""
    ledger = Ledger()
    ledger.inputs = len(rows) + len(labeled_rows)
    writer = ShardWriter(out, 50_000, row_group_size)
    for row in labeled_rows:
        writer.add(row)
        ledger.keep(row["split"], row["label"])
    for row, k in zip(rows, mined):
        if k >= 0:
            writer.add({**row, "label": class_set.classes[k], "split": "train"})
    writer.close()
    ledger.keep_counts("train", per_class)
    # Pool faces left unlabelled are not lost: the ledger lists them with their reason.
    write_rejects(out / "rejects.parquet", [
        {"source": row["source"], "split": "unlabeled", "reason": "below_margin",
         "detail": f"best-minus-second cosine similarity < {delta}"} for row, k in zip(rows, mined) if k < 0])
    ledger.reject("below_margin", int((mined < 0).sum()))
    return writer.shards, ledger


def pool_truth(truth_csv: str | None, pool_dir: str | Path, class_set: ClassSet) -> np.ndarray | None:
    """The pool's true class ids in shard order (FaceSynth's audit file), or None for real pools."""
    from fer_pipeline.meta.train import read_pool_truth

    if not truth_csv:
        return None
    sources = read_split(pool_dir, "unlabeled", columns=("split", "source")).column("source").to_pylist()
    return read_pool_truth(truth_csv, sources, class_set).numpy()


def _labeled_rows(labeled_dir: Path) -> list[dict]:
    """Every labelled row (train and test), its source prefixed by the dataset's folder name."""
    columns = [f.name for f in SHARD_SCHEMA]
    rows = []
    for split in ("train", "test"):
        for row in read_split(labeled_dir, split, columns=columns).to_pylist():
            rows.append({**row, "source": f"{labeled_dir.name}/{row['source']}"})
    return rows


def _digest(mined: np.ndarray, sources: list[str], delta: float, model_dir, pool_dir, labeled_dir=None) -> str:
    """The pool's own digest (its pixels) plus which face got which label (plus the labelled set's)."""
    model_bytes = (Path(model_dir) / "model.pt").read_bytes()
    pool = read_manifest(pool_dir)["content_digest"]
    labeled = read_manifest(labeled_dir)["content_digest"] if labeled_dir else "-"
    h = hashlib.sha256(f"{pool}|{labeled}|{hashlib.sha256(model_bytes).hexdigest()}|{delta}|".encode())
    for s, k in zip(sources, mined):
        h.update(f"{s}:{int(k)}\n".encode())
    return h.hexdigest()
