import struct

import cv2
import numpy as np
import pytest

from fer_pipeline.data.io.ms1m import read_ms1m_recordio
from fer_pipeline.data.io.recordio import (MAGIC, IRHeader, RecordIOReader, RecordIOWriter, TruncatedRecordError,
                                      identity_label, pack, read_record_at, unpack)
from fer_pipeline.data.io.records import RawRecord, Reject


def _jpeg(seed: int) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def test_pack_unpack_scalar_and_vector_labels():
    h, body = unpack(pack(IRHeader(0, 42.0, 7, 0), b"abc"))
    assert (h.flag, h.label, h.id, body) == (0, 42.0, 7, b"abc")
    h, body = unpack(pack(IRHeader(2, (3.0, 9.0), 0, 0), b"xy"))
    assert h.flag == 2 and h.label == (3.0, 9.0) and body == b"xy"
    assert identity_label(IRHeader(2, (5.0, 1.0), 0, 0)) == 5


def test_payload_containing_magic_round_trips_through_continuation_parts(tmp_path):
    magic = struct.pack("<I", MAGIC)
    payload = b"abcd" + magic + b"efgh" + magic + b"ij"  # two aligned occurrences inside the payload
    with RecordIOWriter(tmp_path / "t.rec", tmp_path / "t.idx") as w:
        w.write(1, payload)
        w.write(2, b"plain")
    raw = (tmp_path / "t.rec").read_bytes()
    flags = []
    pos = 0
    while pos < len(raw):  # walk the physical records and collect their continuation flags
        _, lrec = struct.unpack_from("<II", raw, pos)
        length = lrec & ((1 << 29) - 1)
        flags.append(lrec >> 29)
        pos += 8 + length + (-length % 4)
    assert flags == [1, 2, 3, 0]
    reader = RecordIOReader(tmp_path / "t.rec", tmp_path / "t.idx")
    with open(tmp_path / "t.rec", "rb") as fh:
        assert read_record_at(fh, reader.index[1]) == payload
        assert read_record_at(fh, reader.index[2]) == b"plain"


def _pool(tmp_path, n_ids=2, per_id=3, vector_labels=False):
    root = tmp_path / "ms1m"
    root.mkdir()
    n = n_ids * per_id
    with RecordIOWriter(root / "train.rec", root / "train.idx") as w:
        w.write(0, pack(IRHeader(2, (float(n + 1), float(n + 1 + n_ids)), 0, 0), b""))
        for i in range(n):
            label = (float(i // per_id), 0.0) if vector_labels else float(i // per_id)
            w.write(i + 1, pack(IRHeader(2 if vector_labels else 0, label, i + 1, 0), _jpeg(i)))
        for k in range(n_ids):
            w.write(n + 1 + k, pack(IRHeader(2, (k * per_id + 1.0, (k + 1) * per_id + 1.0), 0, 0), b""))
    return root


@pytest.mark.parametrize("vector_labels", [False, True])
def test_reader_uses_header_record_to_find_images(tmp_path, vector_labels):
    root = _pool(tmp_path, vector_labels=vector_labels)
    items = list(read_ms1m_recordio(root))
    assert all(isinstance(i, RawRecord) for i in items)
    assert [i.identity for i in items] == ["0", "0", "0", "1", "1", "1"]  # identity records are not images
    assert all(i.split == "unlabeled" and i.label is None for i in items)
    assert cv2.imdecode(np.frombuffer(items[0].load(), np.uint8), 1).shape == (16, 16, 3)


def test_truncated_last_record_is_rejected_not_fatal(tmp_path):
    root = _pool(tmp_path, n_ids=1, per_id=3)
    reader = RecordIOReader(root / "train.rec", root / "train.idx")
    cut = reader.index[3] + 20  # inside the last image record
    data = (root / "train.rec").read_bytes()[:cut]
    (root / "train.rec").write_bytes(data)
    # the index still lists the identity record beyond the cut: drop it as a real truncated copy would
    lines = [l for l in (root / "train.idx").read_text().splitlines() if int(l.split("\t")[1]) < cut]
    (root / "train.idx").write_text("\n".join(lines) + "\n")
    items = list(read_ms1m_recordio(root))
    rejects = [i for i in items if isinstance(i, Reject)]
    assert len(items) == 3 and len(rejects) == 1
    assert rejects[0].reason == "truncated_record" and rejects[0].source == "train.rec#3"
    with pytest.raises(TruncatedRecordError, match="train.rec"):
        with open(root / "train.rec", "rb") as fh:
            read_record_at(fh, reader.index[3], str(root / "train.rec"))


def test_bad_index_line_names_file_and_line(tmp_path):
    root = _pool(tmp_path)
    (root / "train.idx").write_text("0\t0\nnot-a-line\n")
    with pytest.raises(ValueError, match=r"train\.idx:2"):
        RecordIOReader(root / "train.rec", root / "train.idx")
