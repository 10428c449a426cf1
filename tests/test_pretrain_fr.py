"""Face-recognition pretraining on tiny FaceSynth FR pools: ArcFace learns, verification
pairs stay among held-out identities, runs resume exactly, and the exported backbone is
what the baseline, the teacher and the student start from."""

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fer_pipeline.dag.lineage import get_instance
from fer_pipeline.data.identities import IdentityDataset, read_pools, split_identities
from fer_pipeline.data.prep.prepare import prepare_dataset
from fer_pipeline.data.synth.world import World
from fer_pipeline.data.synth.writers import write_ms1m_recordio, write_rafdb_basic, write_webface_folders
from fer_pipeline.eval.verification import make_pairs, verification_metrics
from fer_pipeline.jobs import train_meta as train_meta_job
from fer_pipeline.jobs import train_supervised as train_supervised_job
from fer_pipeline.models.arcface import ArcFaceHead
from fer_pipeline.train.pretrain_fr import BACKBONE, pretrain_fr


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fr")
    synth = World(seed=5, render_size=64, nuisance_strength=0.3, intensity=(0.3, 1.0))
    write_ms1m_recordio(synth, root / "raw/ms1m", {"identities": 6, "images_per_identity": 8, "blend_fraction": 0.0},
                        root / "raw/audit")
    write_webface_folders(synth, root / "raw/webface", {"identities": 4, "images_per_identity": 8,
                                                        "blend_fraction": 0.0}, root / "raw/audit")
    write_rafdb_basic(synth, root / "raw/rafdb", {"identities": 4, "train_images": 24, "test_images": 8}, 0.0)
    for name, fmt in (("ms1m", "ms1m_recordio"), ("webface", "webface_folders"), ("rafdb", "rafdb_basic")):
        prepare_dataset(name, fmt, str(root / "raw" / name), root / "prepared" / name, 64, 90, 16, 1000)
    return root


@pytest.fixture
def cfg(params):
    c = copy.deepcopy(params["train"]["pretrain_fr"])
    c.update({"arch": "small_cnn", "embedding_dim": 32, "input_size": 32, "epochs": 6, "batch_size": 8,
              "optimizer": "adam", "lr": 0.003, "warmup_epochs": 0, "held_out_fraction": 0.2, "device": "cpu",
              "num_workers": 0, "threads": 1, "verification": {"pairs": 40, "far": 0.1}})
    return c


def _pools(world):
    return {name: str(world / "prepared" / name) for name in ("ms1m", "webface")}


def test_arcface_run_lowers_its_loss_and_exports_a_loadable_backbone(world, cfg, tmp_path):
    result = pretrain_fr(cfg, _pools(world), tmp_path / "out", tmp_path / "work")
    losses = [r["train_loss"] for r in json.loads((tmp_path / "out/history.json").read_text())]
    assert len(losses) == cfg["epochs"] and losses[-1] < 0.8 * losses[0], losses
    state = torch.load(tmp_path / "out" / BACKBONE, map_location="cpu", weights_only=True)
    assert state["arch"] == "small_cnn" and state["model"]
    assert not any(k.startswith("fc.") for k in state["model"]), "the embedding layer is not an initialisation"
    metrics = result["verification"]
    assert metrics["same_pairs"] > 0 and metrics["different_pairs"] > 0
    assert 0.5 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["tar_at_far"] <= 1.0
    assert not (tmp_path / "work/last.pt").exists(), "finished runs leave nothing to resume"


