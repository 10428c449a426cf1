"""`fer train-temporal`: per seed, the temporal encoder and its frame-level twin on frame features."""

from pathlib import Path

from fer_pipeline.dag.tracked_models import log_module
from fer_pipeline.jobs._shared import read_manifest
from fer_pipeline.temporal.train import train_temporal

STAGE = "train_temporal"
RESUME_FLAG = "temporal.train.resume"  # resumed from job.work_dir(): continues its MLflow run


def run(job) -> dict:
    cfg = job.params["temporal"]["train"]
    features_dir = job.inst.deps[0]
    meta = {**read_manifest(features_dir, "`fer extract-features`"), "image_size": job.params["prepare"]["image_size"]}
    summary = train_temporal(cfg, features_dir, cfg["out_dir"], job.work_dir(), meta, tracker=job.tracker)
    job.tracker.log_artifact(str(Path(cfg["out_dir"]) / "summary.json"))
    for bundle in sorted(Path(cfg["out_dir"]).glob("seed*/*.pt")):  # seed<n>/<variant>.pt
        name = f"{bundle.parent.name}-{bundle.stem}"
        job.log_model(name, lambda tracker, bundle=bundle, name=name: log_temporal_encoder(tracker, bundle, name))
    return {"result": summary}


def log_temporal_encoder(mlflow, bundle_file: Path, name: str) -> dict:
    """A temporal encoder bundle as a logged model over one window of frame features,
    every frame present (the served form: padding is the caller's when windows are short)."""
    import numpy as np

    from fer_pipeline.temporal.model import EveryFramePresent
    from fer_pipeline.temporal.train import load_encoder

    model, bundle = load_encoder(bundle_file)
    example = np.zeros((1, bundle["window"], bundle["in_dim"]), dtype=np.float32)
    return log_module(mlflow, EveryFramePresent(model), example, bundle_file, name)
