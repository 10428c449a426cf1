"""`fer prepare`: one partition of a dataset -> aligned face crops in Parquet shards +
manifest + rejects (`gather.py` then joins the partitions into the prepared dataset).

Every input record ends in exactly one place: a shard row or the rejects table
with a reason code. The manifest proves it (`inputs == kept + rejected`).
"""

from __future__ import annotations

import errno
import hashlib
import logging
from pathlib import Path

from tqdm import tqdm

from fer_pipeline.data.io.layout import LayoutError, ReadOptions, Report, resolve_root
from fer_pipeline.data.io.partition import WHOLE, Partition
from fer_pipeline.data.io.readers import reader_for
from fer_pipeline.data.io.records import Reject
from fer_pipeline.common.atomic import building_dir
from fer_pipeline.data.prep.manifest import Ledger, write_manifest
from fer_pipeline.data.prep.pool import crop_in_order
from fer_pipeline.data.prep.shards import ShardWriter, write_rejects

log = logging.getLogger(__name__)

# Reject reasons that say the file a label names is not where the layout says it is.
NOT_FOUND_REASONS = ("missing_file", "path_outside_root", "symlink_not_followed")


class PrepareError(ValueError):
    """The dataset was read, but what it gave cannot be what the user meant (nothing kept,
    most listed files not found): the stage fails instead of writing an empty dataset."""


def _read(fmt: str, root: Path, part: Partition, options: ReadOptions, report: Report, name: str):
    """The reader's records, with `datasets.<name>` spelled out in its layout errors."""
    try:
        yield from reader_for(fmt)(root, part=part, options=options, report=report)
    except (LayoutError, FileNotFoundError) as exc:
        message = str(exc).replace("datasets.<name>.", f"datasets.{name}.")
        raise type(exc)(f"{name} ({fmt}): {message}") from None


def check_outcome(name: str, root: Path, manifest: dict, report: Report, options: ReadOptions, part: Partition) -> None:
    """PrepareError when a partition kept nothing, or when more than
    `max_missing_fraction` of its inputs name files that are not there; unless
    `datasets.<name>.allow_empty` says an empty result is expected."""
    if options.allow_empty:
        return
    inputs, kept, reasons = manifest["inputs"], manifest["kept"], manifest["rejected_per_reason"]
    files = ", ".join(report.label_files[:3]) + (f" and {len(report.label_files) - 3} more"
                                                 if len(report.label_files) > 3 else "")
    hint = (f"check datasets.{name}.root and the layout (docs/datasets.md), or set datasets.{name}.allow_empty: "
            f"true if this is expected")
    if inputs == 0 and report.listed > 0 and part.count > 1:
        log.warning("%s (%s): this partition owns none of the %d listed entries", name, part, report.listed)
        return
    if inputs == 0:
        what = f"the label files ({files}) list no entries" if report.label_files else "no label files were found"
        raise PrepareError(f"{name} ({part}): 0 inputs read from {root}: {what}; {hint}")
    if kept == 0:
        raise PrepareError(f"{name} ({part}): 0 of {inputs} inputs kept from {root} (rejected: {reasons}); {hint}")
    missing = sum(reasons.get(r, 0) for r in NOT_FOUND_REASONS)
    if missing > options.max_missing_fraction * inputs:
        raise PrepareError(f"{name} ({part}): {missing} of {inputs} inputs name files that are not found under "
                           f"{root} ({ {r: reasons[r] for r in NOT_FOUND_REASONS if r in reasons} }), more than "
                           f"datasets.{name}.max_missing_fraction = {options.max_missing_fraction}; "
                           f"{hint.replace('allow_empty: true', 'max_missing_fraction higher')}")


def prepare_dataset(name: str, fmt: str, root: str, out_dir: Path, image_size: int, jpeg_quality: int,
                    row_group_size: int, rows_per_shard: int, part: Partition = WHOLE, workers: int = 1,
                    options: ReadOptions | None = None, base_dir: str | Path | None = None) -> dict:
    """Write shards, rejects and manifest for one partition of a dataset into `out_dir`;
    returns the manifest. A relative `root` is read from `base_dir` (the params file's
    folder; the working directory when None); the manifest keeps `root` as written."""
    options = options or ReadOptions()
    root_path = resolve_root(root, base_dir)
    try:
        return _prepare(name, fmt, root, root_path, Path(out_dir), image_size, jpeg_quality, row_group_size,
                        rows_per_shard, part, workers, options)
    except OSError as exc:
        if exc.errno != errno.ENOSPC and "No space left on device" not in str(exc):  # pyarrow sets no errno
            raise
        raise PrepareError(f"{name} ({part}): no space left on the device holding {Path(out_dir).resolve()} "
                           f"({exc}); the partial output was removed. Free space (or set prepare.out_dir to "
                           f"another disk) and run it again") from None


def _prepare(name: str, fmt: str, root: str, root_path: Path, out_dir: Path, image_size: int, jpeg_quality: int,
             row_group_size: int, rows_per_shard: int, part: Partition, workers: int, options: ReadOptions) -> dict:
    report = Report(part)
    # Built one level up: a partition's folder sits inside gather's input `_parts/<dataset>`.
    with building_dir(out_dir, outside_parent=True) as tmp:
        writer = ShardWriter(tmp, rows_per_shard, row_group_size)
        rejects: list[dict] = []
        ledger = Ledger()
        digest = hashlib.sha256()
        records = tqdm(_read(fmt, root_path, part, options, report, name), desc=f"prepare {name} ({part})",
                       unit="img", mininterval=2.0)
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
            # Entries under the root that are not inputs, by documented rule (docs/datasets.md).
            "ignored_per_rule": dict(sorted(report.ignored.items())),
            "layout": report.layout,
            "shards": writer.shards,
            "content_digest": digest.hexdigest(),
        }
        check_outcome(name, root_path, manifest, report, options, part)  # raises before anything is swapped in
        write_manifest(tmp, manifest)
    log.info("%s (%s): %d inputs -> %d kept, %d rejected %s; read from %s, layout %s; ignored %s", name, part,
             manifest["inputs"], manifest["kept"], manifest["rejected"], manifest["rejected_per_reason"], root_path,
             report.layout, dict(report.ignored))
    for rule, example in sorted(report.examples.items()):
        if rule not in ("hidden", "os_metadata"):
            log.warning("%s (%s): %d entries ignored as %s (e.g. %s): see docs/datasets.md", name, part,
                        report.ignored[rule], rule, example)
    return manifest
