"""Evaluation phase: one job per evaluated model (its labelled dataset's test split)."""

from __future__ import annotations

from fer_pipeline.dag.stage import Stage
from fer_pipeline.dag.stages.common import evaluated_models

PLOTS = ("confusion_matrix", "per_class_accuracy")


def stages(params: dict) -> list[Stage]:
    eval_root = params["evaluate"]["out_dir"]
    return [Stage(
        name="evaluate",
        cmd="fer evaluate --model {model} --log-file {log}",
        deps=("{model_dir}", "{dataset_dir}"),
        # metrics.json holds every per-class number: an output, not a DVC metrics file
        # (the headline numbers are in reports/summary.json).
        outs=(f"{eval_root}/{{model}}/predictions.csv", f"{eval_root}/{{model}}/metrics.json"),
        params=("evaluate",),
        log="logs/evaluate/{model}.log",
        stamp=f"{eval_root}/{{model}}/_stage.json",
        plots=tuple(f"{eval_root}/{{model}}/{name}.png" for name in PLOTS),
        item_name="model",
        items={name: {"model_dir": m["model_dir"], "dataset_dir": m["dataset_dir"]}
               for name, m in evaluated_models(params).items()},
    )]
