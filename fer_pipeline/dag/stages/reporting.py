"""The results table of the main DAG: every evaluated model plus the temporal table."""

from __future__ import annotations

from fer_pipeline.dag.stage import Stage
from fer_pipeline.dag.stages.common import evaluated_models


def stages(params: dict) -> list[Stage]:
    eval_root, report_dir = params["evaluate"]["out_dir"], params["report"]["out_dir"]
    temporal_metrics = f"{params['temporal']['evaluate']['out_dir']}/metrics.json"
    return [Stage(
        name="report",
        cmd="fer report --log-file {log}",
        deps=tuple(f"{eval_root}/{name}/metrics.json" for name in evaluated_models(params)) + (temporal_metrics,),
        outs=(f"{report_dir}/summary.md",),
        params=("report",),
        log="logs/report.log",
        stamp=f"{report_dir}/_stage.json",
        # The headline numbers: the one metrics file `dvc metrics show` reads.
        metrics=(f"{report_dir}/summary.json",),
    )]
