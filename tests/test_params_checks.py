"""Checks across params keys (common/params_checks.py): each bad combination is refused
before any work starts, naming the keys involved; the shipped profiles pass."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, tiny_params, tool_env
from fer_pipeline.common import params as params_mod


@pytest.fixture
def shipped() -> dict:
    return params_mod.load(REPO / "params.yaml")


def _refused(params: dict, *names: str) -> str:
    with pytest.raises(params_mod.ParamsError) as err:
        params_mod.validate(params)
    for name in names:
        assert name in str(err.value), f"{name!r} not named in:\n{err.value}"
    return str(err.value)


@pytest.mark.parametrize("path", ["params.yaml", *sorted(p.relative_to(REPO).as_posix()
                                                        for p in (REPO / "workflow/params").glob("*.yaml"))])
def test_shipped_profiles_pass(path):
    params_mod.load(REPO / path)


def test_tiny_test_params_pass():
    params_mod.validate(tiny_params())


def test_a_crop_scale_out_of_order_or_range_is_named_wherever_it_sits(shipped):
    bad = copy.deepcopy(shipped)
    bad["train"]["meta"]["crop_scale"] = [0.9, 0.5]
    _refused(bad, "'train.meta.crop_scale'", "not in order")
    bad = copy.deepcopy(shipped)
    bad["train"]["pretrain_fr"]["augment"]["crop_scale"] = [0.0, 1.0]
    _refused(bad, "'train.pretrain_fr.augment.crop_scale'", "(0, 1]")


def test_an_intensity_range_out_of_order_is_named(shipped):
    shipped["generate"]["intensity"] = [0.8, 0.2]
    _refused(shipped, "'generate.intensity'", "not in order")


@pytest.mark.parametrize("key", ["train.supervised.dataset", "train.meta.labeled", "train.meta.pool", "mine.pool",
                                 "train.pretrain_fr.pools", "temporal.features.dataset"])
def test_a_dataset_not_in_datasets_is_named_with_the_prepared_ones(shipped, key):
    *parents, last = key.split(".")
    node = shipped
    for part in parents:
        node = node[part]
    node[last] = ["ms1m", "lfw"] if isinstance(node[last], list) else "lfw"
    message = _refused(shipped, f"'{key}'", "'lfw'")
    assert "prepared datasets: rafdb, ms1m, affectnet, affwild2, webface" in message


def test_the_mined_set_is_accepted_where_a_stage_may_read_it_only(shipped):
    mined = shipped["mine"]["out_name"]
    ok = copy.deepcopy(shipped)
    ok["train"]["meta"]["labeled"] = mined
    params_mod.validate(ok)
    shipped["mine"]["pool"] = mined
    _refused(shipped, "'mine.pool'", "a cycle")


def test_a_mined_set_named_like_a_dataset_is_refused(shipped):
    shipped["mine"]["out_name"] = "rafdb"
    _refused(shipped, "'mine.out_name'", "rafdb")


def test_a_missing_init_file_names_the_key_and_the_absolute_path(shipped, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped["train"]["supervised"]["init"] = "weights/ms1m_r18.pt"
    _refused(shipped, "'train.supervised.init'", str(tmp_path / "weights/ms1m_r18.pt"), "does not exist")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights/ms1m_r18.pt").write_bytes(b"state")
    params_mod.validate(shipped)


@pytest.mark.parametrize("out_key", ["prepare.out_dir", "train.supervised.out_dir", "evaluate.out_dir",
                                     "temporal.features.out_dir", "report.out_dir"])
def test_an_output_folder_around_or_inside_a_real_dataset_root_is_refused(shipped, out_key):
    shipped["datasets"]["rafdb"]["root"] = "/data/RAF-DB/basic"  # a user's copy, outside FaceSynth's folder
    bad = copy.deepcopy(shipped)
    section, *rest = out_key.split(".")
    node = bad[section]
    for part in rest[:-1]:
        node = node[part]
    node[rest[-1]] = "/data/RAF-DB"
    _refused(bad, f"'{out_key}'", "'datasets.rafdb.root'", "overlap")
    node[rest[-1]] = "/data/RAF-DB/basic/out"
    _refused(bad, f"'{out_key}'", "'datasets.rafdb.root'")


def test_the_prepared_folder_may_not_hold_or_sit_in_facesynths_folder_or_a_root(shipped):
    bad = copy.deepcopy(shipped)
    bad["prepare"]["out_dir"] = bad["generate"]["out_dir"] + "/prepared"
    _refused(bad, "'prepare.out_dir'", "'generate.out_dir'")
    bad = copy.deepcopy(shipped)
    bad["datasets"]["rafdb"]["root"] = bad["prepare"]["out_dir"] + "/rafdb"  # the loop `fer status` recursed in
    _refused(bad, "'prepare.out_dir'", "'datasets.rafdb.root'")


def test_a_root_around_facesynths_folder_is_refused_and_its_own_roots_pass(shipped):
    shipped["datasets"]["affectnet"]["root"] = "data/raw"
    _refused(shipped, "'generate.out_dir'", "'datasets.affectnet.root'")


def test_two_spellings_of_one_folder_overlap(shipped, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    shipped["datasets"]["rafdb"]["root"] = "real/rafdb"
    shipped["evaluate"]["out_dir"] = "./link/rafdb/../rafdb"
    _refused(shipped, "'evaluate.out_dir'", "'datasets.rafdb.root'")


def test_snakemakes_rules_run_the_same_checks(shipped):
    from fer_pipeline.orchestrators.snakemake_rules import Rules

    shipped["train"]["supervised"]["augment"]["crop_scale"] = [1.0, 0.5]
    with pytest.raises(params_mod.ParamsError, match=r"'train\.supervised\.augment\.crop_scale'"):
        Rules(shipped)


def test_fer_refuses_before_any_work_with_exit_code_2(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"]["rafdb"]["root"] = f"{params['prepare']['out_dir']}/rafdb"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "fer_pipeline.cli", "status"], cwd=tmp_path, capture_output=True,
                          text=True, env=tool_env(), timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "'prepare.out_dir'" in proc.stderr and "'datasets.rafdb.root'" in proc.stderr
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"], "nothing written before the check"
