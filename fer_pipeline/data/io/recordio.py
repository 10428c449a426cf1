"""MXNet RecordIO (the insightface MS1M / MS1MV2 / MS1MV3 packing), read and written.

Written by hand because mxnet, the only library that reads the format, is
unmaintained and does not install beside numpy 2. The format is small:

* each record: uint32 magic 0xced7230a, uint32 `lrec` whose top 3 bits are a
  continuation flag and low 29 bits the payload length, the payload, zero padding
  to a multiple of 4 bytes;
* a payload containing the magic word at a 4-byte aligned offset is split there
  into parts (flag 1 = first, 2 = middle, 3 = last; 0 = whole record) and the
  reader re-inserts the magic between parts;
* payload = IRHeader `<IfQQ` (flag, label, id, id2), then `flag` float32 labels
  when flag > 0 (the scalar label is then unused), then the image bytes;
* `train.idx` is text, `key<TAB>offset` per line; `property` is `classes,h,w`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_HEADER = struct.Struct("<IfQQ")
_LEN_MASK = (1 << 29) - 1


class RecordIOError(ValueError):
    """The .rec/.idx pair is malformed (the message names file and offset)."""


class TruncatedRecordError(RecordIOError):
    """A record runs past the end of the file (typically an interrupted copy)."""


@dataclass(frozen=True)
class IRHeader:
    flag: int
    label: float | tuple[float, ...]
    id: int
    id2: int


def pack(header: IRHeader, payload: bytes) -> bytes:
    labels = header.label if isinstance(header.label, tuple) else None
    if labels is not None:
        head = _HEADER.pack(len(labels), 0.0, header.id, header.id2)
        return head + np.asarray(labels, dtype="<f4").tobytes() + payload
    return _HEADER.pack(0, float(header.label), header.id, header.id2) + payload


def unpack(record: bytes) -> tuple[IRHeader, bytes]:
    if len(record) < _HEADER.size:
        raise RecordIOError(f"record of {len(record)} bytes is shorter than the 24-byte IRHeader")
    flag, label, id_, id2 = _HEADER.unpack_from(record)
    body = record[_HEADER.size:]
    if flag > 0:
        if len(body) < 4 * flag:
            raise RecordIOError(f"IRHeader announces {flag} labels but the record is too short")
        labels = tuple(float(x) for x in np.frombuffer(body[: 4 * flag], dtype="<f4"))
        return IRHeader(flag, labels, id_, id2), body[4 * flag:]
    return IRHeader(flag, float(label), id_, id2), body


class RecordIOWriter:
    """Writes `.rec` and `.idx` together (FaceSynth uses it to emit MS1M-style pools)."""

    def __init__(self, rec_path: str | Path, idx_path: str | Path):
        self._rec = open(rec_path, "wb")
        self._idx = open(idx_path, "w", encoding="ascii")

    def write(self, key: int, record: bytes) -> None:
        self._idx.write(f"{key}\t{self._rec.tell()}\n")
        parts = _split_at_magic(record)
        for i, part in enumerate(parts):
            if len(parts) == 1:
                cflag = 0
            else:
                cflag = 1 if i == 0 else (3 if i == len(parts) - 1 else 2)
            self._rec.write(struct.pack("<II", MAGIC, (cflag << 29) | len(part)))
            self._rec.write(part)
            self._rec.write(b"\0" * (-len(part) % 4))

    def close(self) -> None:
        self._rec.close()
        self._idx.close()

    def __enter__(self) -> "RecordIOWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _split_at_magic(data: bytes) -> list[bytes]:
    parts, start = [], 0
    pos = data.find(_MAGIC_BYTES)
    while pos != -1:
        if pos % 4 == 0:  # dmlc splits only at aligned occurrences
            parts.append(data[start:pos])
            start = pos + 4
        pos = data.find(_MAGIC_BYTES, pos + 1)
    parts.append(data[start:])
    return parts


def read_record_at(fh: BinaryIO, offset: int, path: str = "<rec>") -> bytes:
    """The logical record starting at `offset`, continuation parts joined."""
    fh.seek(offset)
    chunks: list[bytes] = []
    while True:
        at = fh.tell()
        head = fh.read(8)
        if len(head) < 8:
            raise TruncatedRecordError(f"{path}: record header at byte {at} is cut short")
        magic, lrec = struct.unpack("<II", head)
        if magic != MAGIC:
            raise RecordIOError(f"{path}: bad magic 0x{magic:08x} at byte {at}")
        cflag, length = lrec >> 29, lrec & _LEN_MASK
        data = fh.read(length)
        if len(data) < length:
            raise TruncatedRecordError(f"{path}: record at byte {at} needs {length} bytes, file ends after {len(data)}")
        fh.read(-length % 4)
        chunks.append(data)
        if cflag in (0, 3):
            return _MAGIC_BYTES.join(chunks)
        if cflag not in (1, 2):
            raise RecordIOError(f"{path}: invalid continuation flag {cflag} at byte {at}")


def read_index(idx_path: str | Path) -> dict[int, int]:
    index: dict[int, int] = {}
    with open(idx_path, encoding="ascii") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                key, offset = line.split("\t")
                index[int(key)] = int(offset)
            except ValueError:
                raise RecordIOError(f"{idx_path}:{lineno}: expected 'key<TAB>offset', got {line.rstrip()!r}") from None
    return index


class RecordIOReader:
    """Random access to an indexed RecordIO file."""

    def __init__(self, rec_path: str | Path, idx_path: str | Path):
        self.rec_path = str(rec_path)
        self.index = read_index(idx_path)
        self._fh = open(rec_path, "rb")

    def keys(self) -> list[int]:
        return sorted(self.index)

    def read(self, key: int) -> tuple[IRHeader, bytes]:
        return unpack(read_record_at(self._fh, self.index[key], self.rec_path))

    def image_keys(self) -> list[int]:
        """Keys of image records: insightface packs record 0 as a header whose
        labels give the first non-image key; otherwise every key but 0 is an image."""
        if 0 in self.index:
            header, _ = self.read(0)
            if header.flag > 0:
                end = int(header.label[0])
                return [k for k in range(1, end) if k in self.index]
        return [k for k in self.keys() if k != 0]

    def missing_image_keys(self) -> list[int]:
        """Keys record 0 promises but the index lacks (reported, never silently lost)."""
        if 0 not in self.index:
            return []
        header, _ = self.read(0)
        if header.flag <= 0:
            return []
        return [k for k in range(1, int(header.label[0])) if k not in self.index]

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "RecordIOReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[int, IRHeader, bytes]]:
        for key in self.image_keys():
            header, payload = self.read(key)
            yield key, header, payload


def identity_label(header: IRHeader) -> int:
    """The identity of an image record: float scalar, or first element of a label vector."""
    label = header.label[0] if isinstance(header.label, tuple) else header.label
    return int(label)
