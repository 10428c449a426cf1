"""Atomic writes (common/atomic.py) and checkpoints written through them."""

from __future__ import annotations

import zipfile

import pytest
import torch

from fer_pipeline.common.atomic import atomic_path, building_dir, replace_dir, scratch_dir, write_json
from fer_pipeline.train import checkpoint


def test_atomic_path_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.csv.tmp-")
        tmp.write_text("new")
        assert target.read_text() == "old", "nothing visible before the block ends"
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer crashed")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"], "no temp file left behind"


def test_building_dir_swaps_in_whole_or_not_at_all(tmp_path):
    final = tmp_path / "sub" / "dataset"
    with building_dir(final) as tmp:
        write_json(tmp / "manifest.json", {"n": 1})
    assert (final / "manifest.json").read_text() == '{\n  "n": 1\n}\n'
    with pytest.raises(ValueError), building_dir(final) as tmp:
        write_json(tmp / "manifest.json", {"n": 2})
        raise ValueError("stage failed")
    assert (final / "manifest.json").read_text() == '{\n  "n": 1\n}\n', "the old output survives a failure"
    assert sorted(p.name for p in final.parent.iterdir()) == ["dataset"]


def test_building_dir_outside_parent_builds_one_level_up(tmp_path):
    """A partition (`_parts/<dataset>/<k>`) is built in `_parts/`, so neither the temp
    folder nor the replaced output waits inside `_parts/<dataset>`, gather's input."""
    final = tmp_path / "_parts" / "rafdb" / "0"
    for n in (1, 2):  # the second run replaces the first one's output
        with building_dir(final, outside_parent=True) as tmp:
            assert tmp.parent == tmp_path / "_parts" and tmp.name.startswith(".rafdb-0.tmp-")
            write_json(tmp / "manifest.json", {"n": n})
            assert sorted(p.name for p in final.parent.iterdir()) == (["0"] if n == 2 else [])
        assert (final / "manifest.json").read_text() == f'{{\n  "n": {n}\n}}\n'
    assert sorted(p.name for p in (tmp_path / "_parts").iterdir()) == ["rafdb"]
    assert sorted(p.name for p in final.parent.iterdir()) == ["0"]


def test_parts_of_a_scratch_folder_replace_older_parts(tmp_path):
    """FaceSynth swaps in each part of one scratch folder (names without a temp suffix)."""
    out = tmp_path / "raw"
    for n in (1, 2):
        with scratch_dir(out) as tmp:
            (tmp / "audit").mkdir()
            (tmp / "audit" / "truth.csv").write_text(str(n))
            out.mkdir(exist_ok=True)
            replace_dir(tmp / "audit", out / "audit")
        assert (out / "audit" / "truth.csv").read_text() == str(n)
    assert sorted(p.name for p in out.iterdir()) == ["audit"]


def test_scratch_dir_is_fresh_and_removed(tmp_path):
    with scratch_dir(tmp_path / "out") as tmp:
        assert tmp.is_dir() and not any(tmp.iterdir())
        (tmp / "part").mkdir()
    assert not tmp.exists() and not (tmp_path / "out").exists()


def test_checkpoint_bytes_do_not_depend_on_the_temp_name(tmp_path):
    """torch.save names the zip's inner folder after the file name less its last suffix:
    the temp name must keep `model.pt` there, as every bundle written so far has it."""
    state = {"w": torch.arange(6.0), "step": 3}
    checkpoint.save(tmp_path / "run" / "model.pt", **state)
    names = zipfile.ZipFile(tmp_path / "run" / "model.pt").namelist()
    assert names and all(n.startswith("model.pt/") for n in names), names
    (tmp_path / "old").mkdir()
    torch.save(state, tmp_path / "old" / "model.pt.tmp")  # how checkpoints were written before
    assert (tmp_path / "run" / "model.pt").read_bytes() == (tmp_path / "old" / "model.pt.tmp").read_bytes()
    assert torch.equal(checkpoint.load(tmp_path / "run" / "model.pt")["w"], state["w"])


def test_save_state_round_trips_parts_rng_and_progress(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    torch.manual_seed(5)
    checkpoint.save_state(tmp_path / "last.pt", {"model": model, "optimizer": opt}, step=7, history=[1])
    expected = torch.rand(4)
    fresh = torch.nn.Linear(3, 2)
    fresh_opt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(99)
    state = checkpoint.load_state(tmp_path / "last.pt", {"model": fresh, "optimizer": fresh_opt})
    assert list(state)[:3] == ["model", "optimizer", "rng"] and (state["step"], state["history"]) == (7, [1])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    assert fresh_opt.state_dict()["state"], "momentum buffers restored"
    assert torch.equal(torch.rand(4), expected), "the RNG continues where the checkpoint left it"
    assert checkpoint.load_state(tmp_path / "missing.pt", {"model": fresh}) is None
