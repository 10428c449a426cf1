"""MS1M-style face-recognition pools packed by insightface in RecordIO (unlabeled for FER)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from fer_pipeline.data.io.layout import LayoutError, ReadOptions, Report, check_entries, relative_to, resolve_root, unwrap
from fer_pipeline.data.io.recordio import RecordIOError, RecordIOReader, TruncatedRecordError, identity_label
from fer_pipeline.data.io.partition import WHOLE, Partition
from fer_pipeline.data.io.records import RawRecord, Reject


def _constant(data: bytes):
    return lambda: data


def read_ms1m_recordio(root: str | Path, part: Partition = WHOLE, options: ReadOptions | None = None,
                       report: Report | None = None) -> Iterator[RawRecord | Reject]:
    """`train.rec` + `train.idx` at the root, or inside the one folder the release
    unpacks to (`faces_emore/`, `ms1m-retinaface-t1/`); the verification sets (*.bin)
    next to them are not read (counted as ignored, `not_data`)."""
    options, report = options or ReadOptions(), report or Report(part)
    root = resolve_root(root)
    base = unwrap(root, lambda p: (p / "train.rec").is_file(), options, report)
    rec, idx = base / "train.rec", base / "train.idx"
    for path in (rec, idx):
        if not path.is_file():
            raise FileNotFoundError(f"MS1M RecordIO file not found: {path} (expected train.rec, train.idx, property)")
        if not options.follow_symlinks and path.is_symlink():
            raise LayoutError(f"MS1M: {path} is a symlink and datasets.<name>.follow_symlinks is false")
    check_entries(base, root, {"train.rec", "train.idx", "property"}, options, report, "MS1M RecordIO",
                  release_parts={"train.lst"}, expected="train.rec, train.idx, property, *.bin")
    report.layout["files"] = relative_to(rec, root)
    report.label_files.append(str(idx))
    with RecordIOReader(rec, idx) as reader:
        missing = reader.missing_image_keys()
        image_keys = reader.image_keys()
        report.listed += len(missing) + len(image_keys)
        for key in missing:
            if not part.owns(str(key)):
                continue
            yield Reject(f"train.rec#{key}", "unlabeled", "missing_record", "record 0 lists this key but train.idx has no offset for it")
        for key in image_keys:
            if not part.owns(str(key)):  # before the read: a job seeks only to its own records
                continue
            source = f"train.rec#{key}"
            try:
                header, payload = reader.read(key)
            except TruncatedRecordError as exc:
                yield Reject(source, "unlabeled", "truncated_record", str(exc))
                continue
            except RecordIOError as exc:
                yield Reject(source, "unlabeled", "corrupt_record", str(exc))
                continue
            yield RawRecord(
                source=source,
                split="unlabeled",
                label=None,
                identity=str(identity_label(header)),
                load=_constant(payload),
            )
