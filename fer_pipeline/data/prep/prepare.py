"""`fer prepare`: one partition of a dataset -> aligned face crops in Parquet shards +
manifest + rejects (`gather.py` then joins the partitions into the prepared dataset).

Every input record ends in exactly one place: a shard row or the rejects table
with a reason code. The manifest proves it (`inputs == kept + rejected`).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from tqdm import tqdm

from fer_pipeline.data.io.partition import WHOLE, Partition
from fer_pipeline.data.io.readers import reader_for
from fer_pipeline.data.io.records import Reject
from fer_pipeline.common.atomic import building_dir
from fer_pipeline.data.prep.manifest import Ledger, write_manifest
from fer_pipeline.data.prep.pool import crop_in_order
from fer_pipeline.data.prep.shards import ShardWriter, write_rejects

log = logging.getLogger(__name__)


def prepare_dataset(name: str, fmt: str, root: str, out_dir: Path, image_size: int, jpeg_quality: int,
                    row_group_size: int, rows_per_shard: int, part: Partition = WHOLE, workers: int = 1) -> dict:
    """Write shards, rejects and manifest for one partition of a dataset into `out_dir`;
    returns the manifest."""
    with building_dir(out_dir) as tmp:
        writer = ShardWriter(tmp, rows_per_shard, row_group_size)
        rejects: list[dict] = []
        ledger = Ledger()
        digest = hashlib.sha256()
        records = tqdm(reader_for(fmt)(root, part=part), desc=f"prepare {name} ({part})", unit="img", mininterval=2.0)
        for item, row in crop_in_order(records, workers, image_size, jpeg_quality):  # reader order, any `workers`
            ledger.inputs += 1
            if isinstance(row, Reject):
                rejects.append(row.__dict__)
                ledger.reject(row.reason)
                continue
            writer.add(row)
            ledger.keep(item.split, item.label or "unlabeled")
            # The content digest covers what training sees: bytes, label, split, identity.
            digest.update(hashlib.sha256(row["image"]).digest())
            digest.update(f"|{row['label']}|{row['split']}|{row['identity']}|{row['source']}\n".encode())
        writer.close()
        write_rejects(tmp / "rejects.parquet", rejects)
        manifest = {
            "dataset": name,
            "format": fmt,
            "root": str(root),
            "image_size": image_size,
            "part": {"index": part.index, "count": part.count},
            **ledger.counts(name),  # a mismatch is a bug, never bad input
            "shards": writer.shards,
            "content_digest": digest.hexdigest(),
        }
        write_manifest(tmp, manifest)
    log.info("%s (%s): %d inputs -> %d kept, %d rejected %s", name, part, manifest["inputs"], manifest["kept"],
             manifest["rejected"], manifest["rejected_per_reason"])
    return manifest
