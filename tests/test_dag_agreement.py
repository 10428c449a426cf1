"""Snakefile and dvc.yaml describe the same DAG: same jobs, commands, edges."""

import re

import networkx as nx
import pytest
import yaml

from conftest import REPO, make_project_copy, run
from fer_pipeline.common import params as params_mod
from fer_pipeline.orchestrators.dvc_render import render_dvc_yaml
from fer_pipeline.dag.lineage import instances
from fer_pipeline.dag.stages import GROUPS

ALL_TARGETS = [spec["target"] for spec in GROUPS.values()]


def test_dvc_yaml_is_rendered_from_the_stage_list():
    params = params_mod.load(REPO / "params.yaml")
    assert (REPO / "dvc.yaml").read_text() == render_dvc_yaml(params, "main"), "run `fer dvc-yaml`"
    # A study's dvc.yaml is rendered on demand, so a bare `dvc status` never lists a study nobody ran.
    tracked = run(["git", "ls-files", "workflow/studies"], REPO).stdout.split()
    assert not [path for path in tracked if path.endswith(("dvc.yaml", "dvc.lock"))]


def _snakemake_jobs(cwd, target="all"):
    """(rule, shell command) of every job Snakemake would run from scratch for `target`."""
    out = run(["snakemake", "-n", "--forceall", "--printshellcmds", target], cwd).stdout
    # A data-parallel trainer's line starts with its launcher (torchrun ... fer train-meta).
    return sorted(re.findall(r"^Shell command: ((?:torchrun [^\n]*?)?fer [^\n]+?)\s*$", out, re.M))


def _dvc_commands(cwd, dvc_file="dvc.yaml"):
    """Every stage command of one dvc.yaml, foreach items expanded by DVC itself."""
    out = [n.rpartition(":")[2] for n in run(["dvc", "stage", "list", "--name-only", dvc_file], cwd).stdout.split()]
    dvc_yaml = yaml.safe_load((cwd / dvc_file).read_text())
    cmds = []
    for name in out:
        base, _, item = name.partition("@")
        stage = dvc_yaml["stages"][base]
        if not item:
            cmds.append(stage["cmd"])
            continue
        values = {"key": item, **{f"item.{k}": v for k, v in stage["foreach"][item].items()}}
        cmds.append(re.sub(r"\$\{([\w.]+)\}", lambda m: str(values[m.group(1)]), stage["do"]["cmd"]))
    return sorted(cmds), sorted(out)


def _edges_snakemake(cwd, targets=("all",)):
    dot = run(["snakemake", "--rulegraph", "--forceall", *targets], cwd).stdout
    labels = dict(re.findall(r'(\d+)\[label = "(\w+)"', dot))
    return {(labels[a], labels[b]) for a, b in re.findall(r"(\d+) -> (\d+)", dot)} - {
        (a, b) for a, b in [(x, "all") for x in labels.values()]}


def _edges_dvc(cwd):
    dot = run(["dvc", "dag", "--dot"], cwd).stdout
    edges = set()
    for a, b in re.findall(r'"?([\w@/.:-]+)"?\s*->\s*"?([\w@/.:-]+)"?', dot):
        edges.add((a.rpartition(":")[2].split("@")[0], b.rpartition(":")[2].split("@")[0]))
    return edges


def _reduced(edges):
    """The transitive reduction: DVC also declares raw roots on the stages downstream of
    prepare (so `dvc status` names them when a raw file changes), which adds shortcut
    edges from generate; what must agree is the order the two tools impose."""
    return set(nx.transitive_reduction(nx.DiGraph(edges)).edges)


def test_snakemake_and_dvc_run_the_same_commands_and_edges():
    params = params_mod.load(REPO / "params.yaml")
    snake_cmds = _snakemake_jobs(REPO)
    dvc_cmds, dvc_names = _dvc_commands(REPO)
    assert dvc_names == sorted(i.name for i in instances(params, "main"))
    # Snakemake fills the log path in; DVC's line carries the same path literally.
    assert snake_cmds == dvc_cmds
    assert _reduced(_edges_snakemake(REPO)) == _reduced(_edges_dvc(REPO))
    assert ("generate", "train_supervised") not in _edges_snakemake(REPO)
    assert ("train_supervised", "evaluate") in _edges_dvc(REPO)


