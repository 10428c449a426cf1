"""train-meta on a tiny FaceSynth world: runs, audits, and resumes exactly."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tool_env
from fer_pipeline.data.prep.prepare import prepare_dataset
from fer_pipeline.data.synth.world import World
from fer_pipeline.data.synth.writers import write_ms1m_recordio, write_rafdb_basic
from fer_pipeline.meta.train import train_meta
from fer_pipeline.models.bundle import load_bundle


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta")
    world = World(seed=4, render_size=64, nuisance_strength=0.5, intensity=(0.5, 1.0))
    write_rafdb_basic(world, root / "raw/rafdb", {"identities": 6, "train_images": 40, "test_images": 8}, 0.0)
    write_ms1m_recordio(world, root / "raw/ms1m", {"identities": 4, "images_per_identity": 8,
                                                   "blend_fraction": 0.25}, root / "raw/audit")
    for name, fmt in (("rafdb", "rafdb_basic"), ("ms1m", "ms1m_recordio")):
        prepare_dataset(name, fmt, str(root / "raw" / name), root / "prepared" / name, 64, 90, 16, 1000)
    return root


@pytest.fixture
def cfg(params):
    c = copy.deepcopy(params["train"]["meta"])
    c.update({"init": "scratch", "input_size": 32, "steps": 4, "batch_size": 4, "mu": 2, "num_workers": 0,
              "threads": 1, "device": "cpu", "log_every": 1, "checkpoint_every": 2})
    return c


def _run(cfg, root, out, **kw):
    return train_meta(cfg, root / "prepared/rafdb", root / "prepared/ms1m", out, out / "work",
                      truth_csv=str(root / "raw/audit/ms1m_truth.csv"), **kw)


def _student(out):
    return load_bundle(out)[0].state_dict()


@pytest.mark.parametrize("feedback", ["first_order", "exact"])
def test_meta_training_runs_and_audits(tiny_world, cfg, tmp_path, feedback):
    cfg["feedback"] = feedback
    result = _run(cfg, tiny_world, tmp_path / "m")
    assert result["steps"] == 4
    history = json.loads((tmp_path / "m/history.json").read_text())
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    last = history[-1]
    assert 0 <= last["pseudo_label_accuracy"] <= 1
    assert abs(sum(v for k, v in last.items() if k.startswith("pseudo_share.")) - 1) < 1e-6
    assert last["feedback_positive_rate"] in (0.0, 1.0)  # one step per record
    assert (tmp_path / "m/teacher.pt").exists()
    index = json.loads((tmp_path / "m/smp_index.json").read_text())
    assert index["count"] == len(index["sources"]) and index["balanced"] is cfg["balanced"]


def test_killed_meta_run_resumes_to_the_same_weights(tiny_world, cfg, tmp_path):
    _run(cfg, tiny_world, tmp_path / "a")
    stopped = _run(cfg, tiny_world, tmp_path / "b", stop_after_steps=2)
    assert stopped == {"stopped_at_step": 2} and (tmp_path / "b/work/last.pt").exists()
    _run(cfg, tiny_world, tmp_path / "b")
    a, b = _student(tmp_path / "a"), _student(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ha = json.loads((tmp_path / "a/history.json").read_text())
    hb = json.loads((tmp_path / "b/history.json").read_text())
    assert [h["loss_teacher"] for h in ha] == [h["loss_teacher"] for h in hb]


def test_ema_student_is_exported_and_resumes(tiny_world, cfg, tmp_path):
    cfg["ema_decay"] = 0.9
    _run(cfg, tiny_world, tmp_path / "a")
    _run(cfg, tiny_world, tmp_path / "b", stop_after_steps=2)
    _run(cfg, tiny_world, tmp_path / "b")
    a, b = _student(tmp_path / "a"), _student(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a), "EMA state is checkpointed"
    cfg["ema_decay"] = 0.0
    _run(cfg, tiny_world, tmp_path / "plain")
    plain = _student(tmp_path / "plain")
    assert not all(torch.equal(a[k], plain[k]) for k in a), "the exported student is the average"


def test_resume_between_audit_records_gives_the_same_record(tiny_world, cfg, tmp_path):
    cfg.update({"log_every": 4, "checkpoint_every": 2})  # the crash falls inside the record's window
    _run(cfg, tiny_world, tmp_path / "a")
    _run(cfg, tiny_world, tmp_path / "b", stop_after_steps=2)
    _run(cfg, tiny_world, tmp_path / "b")
    [ra] = json.loads((tmp_path / "a/history.json").read_text())
    [rb] = json.loads((tmp_path / "b/history.json").read_text())
    ra.pop("seconds"), rb.pop("seconds")
    assert ra == rb


def test_ddp_ranks_share_the_feedback_and_stay_in_sync(tiny_world, cfg, tmp_path):
    """Two gloo processes under torchrun: different batch slices, one all-reduced f,
    identical networks. `--standalone` binds its rendezvous port itself (port 0), so no
    free port is picked here and released before use (a race under pytest -n auto)."""
    cfg.update({"balanced": False, "checkpoint_every": 100})
    out = tmp_path / "ddp"
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).with_name("_ddp_worker.py")), str(tmp_path / "cfg.json"), str(tiny_world), str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=tool_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["weights_digest"] == r1["weights_digest"], "DDP keeps teacher and student identical on all ranks"
    assert r0["final"]["feedback_mean"] == r1["final"]["feedback_mean"], "f is all-reduced"
    assert r0["final"]["loss_u"] != r1["final"]["loss_u"], "each rank trains on its own slice of the batch"
    # Rank 0 alone writes the bundle, and it is the synchronised student.
    assert (out / "model.pt").exists() and len(json.loads((out / "history.json").read_text())) == cfg["steps"]
    single = _run(cfg, tiny_world, tmp_path / "single")
    assert single["world_size"] == 1 and single["weights_digest"] != r0["weights_digest"]
