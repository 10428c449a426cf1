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

from tqdm import tqdm

from fer_pipeline.data.io.partition import WHOLE, Partition
from fer_pipeline.data.io.readers import reader_for
from fer_pipeline.data.io.records import Reject
from fer_pipeline.data.prep.pool import crop_in_order
from fer_pipeline.common.atomic import replace_dir
from fer_pipeline.data.prep.shards import ShardWriter, write_rejects

log = logging.getLogger(__name__)

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
