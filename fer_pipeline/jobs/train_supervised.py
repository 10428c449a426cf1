"""`fer train-supervised`: the supervised baseline."""

from pathlib import Path

from fer_pipeline.dag.stages.train import init_weights
from fer_pipeline.train.supervised import train_supervised

STAGE = "train_supervised"
RESUME_FLAG = "train.supervised.resume"  # resumed from job.work_dir(): continues its MLflow run
SPLITS = ("train",)


def run(job) -> dict:
    cfg = job.params["train"]["supervised"]
    result = train_supervised(cfg, job.inst.deps[0], cfg["out_dir"], job.work_dir(), tracker=job.tracker,
                              init_weights=init_weights(job.params, "supervised"))
    job.tracker.log_artifact(str(Path(cfg["out_dir"]) / "history.json"))
    job.log_bundle(cfg["out_dir"])
    return {"result": result}
