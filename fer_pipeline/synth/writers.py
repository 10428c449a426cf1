"""Write FaceSynth datasets in the real datasets' on-disk formats.

One function per format, so the same readers (fer_pipeline/io) serve real and
demo data. A new format (AffectNet CSV, Aff-Wild2 frames, WebFace folders) is one
more writer here and one more entry in WRITERS.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
from tqdm import tqdm

from fer_pipeline.io.rafdb import ALIGNED_DIR, LABEL_LIST, aligned_name
from fer_pipeline.io.recordio import IRHeader, RecordIOWriter, pack
from fer_pipeline.labels import from_canonical
from fer_pipeline.synth.render import encode_jpeg
from fer_pipeline.synth.world import FR_POOL_PRIOR, RAFDB_PRIOR, World

RAFDB_ALIGNED_SIZE = 100  # RAF-DB ships its aligned crops at 100x100


def write_rafdb_basic(world: World, out: Path, cfg: dict, label_noise: float) -> dict:
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
            for i in tqdm(range(n), desc=f"FaceSynth rafdb/{split}", unit="img", mininterval=2.0):
                sample = world.sample(f"rafdb/{split}", i, ids, RAFDB_PRIOR, label_noise=label_noise)
                image, _, quality = world.render("people", f"rafdb/{split}", sample)
                image = cv2.resize(image, (RAFDB_ALIGNED_SIZE, RAFDB_ALIGNED_SIZE), interpolation=cv2.INTER_AREA)
                name = f"{split}_{i + 1:0{digits}d}.jpg"
                (out / ALIGNED_DIR / aligned_name(name)).write_bytes(encode_jpeg(image, quality))
                labels.write(f"{name} {from_canonical('rafdb', sample.label)}\n")
                counts[f"{split}/{sample.label}"] = counts.get(f"{split}/{sample.label}", 0) + 1
    return counts


def write_ms1m_recordio(world: World, out: Path, cfg: dict, audit_dir: Path) -> dict:
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
        for i in tqdm(range(n_images), desc="FaceSynth ms1m", unit="img", mininterval=2.0):
            identity = i // per_id
            sample = world.sample("ms1m", i, range(identity, identity + 1), FR_POOL_PRIOR,
                                  blend_fraction=cfg["blend_fraction"])
            image, _, quality = world.render("celebrities", "ms1m", sample)
            key = i + 1
            rec.write(key, pack(IRHeader(0, float(identity), key, 0), encode_jpeg(image, quality)))
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