STUDIES = [group for group in GROUPS if group != "main"]


@pytest.mark.parametrize("group", STUDIES)
def test_each_study_is_its_own_target_in_both_tools(group, tmp_path):
    """`snakemake report_<study>` runs the study's jobs (plus what they need from the main
    DAG); they live in their own dvc.yaml, rendered when asked, so a bare `dvc repro` /
    `make run` never starts them."""
    params = params_mod.load(REPO / "params.yaml")
    proj = make_project_copy(tmp_path / "proj", params)
    for other in STUDIES:  # `dvc dag` reads every dvc.yaml: all of them, as after each study ran
        run(["fer", "dvc-yaml", "--group", other], proj)
    target = GROUPS[group]["target"]
    jobs = instances(params, group)
    study_stage = f"{group}_study"
    dvc_cmds, dvc_names = _dvc_commands(proj, GROUPS[group]["dvc_file"])
    assert dvc_names == sorted(i.name for i in jobs)
    # One job per seed and the report; the imbalance target also holds seed 001's distillation,
    # one training job per distill.models entry and one evaluation per (model, test set).
    distill = params["distill"]
    extra = {"imbalance": {"distill": 1, "train_auxiliary": len(distill["models"]),
                           "cross_evaluate": len(distill["models"]) * len(distill["test_sets"])}}.get(group, {})
    assert len(dvc_names) == len(params[group]["seeds"]) + 1 + sum(extra.values())
    assert {s: sum(i.stage.name == s for i in jobs) for s in extra} == extra
    assert [i.stage.name for i in jobs if not i.stage.scattered] == [*extra][:1] + [target]
    study = set(_snakemake_jobs(REPO, target)) - set(_snakemake_jobs(REPO, "all"))
    assert sorted(study) == dvc_cmds
    assert not any(f"fer {study_stage.replace('_', '-')}" in cmd for cmd in _snakemake_jobs(REPO, "all"))
    edges = _edges_dvc(proj)
    assert (study_stage, target) in edges
    if group == "imbalance":
        assert {("mine_pseudo", "distill"), ("distill", "train_auxiliary"), ("mine_pseudo", "train_auxiliary"),
                ("train_auxiliary", "cross_evaluate"), ("cross_evaluate", target), ("distill", target)} <= edges
        assert not any(f"fer {cmd}" in line for cmd in ("distill", "train-auxiliary", "cross-evaluate")
                       for line in _snakemake_jobs(REPO, "all"))
    assert _reduced(_edges_snakemake(proj, ALL_TARGETS)) == _reduced(_edges_dvc(proj))


def test_snakemake_lint_is_clean():
    proc = run(["snakemake", "--lint"], REPO)
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


def test_dvc_yaml_check_detects_drift(tmp_path):
    proj = make_project_copy(tmp_path / "proj", params_mod.load(REPO / "params.yaml"))
    run(["fer", "dvc-yaml", "--group", "spatial"], proj)
    for needle, group in (("fer evaluate", "main"), ("fer spatial-study", "spatial")):
        check = ["fer", "dvc-yaml", "--check", "--group", group]
        assert run(check, proj).returncode == 0
        path = proj / GROUPS[group]["dvc_file"]
        good = path.read_text()
        path.write_text(good.replace(needle, needle + " --fast"))
        proc = run(check, proj, check=False)
        assert proc.returncode != 0 and "out of date" in proc.stderr and GROUPS[group]["dvc_file"] in proc.stderr
        path.write_text(good)
    # An import added to a stage's code changes its code dependencies: dvc.yaml is stale.
    job = proj / "fer_pipeline/jobs/gather.py"
    job.write_text(job.read_text() + "\nfrom fer_pipeline.temporal import predict  # noqa\n")
    proc = run(["fer", "dvc-yaml", "--check"], proj, check=False)
    assert proc.returncode != 0 and "out of date" in proc.stderr


