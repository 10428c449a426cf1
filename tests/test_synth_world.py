"""FaceSynth's datasets read back through the real readers."""

import csv
from collections import Counter

import cv2
import numpy as np
import pytest

from fer_pipeline.data.io.ms1m import read_ms1m_recordio
from fer_pipeline.data.io.rafdb import read_rafdb_basic
from fer_pipeline.data.io.records import RawRecord
from fer_pipeline.data.synth.world import RAFDB_PRIOR, World
from fer_pipeline.data.synth.writers import write_ms1m_recordio, write_rafdb_basic


@pytest.fixture(scope="module")
def world():
    return World(seed=11, render_size=64, nuisance_strength=1.0, intensity=(0.15, 1.0))


def test_rafdb_written_in_real_format_and_read_back(world, tmp_path):
    counts = write_rafdb_basic(world, tmp_path / "rafdb", {"identities": 10, "train_images": 40,
                                                           "test_images": 20}, label_noise=0.0)
    lines = (tmp_path / "rafdb/EmoLabel/list_patition_label.txt").read_text().splitlines()
    assert lines[0].split()[0] == "train_00001.jpg" and lines[40].split()[0] == "test_0001.jpg"
    assert (tmp_path / "rafdb/Image/aligned/train_00001_aligned.jpg").exists()
    records = list(read_rafdb_basic(tmp_path / "rafdb"))
    assert len(records) == 60 and all(isinstance(r, RawRecord) for r in records)
    assert Counter(f"{r.split}/{r.label}" for r in records) == Counter(counts)
    img = cv2.imdecode(np.frombuffer(records[0].load(), np.uint8), 1)
    assert img.shape == (100, 100, 3)  # RAF-DB's aligned size


def test_same_seed_same_bytes_and_growing_keeps_earlier_images(world, tmp_path):
    small = {"identities": 4, "train_images": 5, "test_images": 2}
    big = {"identities": 4, "train_images": 8, "test_images": 2}
    write_rafdb_basic(world, tmp_path / "a", small, 0.0)
    write_rafdb_basic(World(11, 64, 1.0, (0.15, 1.0)), tmp_path / "b", big, 0.0)
    for i in range(1, 6):
        name = f"Image/aligned/train_{i:05d}_aligned.jpg"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_class_prior_follows_rafdb():
    world = World(seed=5, render_size=32, nuisance_strength=0.0, intensity=(0.15, 1.0))
    drawn = Counter(world.sample("rafdb/train", i, range(10), RAFDB_PRIOR).expression for i in range(4000))
    total = sum(RAFDB_PRIOR.values())
    for name, count in RAFDB_PRIOR.items():
        assert abs(drawn[name] / 4000 - count / total) < 0.025, name
    assert drawn["happiness"] > drawn["neutral"] > drawn["fear"]


def test_label_noise_rate():
    world = World(seed=5, render_size=32, nuisance_strength=0.0, intensity=(0.15, 1.0))
    samples = [world.sample("rafdb/train", i, range(10), RAFDB_PRIOR, label_noise=0.2) for i in range(3000)]
    wrong = sum(s.label != s.expression for s in samples) / len(samples)
    assert 0.12 < wrong < 0.22  # 20 % redrawn, some of them land on the true class again


def test_ms1m_pool_in_recordio_with_truth_outside_dataset(world, tmp_path):
    cfg = {"identities": 3, "images_per_identity": 4, "blend_fraction": 0.5}
    write_ms1m_recordio(world, tmp_path / "ms1m", cfg, tmp_path / "audit")
    assert sorted(p.name for p in (tmp_path / "ms1m").iterdir()) == ["property", "train.idx", "train.rec"]
    assert (tmp_path / "ms1m/property").read_text().strip() == "3,64,64"
    records = list(read_ms1m_recordio(tmp_path / "ms1m"))
    assert [r.identity for r in records] == [str(i // 4) for i in range(12)]
    assert all(r.label is None for r in records), "the pool is unlabeled"
    with open(tmp_path / "audit/ms1m_truth.csv") as fh:
        truth = list(csv.DictReader(fh))
    assert [int(t["key"]) for t in truth] == list(range(1, 13))
    assert any(t["blend_expression"] for t in truth)


def test_parallel_rendering_gives_identical_bytes():
    from fer_pipeline.data.synth.writers import render_jpegs

    world = World(seed=2, render_size=32, nuisance_strength=1.0, intensity=(0.15, 1.0))
    samples = [world.sample("rafdb/train", i, range(5), RAFDB_PRIOR) for i in range(70)]
    serial = list(render_jpegs(world, "people", "rafdb/train", samples, workers=1))
    parallel = list(render_jpegs(world, "people", "rafdb/train", samples, workers=2))
    assert serial == parallel
