"""`fer extract-features`: the frozen student embeds every frame of the video dataset."""

from pathlib import Path

from fer_pipeline.common.labels import ClassSet
from fer_pipeline.temporal.features import extract_features

STAGE = "extract_features"


def run(job) -> dict:
    cfg = job.params["temporal"]["features"]
    student_dir, dataset_dir = job.inst.deps
    out_dir = job.inst.outs[0]
    manifest = extract_features(student_dir, dataset_dir, out_dir, job.work_dir(), ClassSet.named(cfg["class_set"]),
                                cfg["batch_size"], cfg["device"], cfg["amp"])
    job.tracker.log_metrics({"frames": manifest["rows"], "dim": manifest["dim"]})
    job.tracker.log_artifact(str(Path(out_dir) / "manifest.json"))
    return {"content_digest": manifest["content_digest"]}