def test_is_under_reads_paths_as_pathlib_does():
    """The DAG's containment test works on strings for speed; pathlib is the reference."""
    from pathlib import PurePosixPath

    from fer_pipeline.dag.stage import is_under

    paths = ["data/prepared", "data/prepared/rafdb", "data/prepared/rafdb/", "./data/prepared/rafdb/parts/0",
             "data/prepared_old", "data//prepared/rafdb", "models/_stage.json", "models", ".", "", "..", "../data",
             "/abs/data", "/abs", "/"]
    for path in paths:
        for root in paths:
            expected = PurePosixPath(path) == PurePosixPath(root) or PurePosixPath(root) in PurePosixPath(path).parents
            assert is_under(path, root) == expected, (path, root)


def test_student_and_control_get_the_same_finetune_from_their_own_start():
    """The control row is the baseline put through exactly the student's finetune: same
    command, params and data, different starting weights and output."""
    params = params_mod.load(REPO / "params.yaml")
    jobs = {inst.item: inst for inst in instances(params) if inst.stage.name == "finetune"}
    assert set(jobs) == {"student", "control"}
    student, control = jobs["student"], jobs["control"]
    assert student.params == control.params and student.deps[1:] == control.deps[1:]
    assert student.deps[0] == params["train"]["meta"]["out_dir"]
    assert control.deps[0] == params["train"]["supervised"]["out_dir"]
    assert student.outs != control.outs
    evaluated = {inst.item: inst for inst in instances(params) if inst.stage.name == "evaluate"}
    assert {"supervised", "control", "meta"} <= set(evaluated)
    assert evaluated["control"].deps[0] == control.outs[0] and evaluated["meta"].deps[0] == student.outs[0]


def test_dvc_code_deps_are_exactly_each_stage_closure():
    """dvc.yaml lists a package folder when the closure holds every module below it:
    expanded to the `.py` files DVC sees in it, the deps are the closure, no more, no less."""
    from fer_pipeline.dag.lineage import upstream_code
    from fer_pipeline.dag.stages import build_stages

    params = params_mod.load(REPO / "params.yaml")
    rendered = yaml.safe_load(render_dvc_yaml(params, "main"))["stages"]
    folders = 0
    for stage in build_stages(params):
        if stage.group != "main":
            continue
        body = rendered[stage.name].get("do", rendered[stage.name])
        listed = set()
        for dep in body["deps"]:
            if not dep.startswith("fer_pipeline"):
                continue
            path = REPO / dep
            if path.is_dir():
                folders += 1
                listed |= {p.relative_to(REPO).as_posix() for p in path.rglob("*.py") if "__pycache__" not in p.parts}
            else:
                listed.add(dep)
        closure = {f for inst in stage.instances() for f in upstream_code(params, inst)}
        assert listed == closure, stage.name
    assert folders, "some closure holds a whole package folder"


def test_dvc_params_select_each_stage_values_under_fewer_keys():
    """Each stage's params in dvc.yaml select exactly the params.yaml values of its own and
    its upstream keys (so DVC names it for the same edits), under fewer keys: none inside
    another listed key, no mapping spelled out child by child."""
    from fer_pipeline.common.params import select
    from fer_pipeline.dag.lineage import upstream_params
    from fer_pipeline.dag.stages import build_stages
    from fer_pipeline.orchestrators.dvc_render import _dvc_template

    params = params_mod.load(REPO / "params.yaml")

    def leaves(keys):
        found = set()
        for key in keys:
            if "$" in key:  # a foreach template: one value per item
                found.add(key)
                continue
            todo = [key]
            while todo:
                k = todo.pop()
                value = select(params, k)
                if isinstance(value, dict) and value:
                    todo += [f"{k}.{child}" for child in value]
                else:
                    found.add(k)
        return found

    rendered = yaml.safe_load(render_dvc_yaml(params, "main"))["stages"]
    fewer = 0
    for stage in build_stages(params):
        if stage.group != "main":
            continue
        listed = rendered[stage.name].get("do", rendered[stage.name])["params"]
        wanted = upstream_params(params, stage.instances()[0]) + [_dvc_template(stage, p) for p in stage.params]
        # A template inside a listed mapping (gather's `datasets.${key}.parts` in `datasets`) is held by it.
        held = {k for k in wanted if "$" in k and any(k.startswith(key + ".") for key in listed)}
        assert leaves(listed) == leaves(set(wanted) - held), stage.name
        assert not [k for k in listed if any(k.startswith(key + ".") for key in listed)], stage.name
        assert len(set(listed)) == len(listed), stage.name
        fewer += len(set(wanted)) - len(listed)
    assert fewer > 0, "the demo lists train.meta.arch beside train.meta and every dataset one by one"
    assert "datasets" in rendered["report"]["params"] and "train" in rendered["report"]["params"]


