"""The spatial study (Face2Exp's tables) as its own Snakemake target, in a temporary copy
of the project; its own file so pytest-xdist (`--dist loadfile`) runs it beside the main
DAG test."""

import json

import pytest

from conftest import dvc_outdated, make_project_copy, mlflow_runs, run, tiny_params

pytestmark = pytest.mark.integration


def test_spatial_study_target_builds_the_tables_and_both_tools_agree(tmp_path):
    params = tiny_params()
    params["spatial"].update({"seeds": [0, 1], "labeled_fractions": [1.0], "ablation_fraction": 1.0,
                              "sl_epochs": 1, "meta_steps": 2})
    params["train"]["meta"]["batch_size"] = 4
    proj = make_project_copy(tmp_path, params)
    run(["fer", "dvc-yaml"], proj)
    run(["snakemake", "--cores", "2", "report_spatial"], proj)
    assert not (proj / "models/supervised").exists(), "the study target does not build the main DAG's models"

    for seed in (0, 1):
        results = json.loads((proj / f"models/spatial/seed{seed}/results.json").read_text())
        assert set(results["results"]) == {"sl_100", "sl_100_raw", "meta_100", "abl_s", "abl_su", "abl_suc"}
        assert results["mining"]["0"]["all"]["coverage"] is not None
        assert not list((proj / f"models/spatial/seed{seed}").rglob("*.pt")), "the study keeps numbers, not weights"
    # Not even sl_100's un-finetuned network, kept while meta_100 and the ablations started from it.
    assert not [p for p in (proj / ".fer/work").rglob("*.pt") if "spatial_study" in str(p)]
    tables = (proj / "reports/spatial/tables.md").read_text()
    assert "FaceSynth" in tables and "Table 4" in tables and "Table 6" in tables and "over 2 seeds" in tables
    data = json.loads((proj / "reports/spatial/tables.json").read_text())
    seed_means = [json.loads((proj / f"models/spatial/seed{s}/results.json").read_text())["results"]["sl_100"]
                  ["mean_class_accuracy"] for s in (0, 1)]
    assert abs(data["table4"]["SL 100 %"]["mean_class_accuracy"]["mean"] - 50 * sum(seed_means)) < 1e-9
    for name in ("table4", "table6", "pseudo_label_accuracy", "mining"):
        assert (proj / f"reports/spatial/{name}.png").stat().st_size > 0

    jobs = sorted(r.data.tags["job"] for r in mlflow_runs(proj))
    assert jobs == ["gather@ms1m", "gather@rafdb", "generate", "prepare@ms1m-0", "prepare@rafdb-0",
                    "prepare@rafdb-1", "report_spatial", "spatial_study@0", "spatial_study@1"]
    assert dvc_outdated(proj, "workflow/studies/spatial/dvc.yaml") == set()
    proc = run(["snakemake", "-n", "report_spatial"], proj)
    assert "Nothing to be done" in proc.stdout + proc.stderr

