"""`fer report-imbalance`: LNSU's Table 3 shape over the imbalance study's seeds, and seed
001's distillation table and cross-dataset matrix."""

from pathlib import Path

from fer_pipeline.dag.stages import uses_facesynth
from fer_pipeline.dag.stages.studies import cross_metrics_files, distilled_dir
from fer_pipeline.reporting.distill import write_distill_report
from fer_pipeline.reporting.imbalance import write_imbalance_report
from fer_pipeline.studies.auxiliary import DISTILLED_INFO

STAGE = "report_imbalance"


def run(job) -> None:
    params = job.params
    imbalance = params["imbalance"]
    synthetic = uses_facesynth(params)
    results = [Path(f"{imbalance['out_dir']}/seed{seed}") / "results.json" for seed in imbalance["seeds"]]
    tables = write_imbalance_report(results, imbalance, imbalance["report_dir"], synthetic)
    distill = write_distill_report(cross_metrics_files(params), Path(distilled_dir(params)) / DISTILLED_INFO,
                                   params["distill"], imbalance["seeds"], imbalance["report_dir"], synthetic)
    job.tracker.log_metrics(tables["headline"])
    job.tracker.log_metrics({f"distill.{k}": v for k, v in distill["headline"].items()})
    job.log_artifacts(imbalance["report_dir"], suffixes=(".md", ".json", ".png"))