def test_a_root_a_job_writes_reaches_dvc_through_that_jobs_stamp():
    """FaceSynth's roots are generate's outputs, which DVC already hashes once: prepare
    declares generate's stamp instead (the edge stays). A user's root, which no job
    writes, is declared as it is."""
    from fer_pipeline.dag.lineage import get_instance

    params = params_mod.load(REPO / "params.yaml")
    params["datasets"]["rafdb"]["root"] = "external/rafdb"
    rendered = yaml.safe_load(render_dvc_yaml(params, "main"))["stages"]
    stamp = get_instance(params, "generate").stamp
    assert stamp in rendered["generate"]["outs"]
    assert rendered["prepare"]["do"]["deps"][0] == "${item.root_dep}"
    for values in rendered["prepare"]["foreach"].values():
        assert values["root"] == params["datasets"][values["dataset"]]["root"]
        assert values["root_dep"] == ("external/rafdb" if values["dataset"] == "rafdb" else stamp)
    # The paper profile reads real data only: no job writes a root, nothing is redirected.
    paper = params_mod.load(REPO / "workflow/params/paper.yaml")
    prepare = yaml.safe_load(render_dvc_yaml(paper, "main"))["stages"]["prepare"]
    assert prepare["do"]["deps"][0] == "${item.root}"
    assert not [v for v in prepare["foreach"].values() if "root_dep" in v]


def test_every_stage_lists_the_dag_package_as_one_folder():
    """Every stage runs all of fer_pipeline/dag (the job runner and what it reads), so
    dvc.yaml lists it as one folder dep. A module there that no stage imports would
    split it back into a dozen file deps per job: what only the orchestrators read
    belongs in fer_pipeline/orchestrators/."""
    rendered = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in rendered.items():
        deps = stage.get("do", stage)["deps"]
        assert "fer_pipeline/dag" in deps, name
        assert not [d for d in deps if d.startswith("fer_pipeline/dag/")], name


def test_a_folder_dep_needs_every_module_and_dvc_sees_only_modules(tmp_path):
    from fer_pipeline.orchestrators.dvc_render import as_dvc_deps

    pkg = tmp_path / "fer_pipeline"
    for rel in ("__init__.py", "a/__init__.py", "a/x.py", "a/b/__init__.py", "a/b/y.py", "c/z.py"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("")
    (pkg / "a/__pycache__").mkdir()
    (pkg / "a/__pycache__/x.cpython-311.pyc").write_text("")
    (pkg / "a/notes.txt").write_text("not a module")
    closure = ["fer_pipeline/__init__.py", "fer_pipeline/a/__init__.py", "fer_pipeline/a/x.py",
               "fer_pipeline/a/b/__init__.py", "fer_pipeline/a/b/y.py"]
    assert as_dvc_deps(closure, tmp_path) == ["fer_pipeline/__init__.py", "fer_pipeline/a"]
    assert as_dvc_deps(closure[:-1], tmp_path) == ["fer_pipeline/__init__.py", "fer_pipeline/a/__init__.py",
                                                   "fer_pipeline/a/b/__init__.py", "fer_pipeline/a/x.py"]
    # DVC hashes the folder as the renderer counts it: modules only (.dvcignore).
    ignored = run(["dvc", "check-ignore", "fer_pipeline/common/notes.txt", "fer_pipeline/common/.labels.py.swp",
                   "fer_pipeline/common/__pycache__/labels.cpython-311.pyc", "fer_pipeline/common/labels.py",
                   "fer_pipeline/common"], REPO, check=False).stdout.split()
    assert ignored == ["fer_pipeline/common/notes.txt", "fer_pipeline/common/.labels.py.swp",
                       "fer_pipeline/common/__pycache__/labels.cpython-311.pyc"]
