"""MS1M-style face-recognition pools packed by insightface in RecordIO (unlabeled for FER)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from fer_pipeline.data.io.recordio import RecordIOError, RecordIOReader, TruncatedRecordError, identity_label
from fer_pipeline.data.io.partition import WHOLE, Partition
from fer_pipeline.data.io.records import RawRecord, Reject


def _constant(data: bytes):
    return lambda: data


def read_ms1m_recordio(root: str | Path, part: Partition = WHOLE) -> Iterator[RawRecord | Reject]:
    root = Path(root)
    rec, idx = root / "train.rec", root / "train.idx"
    for path in (rec, idx):
        if not path.is_file():
            raise FileNotFoundError(f"MS1M RecordIO file not found: {path} (expected train.rec, train.idx, property)")
    with RecordIOReader(rec, idx) as reader:
        for key in reader.missing_image_keys():
            if not part.owns(str(key)):
                continue
            yield Reject(f"train.rec#{key}", "unlabeled", "missing_record", "record 0 lists this key but train.idx has no offset for it")
        for key in reader.image_keys():
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
