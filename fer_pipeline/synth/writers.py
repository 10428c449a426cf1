"""Write FaceSynth datasets in the real datasets' on-disk formats.

One function per format, so the same readers (fer_pipeline/io) serve real and
demo data. A new format (AffectNet CSV, Aff-Wild2 frames, WebFace folders) is one
more writer here, called from generate.py; sampling and drawing stay in world.py.
"""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
from functools import partial
from pathlib import Path
from typing import Iterator

import cv2
from tqdm import tqdm

from fer_pipeline.io.rafdb import ALIGNED_DIR, LABEL_LIST, aligned_name
from fer_pipeline.io.recordio import IRHeader, RecordIOWriter, pack
from fer_pipeline.labels import from_canonical
from fer_pipeline.synth.render import encode_jpeg
from fer_pipeline.synth.world import FR_POOL_PRIOR, RAFDB_PRIOR, Sample, World

RAFDB_ALIGNED_SIZE = 100  # RAF-DB ships its aligned crops at 100x100


def _draw_one(world: World, population: str, dataset: str, out_size: int | None, sample: Sample) -> bytes:
    image, _, quality = world.render(population, dataset, sample)
    if out_size is not None and image.shape[0] != out_size:
        image = cv2.resize(image, (out_size, out_size), interpolation=cv2.INTER_AREA)
    return encode_jpeg(image, quality)


def render_jpegs(world: World, population: str, dataset: str, samples: list[Sample], workers: int,
                 out_size: int | None = None) -> Iterator[bytes]:
    """JPEG bytes of `samples`, in order, drawn by `workers` processes (0 = all cores).
    Each sample seeds its own generator, so the bytes do not depend on `workers`."""
    draw = partial(_draw_one, world, population, dataset, out_size)
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(samples) < 64:
        yield from map(draw, samples)
        return
    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(draw, samples, chunksize=32)


def write_rafdb_basic(world: World, out: Path, cfg: dict, label_noise: float, workers: int = 1) -> dict:
    """RAF-DB basic: label list + aligned JPEGs; train and test identities are disjoint."""
    n_ids = cfg["identities"]
    n_train_ids = max(1, round(0.8 * n_ids))
    splits = [("train", cfg["train_images"], range(0, n_train_ids), 5),
              ("test", cfg["test_images"], range(n_train_ids, max(n_ids, n_train_ids + 1)), 4)]
    (out / ALIGNED_DIR).mkdir(parents=True)
    (out / LABEL_LIST).parent.mkdir(parents=True)
    counts: dict[str, int] = {}
    with open(out / LABEL_LIST, "w", encoding="utf-8") as labels:
        for split, n, ids, digits in splits:
            samples = [world.sample(f"rafdb/{split}", i, ids, RAFDB_PRIOR, label_noise=label_noise) for i in range(n)]
            jpegs = render_jpegs(world, "people", f"rafdb/{split}", samples, workers, RAFDB_ALIGNED_SIZE)
            for i, (sample, jpeg) in enumerate(tqdm(zip(samples, jpegs), total=n, desc=f"FaceSynth rafdb/{split}",
                                                    unit="img", mininterval=2.0)):
                name = f"{split}_{i + 1:0{digits}d}.jpg"
                (out / ALIGNED_DIR / aligned_name(name)).write_bytes(jpeg)
                labels.write(f"{name} {from_canonical('rafdb', sample.label)}\n")
                counts[f"{split}/{sample.label}"] = counts.get(f"{split}/{sample.label}", 0) + 1
    return counts


def write_ms1m_recordio(world: World, out: Path, cfg: dict, audit_dir: Path, workers: int = 1) -> dict:
    """An insightface-style RecordIO pool; the true expressions go to `audit_dir`,
    outside the dataset folder, so nothing in training can peek at them."""
    n_ids, per_id = cfg["identities"], cfg["images_per_identity"]
    n_images = n_ids * per_id
    out.mkdir(parents=True)
    audit_dir.mkdir(parents=True, exist_ok=True)
    first_identity_key = n_images + 1
    with RecordIOWriter(out / "train.rec", out / "train.idx") as rec, \
            open(audit_dir / "ms1m_truth.csv", "w", newline="", encoding="utf-8") as fh:
        truth = csv.writer(fh)
        truth.writerow(["key", "identity", "expression", "intensity", "blend_expression", "blend_weight"])
        # Record 0: header whose labels give the image key range and identity records.
        rec.write(0, pack(IRHeader(2, (float(first_identity_key), float(first_identity_key + n_ids)), 0, 0), b""))
        samples = [world.sample("ms1m", i, range(i // per_id, i // per_id + 1), FR_POOL_PRIOR,
                                blend_fraction=cfg["blend_fraction"]) for i in range(n_images)]
        jpegs = render_jpegs(world, "celebrities", "ms1m", samples, workers)
        for i, (sample, jpeg) in enumerate(tqdm(zip(samples, jpegs), total=n_images, desc="FaceSynth ms1m",
                                                unit="img", mininterval=2.0)):
            identity, key = i // per_id, i + 1
            rec.write(key, pack(IRHeader(0, float(identity), key, 0), jpeg))
            blend_name, blend_w = sample.blend if sample.blend else ("", "")
            truth.writerow([key, identity, sample.expression, f"{sample.intensity:.3f}", blend_name,
                            f"{blend_w:.3f}" if blend_w != "" else ""])
        for identity in range(n_ids):  # identity records: the key range of each identity's images
            start = identity * per_id + 1
            rec.write(first_identity_key + identity,
                      pack(IRHeader(2, (float(start), float(start + per_id)), first_identity_key + identity, 0), b""))
    size = world.render_size
    (out / "property").write_text(f"{n_ids},{size},{size}\n", encoding="ascii")
    return {"images": n_images, "identities": n_ids}