def test_killed_run_resumes_to_the_same_backbone(world, cfg, tmp_path):
    cfg["epochs"] = 2
    pretrain_fr(cfg, _pools(world), tmp_path / "a", tmp_path / "wa")
    assert pretrain_fr(cfg, _pools(world), tmp_path / "b", tmp_path / "wb", stop_after_epochs=1) == {
        "stopped_at_epoch": 1}
    pretrain_fr(cfg, _pools(world), tmp_path / "b", tmp_path / "wb")
    a, b = (torch.load(tmp_path / d / BACKBONE, weights_only=True)["model"] for d in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run ends with the same weights"


def test_verification_pairs_never_cross_into_train_identities(world):
    faces = read_pools(_pools(world))
    assert len(set(faces.identities)) == 10, "pools' identity numberings are kept apart"
    train_ids, held_ids = split_identities(faces.identities, 0.3, seed=1)
    assert not set(train_ids) & set(held_ids) and set(train_ids) | set(held_ids) == set(faces.identities)
    assert split_identities(faces.identities, 0.3, seed=1) == (train_ids, held_ids), "a function of the seed"
    assert split_identities(faces.identities, 0.3, seed=2) != (train_ids, held_ids)
    train_set = IdentityDataset(faces, train_ids, 32, None, 0)
    held_set = IdentityDataset(faces, held_ids, 32, None, 0)
    assert not set(train_set.sources) & set(held_set.sources)
    pairs = make_pairs(held_set.identities, 60, seed=3)
    ids = np.array(held_set.identities)
    assert set(ids[pairs[:, 0]]) | set(ids[pairs[:, 1]]) <= set(held_ids) and not set(ids[pairs[:, :2].ravel()]) & set(
        train_ids)
    assert np.array_equal(pairs[:, 2], ids[pairs[:, 0]] == ids[pairs[:, 1]]), "labels say same identity or not"
    assert pairs[:, 2].sum() == 30 and len({(i, j) for i, j, _ in pairs}) == len(pairs) == 60
    assert np.all(pairs[:, 0] < pairs[:, 1])


def test_verification_metrics_separate_and_mix():
    same = np.array([1] * 50 + [0] * 50)
    perfect = verification_metrics(np.where(same == 1, 0.9, 0.1) + np.linspace(0, 0.05, 100), same, 0.01)
    assert perfect["accuracy"] == 1.0 and perfect["tar_at_far"] == 1.0
    noise = verification_metrics(np.random.default_rng(0).random(100), same, 0.01)
    assert noise["accuracy"] < 0.75 and noise["tar_at_far"] < 0.3


def test_margin_lowers_only_the_true_identity_logit():
    head = ArcFaceHead(8, 5, scale=10.0, margin=0.5)
    x, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 3])
    plain = ArcFaceHead(8, 5, scale=10.0, margin=0.0)
    plain.weight.data.copy_(head.weight.data)
    with_margin, without = head(x, y), plain(x, y)
    target = torch.nn.functional.one_hot(y, 5).bool()
    assert torch.allclose(with_margin[~target], without[~target])
    assert torch.all(with_margin[target] < without[target])


class _Built(Exception):
    """Raised by the spy once the networks under test exist: no need to train them."""


def _spy_on(monkeypatch, module, count: int) -> list[dict]:
    built, real = [], module.build_model

    def spy(*args, **kwargs):
        model = real(*args, **kwargs)
        built.append({k: v.clone() for k, v in model.state_dict().items()})
        if len(built) == count:
            raise _Built
        return model

    monkeypatch.setattr(module, "build_model", spy)
    return built


def _job(params, stage, tmp_path):
    return SimpleNamespace(params=params, inst=get_instance(params, stage), tracker=None, is_main_process=True,
                           work_dir=lambda: tmp_path / "work" / stage)


def _starts_from(state: dict, backbone: dict) -> bool:
    return all(torch.equal(state[k], v) for k, v in backbone.items())


def test_fr_init_is_loaded_into_baseline_teacher_and_student(world, cfg, params, tmp_path, monkeypatch):
    import fer_pipeline.meta.train as meta_train
    import fer_pipeline.train.supervised as supervised

    cfg["epochs"] = 1
    pretrain_fr(cfg, _pools(world), tmp_path / "fr", tmp_path / "fr_work")
    backbone = torch.load(tmp_path / "fr" / BACKBONE, weights_only=True)["model"]
    params["prepare"]["out_dir"] = str(world / "prepared")
    params["train"]["pretrain_fr"].update({"arch": "small_cnn", "out_dir": str(tmp_path / "fr")})
    params["imbalance"]["arch"] = "small_cnn"  # its init (fr_pretrained) must fit the backbone too
    for section in ("supervised", "meta"):
        params["train"][section].update({"arch": "small_cnn", "init": "fr_pretrained", "input_size": 32,
                                         "device": "cpu", "out_dir": str(tmp_path / section)})
    params["train"]["meta"].update({"pool_truth": None, "labeled": "rafdb", "pool": "ms1m"})

    built = _spy_on(monkeypatch, supervised, 1)
    with pytest.raises(_Built):
        train_supervised_job.run(_job(params, "train_supervised", tmp_path))
    meta_built = _spy_on(monkeypatch, meta_train, 2)
    with pytest.raises(_Built):
        train_meta_job.run(_job(params, "train_meta", tmp_path))
    assert len(built) == 1 and len(meta_built) == 2 and len(backbone) > 10
    for role, state in zip(("baseline", "teacher", "student"), built + meta_built):
        assert _starts_from(state, backbone), f"the {role} does not start from the FR backbone"

    params["train"]["supervised"]["init"] = "scratch"
    scratch = _spy_on(monkeypatch, supervised, 1)
    with pytest.raises(_Built):
        train_supervised_job.run(_job(params, "train_supervised", tmp_path))
    assert not _starts_from(scratch[0], backbone), "the check above could fail"
