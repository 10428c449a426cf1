"""Shared fixtures: tiny parameter sets and throw-away copies of the project."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin: fer, snakemake, dvc


def pytest_collection_modifyitems(items) -> None:
    """The DAG integration tests first (stable otherwise): with pytest-xdist handing out
    files in collection order (`--no-loadscope-reorder`), the two longest files start at
    once on separate workers and the short ones fill in around them."""
    items.sort(key=lambda item: item.get_closest_marker("integration") is None)


def tiny_params() -> dict:
    """params.yaml shrunk so the whole DAG runs in well under a minute."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    gen = params["generate"]
    gen["rafdb"] = {"identities": 12, "train_images": 84, "test_images": 42}
    gen["ms1m"] = {"identities": 3, "images_per_identity": 4, "blend_fraction": 0.25}
    gen["affectnet"] = {"identities": 4, "train_images": 12, "test_per_class": 1}
    gen["affwild2"] = {"train_videos": 1, "test_videos": 1, "frames_per_video": 8, "invalid_rate": 0.1,
                       "missing_rate": 0.1}
    gen["webface"] = {"identities": 2, "images_per_identity": 3, "blend_fraction": 0.0}
    params["train"]["pretrain_fr"].update({"input_size": 32, "epochs": 1, "batch_size": 4, "embedding_dim": 16,
                                           "num_workers": 0, "threads": 1, "verification": {"pairs": 20, "far": 0.1}})
    sup = params["train"]["supervised"]
    sup.update({"input_size": 32, "epochs": 1, "batch_size": 16, "num_workers": 0, "threads": 1})
    params["train"]["meta"].update({"input_size": 32, "steps": 2, "batch_size": 8, "mu": 1, "num_workers": 0,
                                    "threads": 1, "log_every": 1, "checkpoint_every": 1})
    params["train"]["finetune"].update({"epochs": 1, "batch_size": 16})
    params["evaluate"]["batch_size"] = 64
    params["temporal"]["train"].update({"seeds": [0], "steps": 2, "window": 4, "stride": 2, "batch_frames": 16,
                                        "d_model": 8, "layers": 1, "heads": 2, "ff_dim": 16, "threads": 1,
                                        "log_every": 1, "checkpoint_every": 1})
    params["temporal"]["evaluate"]["postprocess"]["window"] = 3
    # Every device key on the CPU: `auto` would pick bf16 CUDA on a GPU host, and the
    # tests comparing weights byte for byte assume the CPU's float32 arithmetic.
    for cfg in (sup, params["train"]["meta"], params["train"]["pretrain_fr"], params["temporal"]["features"],
                params["temporal"]["train"]):
        cfg["device"] = "cpu"
    return params


@pytest.fixture
def params() -> dict:
    return copy.deepcopy(tiny_params())


def tool_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("FER_PIPELINE_ID", None)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def make_project_copy(dest: Path, params: dict) -> Path:
    """The project's source files (what a clean clone has) in `dest`, as a fresh git
    repository, with `params` as its params.yaml."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.split("\n")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest


# ---- asking both tools what is outdated (integration tests) ----

def snakemake_plan(proj) -> set[str]:
    """Rules `snakemake -n` would run (empty when there is nothing to do)."""
    proc = run(["snakemake", "-n"], proj)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return set()
    table = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m for m in re.findall(r"^(\w+)\s+\d+\s*$", table, re.M)} - {"all", "job"}


def dvc_outdated(proj, dvc_file: str = "dvc.yaml") -> set[str]:
    """Stages of one dvc.yaml that `dvc status` reports (the spatial study has its own file)."""
    status = json.loads(run(["dvc", "status", "--json", dvc_file], proj).stdout or "{}")
    return {name.rpartition(":")[2].split("@")[0] for name in status}


def fer_outdated(proj) -> set[str]:
    """Stages `fer status` names as outdated."""
    out = run(["fer", "status"], proj).stdout
    return {line.split()[0].split("@")[0] for line in out.splitlines() if line.endswith("OUTDATED")}


def set_param(proj, dotted: str, value) -> None:
    path = proj / "params.yaml"
    params = yaml.safe_load(path.read_text())
    node = params
    *parents, last = dotted.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def mlflow_runs(proj):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{proj / 'mlflow.db'}")
    experiments = client.search_experiments()
    assert [e.name for e in experiments if e.name != "Default"] == ["fer-pipeline"]
    exp = next(e for e in experiments if e.name == "fer-pipeline")
    # The jobs' runs, not the parent run each invocation groups them under (dag/tracking.py).
    return client.search_runs([exp.experiment_id], filter_string="tags.kind = 'job'", max_results=1000)


def pytest_terminal_summary(terminalreporter, config) -> None:
    """The fault suite's table (tests/faults/fault_table.py), here too: the xdist
    controller loads this conftest but not tests/faults/conftest.py."""
    import importlib.util

    name = "faults.fault_table"  # imported by tests/faults/conftest.py when this process collected it
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "faults" / "fault_table.py")
        module = sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    module.print_table(terminalreporter, config)
