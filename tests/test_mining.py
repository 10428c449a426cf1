"""Omni-supervised mining: the margin rule, centroids, audit, and a tiny end-to-end run."""

import copy
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from fer_pipeline.common.labels import ClassSet
from fer_pipeline.meta.train import read_pool_truth, train_meta
from fer_pipeline.meta.mining import (assign_by_margin, class_centroids, cosine_to_centroids, mine_pseudo_labels,
                                 mining_audit)
from fer_pipeline.data.prep.prepare import prepare_dataset
from fer_pipeline.dag.stages import build_stages
from fer_pipeline.data.synth.world import World
from fer_pipeline.data.synth.writers import write_ms1m_recordio, write_rafdb_basic
from fer_pipeline.data.datasets import FaceShardDataset
from fer_pipeline.train.supervised import train_supervised


def test_margin_rule_keeps_clear_winners_only():
    sim = np.array([[0.9, 0.2, 0.1],     # clear: class 0
                    [0.5, 0.45, 0.1],    # best beats runner-up by 0.05 < delta
                    [0.1, 0.3, 0.8]])    # clear: class 2
    assert assign_by_margin(sim, 0.1).tolist() == [0, -1, 2]
    assert assign_by_margin(sim, 0.0).tolist() == [0, 0, 2]
    assert assign_by_margin(sim, 0.65).tolist() == [0, -1, -1]  # a larger margin mines fewer faces


def test_cosine_and_centroids():
    feats = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    centroids, present = class_centroids(feats, np.array([0, 0, 1]), 2)
    assert centroids.tolist() == [[2.0, 0.0], [0.0, 2.0]] and present == [0, 1]
    assert cosine_to_centroids(np.array([[1.0, 1.0]]), centroids) == pytest.approx(np.array([[0.7071, 0.7071]]), 1e-3)
    _, present = class_centroids(feats, np.array([0, 0, 2]), 3)
    assert present == [0, 2]  # class 1 has no images, so no centroid
    with pytest.raises(ValueError, match="at least two classes"):
        class_centroids(feats, np.array([0, 0, 0]), 3)


def test_audit_precision_and_coverage():
    mined = np.array([0, 0, 1, -1, -1])
    truth = np.array([0, 1, 1, 1, 0])
    audit = mining_audit(mined, truth, ("a", "b"))
    assert audit["a"] == {"mined": 2, "precision": 0.5, "coverage": 0.5}
    assert audit["b"] == {"mined": 1, "precision": 1.0, "coverage": pytest.approx(1 / 3)}
    assert audit["all"]["precision"] == pytest.approx(2 / 3) and audit["all"]["coverage"] == pytest.approx(3 / 5)


def _tiny_setup(tmp_path, params, seed):
    world = World(seed=seed, render_size=64, nuisance_strength=0.3, intensity=(0.6, 1.0))
    write_rafdb_basic(world, tmp_path / "raw/rafdb", {"identities": 6, "train_images": 70, "test_images": 7}, 0.0)
    write_ms1m_recordio(world, tmp_path / "raw/ms1m", {"identities": 3, "images_per_identity": 10,
                                                       "blend_fraction": 0.0}, tmp_path / "raw/audit")
    for name, fmt in (("rafdb", "rafdb_basic"), ("ms1m", "ms1m_recordio")):
        prepare_dataset(name, fmt, str(tmp_path / "raw" / name), tmp_path / "prep" / name, 64, 90, 16, 1000)
    cfg = copy.deepcopy(params["train"]["supervised"])
    cfg.update({"input_size": 32, "epochs": 1, "batch_size": 8, "num_workers": 0, "threads": 1, "device": "cpu"})
    train_supervised(cfg, tmp_path / "prep/rafdb", tmp_path / "model", tmp_path / "work")
    return FaceShardDataset(tmp_path / "prep/rafdb", "train", ClassSet.named("basic7"), 32).class_counts()


