"""pyproject.toml and environment.yml pin the same packages at the same versions."""

import re
import tomllib

import yaml

from conftest import REPO


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", req.strip())
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_pyproject_and_environment_yml_agree():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    py_pins, env_pins = _pins(deps), _pins(pip_section)
    assert len(py_pins) == len(deps), "every pyproject dependency is pinned with =="
    assert py_pins == env_pins
    assert "python=3.11" in env["dependencies"]


def test_required_pins_present():
    deps = _pins(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    for name, version in {"torch": "2.14.1", "torchvision": "0.29.1", "snakemake": "9.27.1", "dvc": "3.67.1",
                          "mlflow": "3.17.2", "pyarrow": "25.0.1", "insightface": "2.1",
                          "opencv-python": "4.14.0.94"}.items():
        assert deps[name] == version
    assert "opencv-python-headless" not in deps  # insightface needs opencv-python; never both
