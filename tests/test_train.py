"""Training on a tiny FaceSynth set: determinism, resume, balanced sampling."""

import copy

import pytest
import torch

from fer_pipeline.data.prep.prepare import prepare_dataset
from fer_pipeline.data.synth.world import World
from fer_pipeline.data.synth.writers import write_rafdb_basic
from fer_pipeline.data.datasets import EpochSampler
from fer_pipeline.models.bundle import load_bundle
from fer_pipeline.train.supervised import train_supervised


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    world = World(seed=3, render_size=64, nuisance_strength=0.5, intensity=(0.5, 1.0))
    write_rafdb_basic(world, root / "raw", {"identities": 6, "train_images": 48, "test_images": 12}, 0.0)
    prepare_dataset("rafdb", "rafdb_basic", str(root / "raw"), root / "prepared", 64, 90, 16, 1000)
    return root / "prepared"


@pytest.fixture
def cfg(params):
    c = copy.deepcopy(params["train"]["supervised"])
    c.update({"input_size": 32, "epochs": 2, "batch_size": 8, "num_workers": 0, "threads": 1, "device": "cpu"})
    return c


def _weights(model_dir):
    model, _ = load_bundle(model_dir)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_training_is_deterministic_and_resume_is_exact(tiny_dataset, cfg, tmp_path):
    train_supervised(cfg, tiny_dataset, tmp_path / "a", tmp_path / "wa")
    train_supervised(cfg, tiny_dataset, tmp_path / "b", tmp_path / "wb")
    straight = _weights(tmp_path / "a")
    assert _same(straight, _weights(tmp_path / "b")), "same seed, same weights"

    # Crash after epoch 1, then rerun: it resumes from the checkpoint in the work dir.
    out = train_supervised(cfg, tiny_dataset, tmp_path / "c", tmp_path / "wc", stop_after_epochs=1)
    assert out == {"stopped_at_epoch": 1} and (tmp_path / "wc" / "last.pt").exists()
    assert not (tmp_path / "c" / "model.pt").exists()
    train_supervised(cfg, tiny_dataset, tmp_path / "c", tmp_path / "wc")
    assert _same(straight, _weights(tmp_path / "c")), "resumed run ends with the same weights"
    assert not (tmp_path / "wc" / "last.pt").exists(), "finished runs leave nothing to resume"

    other = dict(cfg, seed=cfg["seed"] + 1)
    train_supervised(other, tiny_dataset, tmp_path / "d", tmp_path / "wd")
    assert not _same(straight, _weights(tmp_path / "d")), "another seed, other weights"


def test_bundle_records_what_evaluation_needs(tiny_dataset, cfg, tmp_path):
    cfg["epochs"] = 1
    train_supervised(cfg, tiny_dataset, tmp_path / "m", tmp_path / "w")
    _, bundle = load_bundle(tmp_path / "m")
    assert bundle["classes"][0] == "neutral" and len(bundle["classes"]) == 7
    assert bundle["input_size"] == 32 and bundle["arch"] == "resnet18"


def test_epoch_sampler_orders_depend_on_seed_and_epoch_only():
    targets = torch.tensor([0] * 90 + [1] * 10)
    s = EpochSampler(targets, seed=1, balanced=False)
    first = list(s)
    assert sorted(first) == list(range(100)) and first == list(EpochSampler(targets, 1, False))
    s.set_epoch(1)
    assert list(s) != first


def test_balanced_sampler_equalises_classes():
    targets = torch.tensor([0] * 950 + [1] * 50)
    drawn = torch.tensor(list(EpochSampler(targets, seed=0, balanced=True)))
    share_minority = (targets[drawn] == 1).float().mean().item()
    assert 0.45 < share_minority < 0.55  # 5 % of the data, half of the draws


def test_decode_rgb_gives_the_rgb_pixels_and_names_a_bad_row():
    import cv2
    import numpy as np

    from fer_pipeline.data.datasets import decode_rgb

    bgr = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", bgr)[1].tobytes()
    decoded_bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    image = decode_rgb(data, "shard-0000.parquet#3")
    assert image.shape == (3, 20, 30) and image.dtype == torch.uint8
    assert torch.equal(image[0], torch.from_numpy(decoded_bgr[:, :, 2].copy())), "channel 0 is red"
    assert torch.equal(image[2], torch.from_numpy(decoded_bgr[:, :, 0].copy()))
    with pytest.raises(ValueError, match="shard-0000.parquet#3"):
        decode_rgb(b"not a jpeg", "shard-0000.parquet#3")
