"""`fer extract-features`: the frozen student embeds every prepared video frame.

One output Parquet file per input shard, written under a temp name and renamed
when complete, in a work folder: a killed job resumes at the first shard not yet
written. Rows are streamed in batches (memory does not grow with the dataset).
Columns: video, frame, split, source, label (class id in the temporal class set,
-1 = masked: kept as context, not trained on or scored), feature (float32 vector).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from fer_pipeline.common.labels import ClassSet
from fer_pipeline.common.atomic import atomic_path, building_dir, write_json
from fer_pipeline.data.prep.shards import corrupt, read_parquet, shard_paths
from fer_pipeline.temporal.feature_table import feature_schema
from fer_pipeline.data.datasets import build_transform, decode_rgb
from fer_pipeline.train.device import autocast, pick_device
from fer_pipeline.models.bundle import load_bundle
from fer_pipeline.models.features import Penultimate

log = logging.getLogger(__name__)


class FrameEmbedder:
    """The student without its classifier: image bytes -> penultimate features."""

    def __init__(self, student_dir: str | Path, device: str = "auto", amp: bool = True):
        model, self.bundle = load_bundle(student_dir)
        self.device = pick_device(device)
        self.model = Penultimate(model).eval().to(self.device)
        self.amp = amp
        self.transform = build_transform(self.bundle["input_size"], None)

    @property
    def dim(self) -> int:
        with torch.no_grad():
            size = self.bundle["input_size"]
            return int(self.model(torch.zeros(1, 3, size, size, device=self.device)).shape[1])

    @torch.no_grad()
    def __call__(self, images: list[bytes], sources: list[str]) -> np.ndarray:
        batch = torch.stack([self.transform(decode_rgb(img, src)) for img, src in zip(images, sources)])
        with autocast(self.device, self.amp):  # bf16 on CUDA
            return self.model(batch.to(self.device)).float().cpu().numpy()


def _embed_shard(embedder: FrameEmbedder, shard: Path, out: Path, class_set: ClassSet, batch_size: int) -> Counter:
    counts: Counter = Counter()
    schema = feature_schema(embedder.dim)
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        try:
            source = pq.ParquetFile(shard)
        except (pa.ArrowException, OSError) as exc:
            raise corrupt(shard, exc) from None
        batches = source.iter_batches(batch_size, columns=["image", "label", "split", "source", "video", "frame"])
        for batch in tqdm(batches, desc=f"features {shard.name}", unit="batch", mininterval=5.0):
            rows = batch.to_pydict()
            if any(v is None for v in rows["video"]) or any(f is None for f in rows["frame"]):
                bad = next(s for s, v, f in zip(rows["source"], rows["video"], rows["frame"]) if v is None or f is None)
                raise ValueError(f"{shard}: row {bad!r} has no video/frame: the temporal phase needs a video "
                                 "dataset (format affwild2_expr)")
            feats = embedder(rows["image"], rows["source"])
            labels = [class_set.index(name) for name in rows["label"]]
            counts.update("masked" if k is None else class_set.classes[k] for k in labels)
            table = pa.table({
                "video": rows["video"], "frame": rows["frame"], "split": rows["split"], "source": rows["source"],
                "label": pa.array([-1 if k is None else k for k in labels], pa.int16()),
                "feature": pa.FixedSizeListArray.from_arrays(pa.array(feats.reshape(-1), pa.float32()), feats.shape[1]),
            }, schema=schema)
            writer.write_table(table)
    return counts


def extract_features(student_dir: str | Path, dataset_dir: str | Path, out_dir: str | Path, work_dir: str | Path,
                     class_set: ClassSet, batch_size: int, device: str = "auto", amp: bool = True) -> dict:
    """Write `out_dir` (feature shards + manifest.json); returns the manifest."""
    embedder = FrameEmbedder(student_dir, device, amp)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    names = []
    for i, shard in enumerate(shard_paths(dataset_dir)):
        name = f"features-{i:05d}.parquet"
        names.append(name)
        if (work / name).exists():
            log.info("%s: done in an earlier run, kept", name)
            continue
        counts += _embed_shard(embedder, shard, work / name, class_set, batch_size)

    with building_dir(out_dir) as tmp:
        digest = hashlib.sha256()
        per_split: Counter = Counter()
        for name in names:
            shutil.copy2(work / name, tmp / name)
            digest.update((tmp / name).read_bytes())
            per_split.update(read_parquet(tmp / name, columns=["split"]).column("split").to_pylist())
        stamp = Path(student_dir) / "_stage.json"
        student = json.loads(stamp.read_text(encoding="utf-8")) if stamp.exists() else {}
        manifest = {
            "student": str(student_dir), "student_stage_key": student.get("key"), "dataset": str(dataset_dir),
            "class_set": class_set.name, "classes": list(class_set.classes), "dim": embedder.dim,
            "input_size": embedder.bundle["input_size"], "rows_per_split": dict(sorted(per_split.items())),
            "rows": int(sum(per_split.values())), "shards": names, "content_digest": digest.hexdigest()[:16],
        }
        write_json(tmp / "manifest.json", manifest)
    shutil.rmtree(work, ignore_errors=True)  # complete: nothing left to resume
    log.info("features: %d frames, dim %d, %s", manifest["rows"], manifest["dim"], manifest["rows_per_split"])
    return manifest