def test_mined_dataset_is_a_prepared_dataset(tmp_path, params):
    counts = _tiny_setup(tmp_path, params, seed=9)
    assert (counts > 0).all(), "seed 9 gives every class at least one labelled image"
    sources = [f"train.rec#{k}" for k in range(1, 31)]
    truth = read_pool_truth(str(tmp_path / "raw/audit/ms1m_truth.csv"), sources, ClassSet.named("basic7")).numpy()
    manifest = mine_pseudo_labels(tmp_path / "model", tmp_path / "prep/rafdb", tmp_path / "prep/ms1m",
                                  tmp_path / "mined", 0.0, [0.0, 0.5], 64, 16, truth)
    assert manifest["kept"] + manifest["rejected"] == manifest["inputs"] == 30
    assert manifest["kept"] == 30  # delta 0 labels every face
    mined = FaceShardDataset(tmp_path / "mined", "train", ClassSet.named("basic7"), 32)
    assert len(mined) == 30 and torch.all(mined.targets >= 0)
    audit = json.loads((tmp_path / "mined/mining_audit.json").read_text())
    assert audit["0.5"]["all"]["mined"] <= audit["0"]["all"]["mined"] == 30
    assert pq.read_table(tmp_path / "mined/rejects.parquet").num_rows == 0

    strict = mine_pseudo_labels(tmp_path / "model", tmp_path / "prep/rafdb", tmp_path / "prep/ms1m",
                                tmp_path / "strict", 0.5, [], 64, 16)
    rejects = pq.read_table(tmp_path / "strict/rejects.parquet").to_pylist()
    assert strict["kept"] + len(rejects) == 30 and all(r["reason"] == "below_margin" for r in rejects)


def test_a_class_without_labelled_images_is_never_mined(tmp_path, params):
    counts = _tiny_setup(tmp_path, params, seed=8)
    fear = ClassSet.named("basic7").index("fear")
    assert counts[fear] == 0, "seed 8 draws no fear image"
    manifest = mine_pseudo_labels(tmp_path / "model", tmp_path / "prep/rafdb", tmp_path / "prep/ms1m",
                                  tmp_path / "mined", 0.0, [0.0], 64, 16)
    assert manifest["classes_without_centroid"] == ["fear"]
    assert manifest["kept"] == 30 and "fear" not in manifest["kept_per_split_class"]["train"]


def test_mined_set_with_labelled_rows_trains_meta_and_tests_on_the_labelled_split(tmp_path, params):
    """include_labeled: labelled + mined faces in one dataset that train-meta reads by name."""
    _tiny_setup(tmp_path, params, seed=9)
    manifest = mine_pseudo_labels(tmp_path / "model", tmp_path / "prep/rafdb", tmp_path / "prep/ms1m",
                                  tmp_path / "prep/omni", 0.0, [], 64, 16, include_labeled=True)
    assert manifest["inputs"] == 30 + 70 + 7 and manifest["kept"] + manifest["rejected"] == manifest["inputs"]
    assert manifest["kept_per_split"] == {"test": 7, "train": 70 + manifest["mined"]}
    classes = ClassSet.named("basic7")
    train = FaceShardDataset(tmp_path / "prep/omni", "train", classes, 32)
    test = FaceShardDataset(tmp_path / "prep/omni", "test", classes, 32)
    assert len(train) == 100 and len(test) == 7
    assert sum(s.startswith("rafdb/") for s in train.sources) == 70
    cfg = copy.deepcopy(params["train"]["meta"])
    cfg.update({"init": "scratch", "input_size": 32, "steps": 2, "batch_size": 4, "num_workers": 0, "threads": 1,
                "device": "cpu", "balanced": False, "pool_truth": None})
    result = train_meta(cfg, tmp_path / "prep/omni", tmp_path / "prep/ms1m", tmp_path / "meta", tmp_path / "w")
    assert result["steps"] == 2 and (tmp_path / "meta/model.pt").exists()


def test_training_the_baseline_on_its_own_mined_set_is_refused(params):
    bad = copy.deepcopy(params)
    bad["train"]["supervised"]["dataset"] = bad["mine"]["out_name"]
    with pytest.raises(ValueError, match="cycle"):
        build_stages(bad)
