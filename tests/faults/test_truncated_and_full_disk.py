"""Damaged outputs of earlier jobs, and a disk that fills up: a clear error naming the
file and the way out, never a silent restart from scratch or numbers from part of the data."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ._support import copy_project, mlflow_runs, temp_litter, tool_env
from fer_pipeline.data.prep.prepare import PrepareError, prepare_dataset


def _fer(proj: Path, *args: str) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([sys.executable, "-m", "fer_pipeline.cli", *args], cwd=proj, env=tool_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.fault("truncated Parquet shard")
def test_a_truncated_shard_is_named_and_nothing_is_trained(base, tmp_path, fault):
    proj = copy_project(base, tmp_path / "proj")
    shard = sorted((proj / "data/prepared/rafdb").glob("shard-*.parquet"))[0]
    data = shard.read_bytes()
    shard.unlink()  # not truncated in place: the partition's hard link keeps its bytes
    shard.write_bytes(data[: len(data) // 2])
    shutil.rmtree(proj / "models/supervised")
    fault.injected = True
    proc = _fer(proj, "train-supervised")
    fault.lost = 0 if proc.returncode != 0 else None  # a refusal loses nothing; a run on the rest would
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"{shard.relative_to(proj)} cannot be read" in proc.stderr and "Delete data/prepared/rafdb" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (proj / "models/supervised/model.pt").exists(), "nothing trained on part of the data"
    assert [s for _, s in mlflow_runs(proj, "train_supervised")].count("FAILED") == 1


@pytest.mark.fault("truncated checkpoint")
def test_a_truncated_resume_checkpoint_is_named_not_silently_restarted(base, tmp_path, fault, monkeypatch):
    from fer_pipeline.common import params as params_mod
    from fer_pipeline.dag.lineage import get_instance
    from fer_pipeline.dag.runner import work_dir

    proj = copy_project(base, tmp_path / "proj")
    shutil.rmtree(proj / "models/supervised")
    monkeypatch.chdir(proj)
    params = params_mod.load(proj / "params.yaml")
    ckpt = proj / work_dir(params, get_instance(params, "train_supervised", None)) / "last.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"w": torch.arange(4096.0)}, "epoch": 1, "step": 3}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:1500])
    fault.injected = True
    proc = _fer(proj, "train-supervised")
    fault.lost = 0 if proc.returncode != 0 else None
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"{ckpt.relative_to(proj)} cannot be read" in proc.stderr and f"rm '{ckpt.relative_to(proj)}'" in proc.stderr
    assert "Traceback" not in proc.stderr and "epoch 1/" not in proc.stderr, "no silent restart from scratch"
    assert ckpt.exists() and not (proj / "models/supervised").exists()


# ------------------------------------------------------------------ a full disk

def _rafdb(root: Path, n: int) -> Path:
    (root / "EmoLabel").mkdir(parents=True)
    (root / "Image/aligned").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(1, n + 1):
        img = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)  # noise: ~12 kB a crop
        (root / f"Image/aligned/train_{i:05d}_aligned.jpg").write_bytes(cv2.imencode(".jpg", img)[1].tobytes())
        lines.append(f"train_{i:05d}.jpg {1 + i % 7}\n")
    (root / "EmoLabel/list_patition_label.txt").write_text("".join(lines))
    return root


@pytest.mark.fault("full disk during prepare (2 MB tmpfs)")
def test_a_full_disk_fails_prepare_cleanly_and_the_rerun_is_whole(tmp_path, fault):
    root = _rafdb(tmp_path / "rafdb", 240)  # about 2.8 MB of crops
    reference = prepare_dataset("ds", "rafdb_basic", str(root), tmp_path / "ref", 112, 90, 16, 1000)
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a 2 MB tmpfs to fill (needs root; `mount` said: {mounted.stderr.strip()}): "
                    f"the full-disk fault is NOT covered on this machine")
    try:
        fault.injected = True
        with pytest.raises(PrepareError, match=r"no space left on the device holding .*disk/out.*run it again"):
            prepare_dataset("ds", "rafdb_basic", str(root), disk / "out", 112, 90, 16, 1000)
        assert os.listdir(disk) == [], "the partial output and its temp folder are removed"
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        again = prepare_dataset("ds", "rafdb_basic", str(root), disk / "out", 112, 90, 16, 1000)
        fault.lost = reference["kept"] - again["kept"]
        assert again == reference | {"shards": again["shards"]} and again["content_digest"] == reference["content_digest"]
        assert temp_litter(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    assert fault.lost == 0
