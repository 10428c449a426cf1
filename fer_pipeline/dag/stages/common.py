"""What several phases of the stage list share: stage groups, FaceSynth's folders,
the models the DAG evaluates."""

from __future__ import annotations

# Stage groups beyond the main DAG: the Snakemake target that builds each, and the
# dvc.yaml that holds its stages. A study's dvc.yaml is rendered only when asked
# (`fer dvc-yaml --group spatial`), so a bare `dvc status` after `make run` does not
# list a study nobody ran (see README, "Studies").
GROUPS = {
    "main": {"target": "all", "dvc_file": "dvc.yaml"},
    "spatial": {"target": "report_spatial", "dvc_file": "workflow/studies/spatial/dvc.yaml"},
    "imbalance": {"target": "report_imbalance", "dvc_file": "workflow/studies/imbalance/dvc.yaml"},
}

PARTS_DIR = "_parts"  # data/prepared/_parts/<dataset>/<k>: one input partition, prepared
SYNTH_DATASETS = ("rafdb", "ms1m", "affectnet", "affwild2", "webface")  # folders `fer generate` writes
# FaceSynth's ground truth for audits, kept outside the datasets (no training code reads it).
SYNTH_AUDIT_FILES = ("ms1m_truth.csv", "webface_truth.csv", "affwild2_conditions.csv")


def uses_facesynth(params: dict) -> bool:
    """True when some dataset is read from FaceSynth's output (numbers are then demo numbers)."""
    gen_dir = params["generate"]["out_dir"]
    synth_roots = {f"{gen_dir}/{name}" for name in SYNTH_DATASETS}
    return any(ds["root"] in synth_roots for ds in params["datasets"].values())


def evaluated_models(params: dict) -> dict[str, dict[str, str]]:
    """Every model the DAG evaluates: its bundle folder and its labelled dataset."""
    prep_dir = params["prepare"]["out_dir"]
    sup, meta, finetune = params["train"]["supervised"], params["train"]["meta"], params["train"]["finetune"]
    labelled = f"{prep_dir}/{meta['labeled']}"
    # The control (the baseline put through the student's finetune) sits between the
    # baseline and the student: the student must beat it, not only the raw baseline.
    return {
        "supervised": {"model_dir": sup["out_dir"], "dataset_dir": f"{prep_dir}/{sup['dataset']}"},
        "control": {"model_dir": f"{finetune['out_dir']}/control", "dataset_dir": labelled},
        "meta": {"model_dir": f"{finetune['out_dir']}/student", "dataset_dir": labelled},
    }
