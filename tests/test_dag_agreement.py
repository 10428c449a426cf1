"""Snakefile and dvc.yaml describe the same DAG: same jobs, commands, edges."""

import re

import yaml

from conftest import REPO, run
from fer_pipeline import params as params_mod
from fer_pipeline.dvcgen import render_dvc_yaml
from fer_pipeline.stages import instances


def test_dvc_yaml_is_rendered_from_the_stage_list():
    params = params_mod.load(REPO / "params.yaml")
    assert (REPO / "dvc.yaml").read_text() == render_dvc_yaml(params), "run `fer dvc-yaml`"


def _snakemake_jobs(cwd):
    """(rule, shell command) of every job Snakemake would run from scratch."""
    out = run(["snakemake", "-n", "--forceall", "--printshellcmds"], cwd).stdout
    return sorted(re.findall(r"^Shell command: (fer [^\n]+?)\s*$", out, re.M))


def _dvc_commands(cwd):
    """Every stage command of dvc.yaml, foreach items expanded by DVC itself."""
    out = run(["dvc", "stage", "list", "--name-only"], cwd).stdout.split()
    dvc_yaml = yaml.safe_load((cwd / "dvc.yaml").read_text())
    cmds = []
    for name in out:
        base, _, item = name.partition("@")
        stage = dvc_yaml["stages"][base]
        cmd = stage["do"]["cmd"].replace("${key}", item) if item else stage["cmd"]
        cmds.append(cmd)
    return sorted(cmds), sorted(out)


def _edges_snakemake(cwd):
    dot = run(["snakemake", "--rulegraph", "--forceall"], cwd).stdout
    labels = dict(re.findall(r'(\d+)\[label = "(\w+)"', dot))
    return {(labels[a], labels[b]) for a, b in re.findall(r"(\d+) -> (\d+)", dot)} - {
        (a, b) for a, b in [(x, "all") for x in labels.values()]}


def _edges_dvc(cwd):
    dot = run(["dvc", "dag", "--dot"], cwd).stdout
    edges = set()
    for a, b in re.findall(r'"?([\w@]+)"?\s*->\s*"?([\w@]+)"?', dot):
        edges.add((a.split("@")[0], b.split("@")[0]))
    return edges


def test_snakemake_and_dvc_run_the_same_commands_and_edges():
    params = params_mod.load(REPO / "params.yaml")
    snake_cmds = _snakemake_jobs(REPO)
    dvc_cmds, dvc_names = _dvc_commands(REPO)
    assert dvc_names == sorted(i.name for i in instances(params))
    # Snakemake fills the log path in; DVC's line carries the same path literally.
    assert snake_cmds == dvc_cmds
    assert _edges_snakemake(REPO) == _edges_dvc(REPO)
    assert ("train_supervised", "evaluate") in _edges_dvc(REPO)


def test_snakemake_lint_is_clean():
    proc = run(["snakemake", "--lint"], REPO)
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


def test_dvc_yaml_check_detects_drift(tmp_path):
    drifted = tmp_path / "dvc.yaml"
    drifted.write_text((REPO / "dvc.yaml").read_text().replace("fer evaluate", "fer evaluate --fast"))
    proc = run(["fer", "dvc-yaml", "--check", "--output", str(drifted)], REPO, check=False)
    assert proc.returncode != 0 and "out of date" in proc.stderr
