"""Prepare on small RAF-DB fixtures in the real format, with injected faults."""

import json

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from fer_pipeline.data.io.rafdb import read_rafdb_basic
from fer_pipeline.data.prep.prepare import prepare_dataset


def _write_rafdb(root, lines, images):
    (root / "EmoLabel").mkdir(parents=True)
    (root / "Image/aligned").mkdir(parents=True)
    (root / "EmoLabel/list_patition_label.txt").write_text("".join(l + "\n" for l in lines))
    for name, data in images.items():
        (root / "Image/aligned" / name).write_bytes(data)


def _jpeg(seed):
    img = np.random.default_rng(seed).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


@pytest.fixture
def faulty_rafdb(tmp_path):
    root = tmp_path / "rafdb"
    lines = [
        "train_00001.jpg 4",      # ok, happiness
        "train_00002.jpg 7",      # ok, neutral
        "train_00003.jpg 2",      # corrupt JPEG
        "train_00004.jpg 1",      # missing file
        "train_00005.jpg 9",      # unknown label
        "train_00006.jpg",        # malformed line
        "test_0001.jpg 5",        # ok, sadness
        "val_0001.jpg 5",         # unknown split
        "train_x/../../../../../etc/passwd.jpg 3",  # escapes the root
    ]
    images = {
        "train_00001_aligned.jpg": _jpeg(1),
        "train_00002_aligned.jpg": _jpeg(2),
        "train_00003_aligned.jpg": b"\xff\xd8 definitely not a jpeg",
        "train_00005_aligned.jpg": _jpeg(5),
        "test_0001_aligned.jpg": _jpeg(6),
    }
    _write_rafdb(root, lines, images)
    return root


def test_every_record_is_kept_or_rejected_with_reason(faulty_rafdb, tmp_path):
    out = tmp_path / "prepared" / "rafdb"
    manifest = prepare_dataset("rafdb", "rafdb_basic", str(faulty_rafdb), out, 112, 90, 2, 100)
    assert manifest["inputs"] == 9
    assert manifest["kept"] == 3 and manifest["rejected"] == 6
    assert manifest["kept"] + manifest["rejected"] == manifest["inputs"]
    assert manifest["rejected_per_reason"] == {"corrupt_image": 1, "malformed_line": 1, "missing_file": 1,
                                               "path_outside_root": 1, "unknown_label": 1, "unknown_split": 1}
    assert manifest["kept_per_split_class"] == {"test": {"sadness": 1}, "train": {"happiness": 1, "neutral": 1}}
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    by_reason = {r["reason"]: r for r in rejects}
    assert by_reason["missing_file"]["source"] == "Image/aligned/train_00004_aligned.jpg"
    assert by_reason["unknown_label"]["source"].endswith("list_patition_label.txt:5")
    assert "passwd" in by_reason["path_outside_root"]["detail"]
    rows = pq.read_table(out / "shard-00000.parquet").to_pylist()
    assert [r["label"] for r in rows] == ["happiness", "neutral", "sadness"]
    assert len(rows[0]["landmarks5"]) == 10
    crop = cv2.imdecode(np.frombuffer(rows[0]["image"], np.uint8), 1)
    assert crop.shape == (112, 112, 3)
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert not list(out.parent.glob(".*tmp*")), "no temp folder left behind"


def test_row_groups_and_shards_follow_params(faulty_rafdb, tmp_path):
    out = tmp_path / "p"
    manifest = prepare_dataset("rafdb", "rafdb_basic", str(faulty_rafdb), out, 64, 90, row_group_size=1,
                               rows_per_shard=2)
    assert manifest["shards"] == ["shard-00000.parquet", "shard-00001.parquet"]
    assert pq.ParquetFile(out / "shard-00000.parquet").metadata.num_row_groups == 2
    assert pq.ParquetFile(out / "shard-00001.parquet").metadata.num_rows == 1


def test_content_digest_tracks_content(faulty_rafdb, tmp_path):
    a = prepare_dataset("rafdb", "rafdb_basic", str(faulty_rafdb), tmp_path / "a", 112, 90, 2, 100)
    b = prepare_dataset("rafdb", "rafdb_basic", str(faulty_rafdb), tmp_path / "b", 112, 90, 2, 100)
    assert a["content_digest"] == b["content_digest"]
    (faulty_rafdb / "Image/aligned/train_00001_aligned.jpg").write_bytes(_jpeg(99))
    c = prepare_dataset("rafdb", "rafdb_basic", str(faulty_rafdb), tmp_path / "c", 112, 90, 2, 100)
    assert c["content_digest"] != a["content_digest"]


def test_missing_label_list_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="list_patition_label.txt"):
        list(read_rafdb_basic(tmp_path))


def test_rerun_replaces_output_atomically(faulty_rafdb, tmp_path):
    out = tmp_path / "p"
    prepare_dataset("rafdb", "rafdb_basic", str(faulty_rafdb), out, 112, 90, 2, 100)
    (out / "stale.txt").write_text("from an earlier run")
    prepare_dataset("rafdb", "rafdb_basic", str(faulty_rafdb), out, 112, 90, 2, 100)
    assert not (out / "stale.txt").exists()


def test_workers_give_identical_output_in_reader_order(tmp_path, monkeypatch):
    """workers=2 (spawned pool, several chunks in flight) writes byte for byte what
    workers=1 (inline) writes, rejects included, in reader order."""
    from fer_pipeline.data.prep import pool

    root = tmp_path / "rafdb"
    lines, images = [], {}
    for i in range(1, 41):
        name = f"train_{i:05d}.jpg"
        lines.append(f"{name} {i % 7 + 1}")
        if i % 9 == 0:
            images[f"train_{i:05d}_aligned.jpg"] = b"\xff\xd8 not a jpeg"        # corrupt_image, in a worker
        elif i % 11 != 0:                                                      # i % 11 == 0: missing_file
            images[f"train_{i:05d}_aligned.jpg"] = _jpeg(i)
    lines += ["train_00099.jpg 9", "test_0001.jpg 5", "train_x/../../../../../etc/passwd.jpg 3"]
    images["test_0001_aligned.jpg"] = _jpeg(100)
    _write_rafdb(root, lines, images)
    monkeypatch.setattr(pool, "CHUNK_SIZE", 4)  # many chunks, more than 2 x workers of them in flight
    started = []
    real_executor = pool.ProcessPoolExecutor
    monkeypatch.setattr(pool, "ProcessPoolExecutor", lambda *a, **kw: started.append(a) or real_executor(*a, **kw))

    one = prepare_dataset("rafdb", "rafdb_basic", str(root), tmp_path / "w1", 64, 90, 4, 16, workers=1)
    assert not started, "workers=1 crops inline"
    two = prepare_dataset("rafdb", "rafdb_basic", str(root), tmp_path / "w2", 64, 90, 4, 16, workers=2)
    assert started == [(2,)], "workers=2 ran the pool"
    assert one == two
    assert one["rejected_per_reason"] == {"corrupt_image": 4, "missing_file": 3, "path_outside_root": 1,
                                          "unknown_label": 1}
    assert one["kept"] == 34 and len(one["shards"]) == 3
    files = sorted(p.name for p in (tmp_path / "w1").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "w2").iterdir())
    for name in files:
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes(), name
