"""`fer evaluate-temporal`: whole-video evaluation (frame-level, + temporal encoder, + post-processing)."""

from fer_pipeline.dag.stages import uses_facesynth
from fer_pipeline.temporal.evaluate import evaluate_temporal

STAGE = "evaluate_temporal"


def metric_key(row: str) -> str:
    """`+ temporal encoder` -> `plus_temporal_encoder` (an MLflow metric name)."""
    return row.replace("+ ", "plus_").replace(" ", "_").replace("(", "").replace(")", "")


def run(job) -> None:
    temporal = job.params["temporal"]
    cfg = temporal["evaluate"]
    encoders_dir, features_dir = job.inst.deps[:2]
    table = evaluate_temporal(encoders_dir, features_dir, cfg["out_dir"], temporal["train"]["seeds"], cfg,
                              uses_facesynth(job.params))
    for row in table["rows"]:
        key = metric_key(row["row"])
        job.tracker.log_metrics({f"{key}.macro_f1": row["macro_f1"]["mean"], f"{key}.accuracy": row["accuracy"]["mean"]})
    job.log_artifacts(cfg["out_dir"])
