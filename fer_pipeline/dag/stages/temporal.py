"""Temporal phase (seed 002): features of every frame of a video dataset from the
frozen student, the encoders per seed, the whole-video evaluation."""

from __future__ import annotations

from fer_pipeline.dag.stage import Stage
from fer_pipeline.dag.stages.common import evaluated_models
from fer_pipeline.dag.stages.data import prepared

PLOTS = ("table", "confusion_matrix", "timeline")


def stages(params: dict) -> list[Stage]:
    temporal = params["temporal"]
    feat, train, evaluate = temporal["features"], temporal["train"], temporal["evaluate"]
    if feat["dataset"] not in params["datasets"]:
        raise ValueError(f"temporal.features.dataset {feat['dataset']!r} is not in params.yaml `datasets` "
                         f"({', '.join(params['datasets'])})")
    features_dir = f"{feat['out_dir']}/{feat['dataset']}"
    student_dir = evaluated_models(params)[feat["student"]]["model_dir"]
    report = evaluate["out_dir"]
    return [
        Stage(
            name="extract_features",
            cmd="fer extract-features --log-file {log}",
            deps=(student_dir, prepared(params, feat["dataset"])),
            outs=(features_dir,),
            params=("temporal.features",),
            log="logs/extract_features.log",
            stamp=f"{features_dir}/_stage.json",
        ),
        Stage(
            name="train_temporal",
            cmd="fer train-temporal --log-file {log}",
            deps=(features_dir,),
            outs=(train["out_dir"],),
            params=("temporal.train",),
            log="logs/train_temporal.log",
            stamp=f"{train['out_dir']}/_stage.json",
        ),
        Stage(
            name="evaluate_temporal",
            cmd="fer evaluate-temporal --log-file {log}",
            deps=(train["out_dir"], features_dir) + ((evaluate["conditions"],) if evaluate["conditions"] else ()),
            # metrics.json holds every per-seed number: an output, not a DVC metrics file.
            outs=(f"{report}/predictions.csv", f"{report}/table.md", f"{report}/metrics.json"),
            params=("temporal.evaluate",),
            log="logs/evaluate_temporal.log",
            stamp=f"{report}/_stage.json",
            plots=tuple(f"{report}/{name}.png" for name in PLOTS),
        ),
    ]
