import copy
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, tool_env
from fer_pipeline.common import params as params_mod


def test_params_yaml_is_valid():
    params_mod.load(REPO / "params.yaml")


def test_unknown_key_is_named():
    p = params_mod.load(REPO / "params.yaml")
    p["train"]["supervised"]["learning_rate"] = 0.1
    with pytest.raises(params_mod.ParamsError, match=r"unknown key 'train\.supervised\.learning_rate'"):
        params_mod.validate(p)


def test_wrong_type_is_named():
    p = params_mod.load(REPO / "params.yaml")
    p["train"]["supervised"]["epochs"] = "ten"
    with pytest.raises(params_mod.ParamsError, match=r"'train\.supervised\.epochs'.*not of type 'integer'"):
        params_mod.validate(p)


def test_every_fer_command_validates(tmp_path):
    p = params_mod.load(REPO / "params.yaml")
    bad = copy.deepcopy(p)
    bad["prepare"]["jpeg_qualty"] = 90
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run([sys.executable, "-m", "fer_pipeline.cli", "report", "--params", str(path)],
                          capture_output=True, text=True, env=tool_env(), cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown key 'prepare.jpeg_qualty'" in proc.stderr


def test_fer_help_lists_every_stage():
    out = subprocess.run([sys.executable, "-m", "fer_pipeline.cli", "--help"], capture_output=True, text=True,
                         env=tool_env()).stdout
    for cmd in ("generate", "prepare", "train-supervised", "evaluate", "report"):
        assert cmd in out


def test_snakemake_rejects_bad_params(tmp_path):
    """The Snakefile validates the same schema before building the DAG."""
    from conftest import make_project_copy, run, tiny_params

    bad = tiny_params()
    bad["train"]["supervised"]["optimizer"] = "lion"
    proj = make_project_copy(tmp_path, bad)
    proc = run(["snakemake", "-n"], proj, check=False)
    assert proc.returncode != 0
    assert "lion" in proc.stdout + proc.stderr


def test_paper_profile_is_valid_and_has_no_synthetic_stage():
    from fer_pipeline.dag.stages import build_stages

    paper = params_mod.load(REPO / "workflow/params/paper.yaml")
    assert paper["train"]["supervised"]["input_size"] == 224
    assert "generate" not in [s.name for s in build_stages(paper)]
    assert [s.name for s in build_stages(params_mod.load(REPO / "params.yaml"))][0] == "generate"


def test_missing_input_is_one_clear_line(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    proc = subprocess.run([sys.executable, "-m", "fer_pipeline.cli", "train-supervised", "--log-file", "t.log"],
                          capture_output=True, text=True, env=tool_env(), cwd=tmp_path)
    assert proc.returncode == 1
    assert "input data/prepared/rafdb not found" in proc.stderr and "fer gather --dataset rafdb" in proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" in (tmp_path / "t.log").read_text()


def test_tiny_params_put_every_device_on_the_cpu():
    """Any `device` key the schema gains must be pinned in tests/conftest.py: `auto`
    would train in bf16 on a CUDA host and break the byte-equality tests."""
    from conftest import tiny_params

    def devices(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from ([(f"{path}{key}", value)] if key == "device" else devices(value, f"{path}{key}."))

    found = dict(devices(tiny_params()))
    assert len(found) == len(dict(devices(params_mod.load(REPO / "params.yaml")))) >= 4
    assert set(found.values()) == {"cpu"}, found
