"""`fer prepare`: one partition of a dataset -> aligned face crops in Parquet shards +
manifest + rejects (`gather.py` then joins the partitions into the prepared dataset).

Every input record ends in exactly one place: a shard row or the rejects table
with a reason code. The manifest proves it (`inputs == kept + rejected`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fer_pipeline.io.partition import WHOLE, Partition
from fer_pipeline.io.readers import reader_for
from fer_pipeline.io.records import Reject
from fer_pipeline.prep.align import BadLandmarksError, align_face, template_landmarks
from fer_pipeline.prep.pool import crop_in_order
from fer_pipeline.prep.shards import ShardWriter, replace_dir, write_rejects

log = logging.getLogger(__name__)

class CropError(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CropError("corrupt_image", "OpenCV could not decode the image bytes")
    return image


def _encode(image: np.ndarray, quality: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise CropError("encode_failed", "OpenCV could not encode the crop")
    return encoded.tobytes()


def crop_aligned(data: bytes, size: int, quality: int) -> tuple[bytes, np.ndarray]:
    """Decode an already aligned face, resize it to `size` and re-encode it.

    Datasets shipped aligned (RAF-DB aligned, MS1M, Aff-Wild2 cropped_aligned) only
    need a resize; their five landmarks are the template's.
    """
    image = _decode(data)
    if image.shape[:2] != (size, size):
        interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
        image = cv2.resize(image, (size, size), interpolation=interp)
    return _encode(image, quality), template_landmarks(size)


def crop_with_landmarks(data: bytes, landmarks5, size: int, quality: int) -> tuple[bytes, np.ndarray]:
    """Decode a full photo and warp its face onto the template by its 5 landmarks.

    Returns the crop and the landmarks mapped into it, which stay close to, but are
    not forced onto, the template."""
    image = _decode(data)
    try:
        crop, mapped = align_face(image, landmarks5, size)
    except BadLandmarksError as exc:
        raise CropError("bad_landmarks", str(exc)) from None
    return _encode(crop, quality), mapped


def prepare_dataset(name: str, fmt: str, root: str, out_dir: Path, image_size: int, jpeg_quality: int,
                    row_group_size: int, rows_per_shard: int, part: Partition = WHOLE, workers: int = 1) -> dict:
    """Write shards, rejects and manifest for one partition of a dataset into `out_dir`;
    returns the manifest."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    writer = ShardWriter(tmp, rows_per_shard, row_group_size)
    rejects: list[dict] = []
    kept: Counter = Counter()
    by_class: dict[str, Counter] = defaultdict(Counter)
    digest = hashlib.sha256()
    inputs = 0
    records = tqdm(reader_for(fmt)(root, part=part), desc=f"prepare {name} ({part})", unit="img", mininterval=2.0)
    for item, row in crop_in_order(records, workers, image_size, jpeg_quality):  # reader order, any `workers`
        inputs += 1
        if isinstance(row, Reject):
            rejects.append(row.__dict__)
            continue
        writer.add(row)
        kept[item.split] += 1
        by_class[item.split][item.label or "unlabeled"] += 1
        # The content digest covers what training sees: bytes, label, split, identity.
        digest.update(hashlib.sha256(row["image"]).digest())
        digest.update(f"|{row['label']}|{row['split']}|{row['identity']}|{row['source']}\n".encode())
    writer.close()
    write_rejects(tmp / "rejects.parquet", rejects)

    reasons = Counter(r["reason"] for r in rejects)
    manifest = {
        "dataset": name,
        "format": fmt,
        "root": str(root),
        "image_size": image_size,
        "part": {"index": part.index, "count": part.count},
        "inputs": inputs,
        "kept": sum(kept.values()),
        "rejected": len(rejects),
        "kept_per_split": dict(sorted(kept.items())),
        "kept_per_split_class": {s: dict(sorted(c.items())) for s, c in sorted(by_class.items())},
        "rejected_per_reason": dict(sorted(reasons.items())),
        "shards": writer.shards,
        "content_digest": digest.hexdigest(),
    }
    if manifest["kept"] + manifest["rejected"] != inputs:  # a bug, never bad input
        raise AssertionError(f"{name}: {inputs} inputs but {manifest['kept']} kept + {manifest['rejected']} rejected")
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    replace_dir(tmp, out_dir)
    log.info("%s (%s): %d inputs -> %d kept, %d rejected %s", name, part, inputs, manifest["kept"], len(rejects), dict(reasons))
    return manifest
