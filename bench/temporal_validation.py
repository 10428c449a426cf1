"""Choose temporal-phase settings without looking at the test videos: hold out some
*training* videos, train the frame-level and temporal variants on the rest, score the
held-out videos exactly as `fer evaluate-temporal` scores the test videos.

    python bench/temporal_validation.py [--features data/features/affwild2] [--holdout 8]
        [--seeds 0 1 2] [--set temporal.train.class_weighting=none ...]

Needs the features of a DAG run (`snakemake extract_features` first). Each `--set`
names one variant of params.yaml's `temporal.train` to compare against the file's
own settings; prints one JSON object: per setting and row, macro-F1 and accuracy
per seed and their mean.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from fer_pipeline.common.labels import ClassSet
from fer_pipeline.common.params import ParamsError, load, validate
from fer_pipeline.temporal.evaluate import evaluate_seed
from fer_pipeline.temporal.feature_table import read_videos
from fer_pipeline.temporal.train import VARIANTS, train_variant
from fer_pipeline.train.device import set_threads


def parse_setting(text: str, params: dict) -> tuple[str, dict]:
    """`temporal.train.key=value` -> (label, that `temporal.train`), checked against the
    params schema like params.yaml itself, so a misspelt key or value is named, not ignored."""
    key, _, value = text.partition("=")
    field = key.removeprefix("temporal.train.")
    varied = copy.deepcopy(params)
    varied["temporal"]["train"][field] = yaml.safe_load(value)
    try:
        validate(varied, f"--set {text}")
    except ParamsError as exc:
        sys.exit(str(exc))
    return text, dict(varied["temporal"]["train"], resume=False)


def score(cfg: dict, fit: list, held: list, classes: list[str], seeds: list[int], evaluate_cfg: dict) -> dict:
    rows: dict[str, list] = {}
    for seed in seeds:
        with tempfile.TemporaryDirectory() as work:
            models = {v: train_variant(cfg, fit, classes, seed, v, Path(work), torch.device("cpu"))[0]
                      for v in VARIANTS}
        with torch.no_grad():
            result = evaluate_seed(models, held, classes, evaluate_cfg["stride"], evaluate_cfg["postprocess"])
        for name, metrics in result["rows"].items():
            if "macro_f1" in metrics:
                rows.setdefault(name, []).append({"macro_f1": round(100 * metrics["macro_f1"], 2),
                                                  "accuracy": round(100 * metrics["accuracy"], 2)})
    return {name: {"per_seed": runs,
                   "mean_macro_f1": round(float(np.mean([r["macro_f1"] for r in runs])), 2),
                   "mean_accuracy": round(float(np.mean([r["accuracy"] for r in runs])), 2)}
            for name, runs in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--features", help="default: <temporal.features.out_dir>/<temporal.features.dataset>")
    ap.add_argument("--holdout", type=int, default=8, help="training videos held out for scoring")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", action="append", default=[], dest="settings")
    args = ap.parse_args()
    try:
        params = load(args.params)
    except ParamsError as exc:
        sys.exit(str(exc))
    temporal = params["temporal"]
    features = args.features or f"{temporal['features']['out_dir']}/{temporal['features']['dataset']}"
    base = dict(temporal["train"], resume=False)
    set_threads(base["threads"])
    classes = list(ClassSet.named(temporal["features"]["class_set"]).classes)
    settings = [("params.yaml", base)] + [parse_setting(s, params) for s in args.settings]
    try:
        videos = read_videos(features, "train")
    except (FileNotFoundError, ValueError) as exc:
        sys.exit(str(exc))
    if not 0 < args.holdout < len(videos):
        sys.exit(f"--holdout {args.holdout}: the training split has {len(videos)} videos")
    # A fixed draw, so every setting is scored on the same held-out videos.
    order = np.random.default_rng(0).permutation(len(videos))
    held = [videos[i] for i in sorted(order[:args.holdout])]
    fit = [videos[i] for i in sorted(order[args.holdout:])]
    print(json.dumps({
        "what": "temporal variants trained on the other training videos, scored on held-out training videos",
        "features": features, "held_out_videos": [v.video for v in held], "fit_videos": len(fit),
        "seeds": args.seeds,
        "results": {label: score(cfg, fit, held, classes, args.seeds, temporal["evaluate"]) for label, cfg in settings},
    }, indent=1))


if __name__ == "__main__":
    main()
