"""`fer report-spatial`: Face2Exp's Tables 4 and 6 over the study's seeds."""

from pathlib import Path

from fer_pipeline.dag.stages import uses_facesynth
from fer_pipeline.reporting.spatial import write_spatial_report

STAGE = "report_spatial"


def run(job) -> None:
    spatial = job.params["spatial"]
    results = [Path(seed_dir) / "results.json" for seed_dir in job.inst.deps]
    tables = write_spatial_report(results, spatial, spatial["report_dir"], uses_facesynth(job.params))
    job.tracker.log_metrics(tables["headline"])
    job.log_artifacts(spatial["report_dir"], suffixes=(".md", ".json", ".png"))
