"""Every `fer` command's error paths end in one clear line (the file or the dotted params
key named, the exit code telling which), and `fer status` / `fer summary` on hand-made
projects. Each command runs as a user runs it: a fresh process in a folder of its own."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, tiny_params, tool_env
from fer_pipeline.cli import COMMANDS


def fer(cwd: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fer_pipeline.cli", *args], cwd=cwd, capture_output=True,
                          text=True, env=tool_env(), timeout=timeout)


def project(tmp_path: Path, params: dict | None = None) -> dict:
    """An empty folder holding params.yaml (the project's own, unless given)."""
    if params is None:
        (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
        return yaml.safe_load((REPO / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def not_synthetic(params: dict) -> None:
    """Every dataset pointed at a user's copy: no dataset reads FaceSynth's output."""
    for name, ds in params["datasets"].items():
        ds["root"] = f"/data/real/{name}"


# Each command in an empty folder: (arguments, params change, exit code, what the message names).
# The names come from params.yaml, so a message that stops reading them fails here.
def _missing(p: dict) -> dict:
    prep, sup, meta = p["prepare"]["out_dir"], p["train"]["supervised"], p["train"]["meta"]
    temporal, spatial, imbalance = p["temporal"], p["spatial"], p["imbalance"]
    features = f"{temporal['features']['out_dir']}/{temporal['features']['dataset']}"
    return {
        "generate": ([], not_synthetic, 1, [f"generate.out_dir ({p['generate']['out_dir']})", "`datasets`"]),
        "prepare": (["--dataset", "rafdb", "--part", "0"], None, 1,
                    [f"input {p['datasets']['rafdb']['root']} not found", "fer generate"]),
        "gather": (["--dataset", "rafdb"], None, 1, [f"input {prep}/_parts/rafdb not found", "fer prepare"]),
        "train-supervised": ([], None, 1, [f"input {prep}/{sup['dataset']} not found", "fer gather"]),
        "train-meta": ([], None, 1, [f"input {prep}/{meta['labeled']} not found"]),
        "mine-pseudo": ([], None, 1, [f"input {sup['out_dir']} not found", "fer train-supervised"]),
        "finetune": (["--model", "student"], None, 1, [f"input {meta['out_dir']} not found", "fer train-meta"]),
        "spatial-study": (["--seed", str(spatial["seeds"][0])], None, 1,
                          [f"input {prep}/{min(meta['labeled'], meta['pool'])} not found"]),
        "imbalance-study": (["--seed", str(imbalance["seeds"][0])], None, 1,
                            [f"input {prep}/{sup['dataset']} not found", "fer gather"]),
        "distill": ([], None, 1, [f"input {prep}/{p['mine']['out_name']} not found", "fer mine-pseudo"]),
        "train-auxiliary": (["--model", "rafdb"], None, 1, [f"input {prep}/rafdb not found", "fer gather"]),
        "cross-evaluate": (["--model", "rafdb", "--test-set", "affectnet"], None, 1,
                           [f"input {p['distill']['out_dir']}/models/rafdb not found", "fer train-auxiliary"]),
        "evaluate": (["--model", "supervised"], None, 1, [f"input {sup['out_dir']} not found"]),
        "extract-features": ([], None, 1, [f"input {p['train']['finetune']['out_dir']}/student not found",
                                           "fer finetune"]),
        "train-temporal": ([], None, 1, [f"input {features} not found", "fer extract-features"]),
        "evaluate-temporal": ([], None, 1, [f"input {temporal['train']['out_dir']} not found"]),
        "predict-video": (["--input", "frames", "--out", "out.csv"], None, 1,
                          [f"{temporal['train']['out_dir']}/seed{temporal['train']['seeds'][0]}/temporal.pt "
                           "not found"]),
        "report": ([], None, 1, [f"input {p['evaluate']['out_dir']}/supervised/metrics.json not found"]),
        "report-spatial": ([], None, 1, [f"input {spatial['out_dir']}/seed{spatial['seeds'][0]} not found"]),
        "report-imbalance": ([], None, 1, [f"input {imbalance['out_dir']}/seed{imbalance['seeds'][0]} not found"]),
        "summary": ([], None, 1, [f"{p['report']['out_dir']}/summary.md not found"]),
        "status": ([], None, 0, ["OUTDATED"]),  # nothing ran yet: a report, not an error (see below)
        "dvc-yaml": (["--check"], None, 1, ["dvc.yaml is out of date", "fer dvc-yaml"]),
        "dvc-commit": ([], None, 0, ["no .dvc folder here"]),  # nothing to record, said so
        "server": (["--stop"], None, 0, ["no server runs for"]),  # nothing to stop, said so
        "pretrain-fr": ([], None, 1, [f"input {prep}/{p['train']['pretrain_fr']['pools'][0]} not found",
                                      "fer gather"]),
        "subset": (["--dataset", "rafdb", "--imbalance-factor", "10"], None, 1,
                   [f"no shard-*.parquet in {prep}/rafdb", "fer prepare"]),
    }


# A numeric or string key each command reads: wrong type, and a misspelt sibling beside it.
BAD_KEY = {
    "generate": "generate.render_size", "prepare": "prepare.jpeg_quality", "gather": "datasets.rafdb.parts",
    "train-supervised": "train.supervised.epochs", "train-meta": "train.meta.steps", "mine-pseudo": "mine.delta",
    "finetune": "train.finetune.epochs", "spatial-study": "spatial.meta_steps", "evaluate": "evaluate.batch_size",
    "extract-features": "temporal.features.batch_size", "train-temporal": "temporal.train.steps",
    "evaluate-temporal": "temporal.evaluate.stride", "predict-video": "temporal.evaluate.postprocess.window",
    "report": "report.out_dir", "report-spatial": "spatial.sl_epochs", "summary": "report.out_dir",
    "imbalance-study": "imbalance.epochs", "report-imbalance": "imbalance.input_size",
    "distill": "distill.algorithm.steps", "train-auxiliary": "distill.train.epochs",
    "cross-evaluate": "distill.input_size",
    "status": "prepare.row_group_size", "dvc-yaml": "tracking.experiment", "dvc-commit": "tracking.uri",
    "server": "tracking.server.port",
    "pretrain-fr": "train.pretrain_fr.epochs", "subset": "train.supervised.class_set",
}


def test_the_tables_cover_every_command():
    assert set(_missing(tiny_params())) == set(COMMANDS) == set(BAD_KEY)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_missing_input_is_one_clear_line(command, tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    args, change, code, names = _missing(params)[command]
    if change:
        change(params)
    project(tmp_path, params)
    proc = fer(tmp_path, command, *args, "--log-file", "logs/t.log")
    assert proc.returncode == code, proc.stderr[-3000:]
    said = proc.stdout + proc.stderr
    for name in names:
        assert name in said, f"fer {command} should name {name!r}:\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == (code != 0), f"one error line, not {len(errors)}"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_params_name_the_dotted_key(command, tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    args = _missing(params)[command][0]
    dotted = BAD_KEY[command]
    *parents, last = dotted.split(".")
    node = params
    for key in parents:
        node = node[key]
    node[last] = "ten" if isinstance(node[last], (int, float)) else 10
    node[last + "_typo"] = node[last]
    project(tmp_path, params)
    proc = fer(tmp_path, command, *args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"key '{dotted}': " in proc.stderr, proc.stderr
    assert f"unknown key '{dotted}_typo'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"], "nothing written before the check"


def test_generate_names_a_file_standing_where_its_folder_goes(tmp_path):
    params = project(tmp_path)
    blocker = params["generate"]["out_dir"].split("/")[0]
    (tmp_path / blocker).write_text("not a folder")
    proc = fer(tmp_path, "generate")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"generate.out_dir {params['generate']['out_dir']}: {blocker} is a file" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "mlflow.db").exists(), "refused before any run"


def test_missing_params_file_is_named(tmp_path):
    proc = fer(tmp_path, "status", "--params", "nowhere/params.yaml")
    assert proc.returncode == 2
    assert "nowhere/params.yaml: file not found" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "broken.yaml").write_text("train: [unclosed\n")
    proc = fer(tmp_path, "status", "--params", "broken.yaml")
    assert proc.returncode == 2 and "broken.yaml: not valid YAML" in proc.stderr


# ---- fer status ----

def _status(out: str) -> dict[str, str]:
    rows = [line.rsplit(None, 1) if line.endswith("OUTDATED") else line.split(None, 1)
            for line in out.splitlines() if line and not line.startswith("warning:")]
    return {name.strip(): state.strip() for name, state in rows}


def test_status_before_anything_ran_lists_every_job_outdated(tmp_path):
    from fer_pipeline.dag.lineage import instances

    params = project(tmp_path, tiny_params())
    proc = fer(tmp_path, "status")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _status(proc.stdout)
    assert list(jobs) == [inst.name for inst in instances(params, "main")], "every main job, in DAG order"
    assert set(jobs.values()) == {"OUTDATED"}
    assert "warning: dvc.yaml differs from the stage list" in proc.stdout, "no dvc.yaml here"

    everything = _status(fer(tmp_path, "status", "--all").stdout)
    assert list(everything) == [inst.name for inst in instances(params)]
    assert any(name.startswith("spatial_study@") for name in everything) and set(everything.values()) == {"OUTDATED"}


def test_status_names_a_finished_job_up_to_date_and_its_downstream_outdated(tmp_path, monkeypatch):
    """FaceSynth's job stamped with today's key is up to date; a changed generate
    parameter makes it outdated again. Nothing downstream ran, so all of it stays outdated."""
    from fer_pipeline.dag.lineage import get_instance
    from fer_pipeline.dag.provenance import write_stamp

    params = project(tmp_path, tiny_params())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FER_PIPELINE_ID", "test")  # write_stamp would set one for the whole session
    inst = get_instance(params, "generate")
    for out in map(Path, inst.outs):
        if out.suffix:  # the audit files
            out.parent.mkdir(parents=True, exist_ok=True)
            out.touch()
        else:
            out.mkdir(parents=True)
    write_stamp(params, inst, {"inputs": {}})
    jobs = _status(fer(tmp_path, "status").stdout)
    assert jobs.pop("generate") == "up to date"
    assert jobs and set(jobs.values()) == {"OUTDATED"}

    changed = copy.deepcopy(params)
    changed["generate"]["seed"] += 1
    project(tmp_path, changed)
    assert _status(fer(tmp_path, "status").stdout)["generate"] == "OUTDATED"


# ---- fer summary ----

def test_summary_prints_the_report_and_where_the_runs_are(tmp_path):
    params = tiny_params()
    params["report"]["out_dir"] = "out/tables"
    params["tracking"]["uri"] = "sqlite:///elsewhere/runs.db"
    project(tmp_path, params)
    table = "# fer-pipeline results\n\n| model | n |\n|---|---:|\n| supervised | 42 |\n"
    (tmp_path / "out/tables").mkdir(parents=True)
    (tmp_path / "out/tables/summary.md").write_text(table)
    proc = fer(tmp_path, "summary")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(table), "the report, verbatim"
    assert "--backend-store-uri sqlite:///elsewhere/runs.db" in proc.stdout
    assert f"{params['evaluate']['out_dir']}/<model>/*.png" in proc.stdout
