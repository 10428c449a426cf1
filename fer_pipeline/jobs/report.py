"""`fer report`: the results table of every evaluated model and the temporal table."""

from pathlib import Path

from fer_pipeline.dag.stages import evaluated_models, uses_facesynth
from fer_pipeline.reporting.summary import write_report

STAGE = "report"


def run(job) -> None:
    params = job.params
    metrics_files = {name: Path(params["evaluate"]["out_dir"]) / name / "metrics.json"
                     for name in evaluated_models(params)}
    temporal_metrics = Path(params["temporal"]["evaluate"]["out_dir"]) / "metrics.json"
    write_report(metrics_files, params["report"]["out_dir"], uses_facesynth(params), temporal_metrics)
    job.log_artifacts(params["report"]["out_dir"], ("summary.md", "summary.json"))
