"""`fer report-imbalance`: LNSU's Table 3 shape over the imbalance study's seeds."""

from pathlib import Path

from fer_pipeline.dag.stages import uses_facesynth
from fer_pipeline.reporting.imbalance import write_imbalance_report

STAGE = "report_imbalance"


def run(job) -> None:
    imbalance = job.params["imbalance"]
    results = [Path(seed_dir) / "results.json" for seed_dir in job.inst.deps]
    tables = write_imbalance_report(results, imbalance, imbalance["report_dir"], uses_facesynth(job.params))
    job.tracker.log_metrics(tables["headline"])
    job.log_artifacts(imbalance["report_dir"], suffixes=(".md", ".json", ".png"))
