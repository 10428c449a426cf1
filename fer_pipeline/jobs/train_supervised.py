"""`fer train-supervised`: the supervised baseline."""

from pathlib import Path

from fer_pipeline.train.supervised import train_supervised

STAGE = "train_supervised"


def run(job) -> dict:
    cfg = job.params["train"]["supervised"]
    result = train_supervised(cfg, job.inst.deps[0], cfg["out_dir"], job.work_dir(), tracker=job.tracker)
    job.tracker.log_artifact(str(Path(cfg["out_dir"]) / "history.json"))
    return {"result": result}
