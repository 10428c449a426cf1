"""`fer gather`: the prepared partitions of one dataset -> the prepared dataset.

Each partition folder (written by `fer prepare --part K`) holds its shards,
rejects and manifest. Gathering links the shards into one folder (hard links:
no bytes copied on one filesystem), concatenates the rejects and writes the
dataset manifest: counts per split, class and reason summed over partitions,
checked to reconcile (`inputs == kept + rejected`), and a content digest over
the partitions' digests in partition order.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from fer_pipeline.common.atomic import building_dir
from fer_pipeline.data.prep.manifest import MANIFEST, Ledger, read_manifest, write_manifest
from fer_pipeline.data.prep.shards import REJECT_SCHEMA, read_parquet

log = logging.getLogger(__name__)

# Fields every partition of one dataset must agree on.
_SHARED = ("dataset", "format", "root", "image_size")


class GatherError(ValueError):
    """The partition folders do not make up one complete dataset."""


def read_part_manifests(part_dirs: list[Path]) -> list[dict]:
    manifests = []
    for part_dir in part_dirs:
        path = Path(part_dir) / MANIFEST
        if not path.is_file():
            raise GatherError(f"{path} is missing: partition not prepared (run `fer prepare` for it)")
        manifests.append(read_manifest(part_dir))
    count = len(manifests)
    indices = [m["part"]["index"] for m in manifests]
    if indices != list(range(count)) or any(m["part"]["count"] != count for m in manifests):
        raise GatherError(f"partitions {[(m['part']['index'], m['part']['count']) for m in manifests]} in "
                          f"{[str(p) for p in part_dirs]} are not parts 0..{count - 1} of {count}")
    for key in _SHARED:
        values = {str(m[key]) for m in manifests}
        if len(values) > 1:
            raise GatherError(f"partitions disagree on {key!r}: {sorted(values)} (prepared with different params?)")
    return manifests


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed: copy instead
        shutil.copyfile(src, dst)


def gather_parts(part_dirs: list[str | Path], out_dir: str | Path) -> dict:
    """Write the prepared dataset into `out_dir` from its partition folders (in
    partition order); returns the dataset manifest."""
    part_dirs = [Path(p) for p in part_dirs]
    manifests = read_part_manifests(part_dirs)
    with building_dir(out_dir) as tmp:
        shards: list[str] = []
        digest = hashlib.sha256()
        ledger = Ledger()
        rejects = pq.ParquetWriter(tmp / "rejects.parquet", REJECT_SCHEMA)
        try:
            for k, (part_dir, manifest) in enumerate(zip(part_dirs, manifests)):
                for name in manifest["shards"]:
                    # `shard-<part>-<n>`: sorted names keep partition order, then shard order.
                    linked = f"shard-{k:04d}-{name.removeprefix('shard-')}"
                    _link(part_dir / name, tmp / linked)
                    shards.append(linked)
                rejects.write_table(read_parquet(part_dir / "rejects.parquet", schema=REJECT_SCHEMA))
                digest.update(f"{k}:{manifest['content_digest']}\n".encode())
                ledger.add(manifest)
        finally:
            rejects.close()
        manifest = {key: manifests[0][key] for key in _SHARED}
        manifest.update({
            "parts": len(manifests),
            **ledger.counts(f"{manifest['dataset']} across {len(manifests)} partitions", GatherError),
            "ignored_per_rule": dict(sorted(sum((Counter(m.get("ignored_per_rule", {})) for m in manifests),
                                                Counter()).items())),
            "layout": manifests[0].get("layout", {}),
            "shards": shards,
            "content_digest": digest.hexdigest(),
            "part_digests": [m["content_digest"] for m in manifests],
        })
        write_manifest(tmp, manifest)
    log.info("%s: gathered %d partitions: %d inputs -> %d kept, %d rejected", manifest["dataset"], len(manifests),
             manifest["inputs"], manifest["kept"], manifest["rejected"])
    return manifest
