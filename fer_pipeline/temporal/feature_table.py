"""The frame-feature table `fer extract-features` writes and the temporal stages read:
one row per frame (video, frame index, split, label; -1 = masked) with its embedding.
Kept apart from the extractor so reading features needs neither the student nor torchvision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from fer_pipeline.data.prep.shards import read_parquet
from fer_pipeline.temporal.windows import VideoFeatures


def feature_schema(dim: int) -> pa.Schema:
    return pa.schema([
        pa.field("video", pa.string(), nullable=False),
        pa.field("frame", pa.int32(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("label", pa.int16(), nullable=False),
        pa.field("feature", pa.list_(pa.float32(), dim), nullable=False),
    ])


def read_videos(features_dir: str | Path, split: str) -> list[VideoFeatures]:
    """The split's videos as VideoFeatures, in video-name order (frames sorted)."""
    paths = sorted(Path(features_dir).glob("features-*.parquet"))
    if not paths:
        raise FileNotFoundError(f"no features-*.parquet in {features_dir}: run `fer extract-features` first")
    table = pa.concat_tables(read_parquet(p, filters=[("split", "=", split)]) for p in paths)
    if table.num_rows == 0:
        raise ValueError(f"{features_dir}: split {split!r} has no frames")
    videos = np.asarray(table.column("video").to_pylist())
    frames = table.column("frame").to_numpy()
    labels = table.column("label").to_numpy().astype(np.int64)
    feats = table.column("feature").combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
    out = []
    for name in sorted(set(videos.tolist())):
        rows = np.flatnonzero(videos == name)
        rows = rows[np.argsort(frames[rows], kind="stable")]
        out.append(VideoFeatures(name, frames[rows].astype(np.int64), feats[rows].astype(np.float32), labels[rows]))
    return out
