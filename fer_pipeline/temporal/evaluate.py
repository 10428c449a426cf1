"""`fer evaluate-temporal`: whole validation videos, frame by frame, in the shape of
seed 002's Table 1: frame-level -> + temporal encoder -> + post-processing.

Every frame gets the mean of the logits of all (overlapping) windows that contain
it; post-processing is the sliding-window majority vote (postprocess.py). The
measure is ABAW's: macro-F1 over all classes of the set (a class never predicted
counts as F1 0), over the frames with a label in the set.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from fer_pipeline.common.atomic import atomic_path
from fer_pipeline.temporal.postprocess import majority_smooth
from fer_pipeline.reporting.temporal import ROWS
from fer_pipeline.temporal.windows import MASKED, VideoFeatures, cut_windows, merge_window_logits

log = logging.getLogger(__name__)


@torch.no_grad()
def video_logits(model, video: VideoFeatures, stride: int, batch_windows: int = 64) -> np.ndarray:
    """Per-frame logits of one video (N x C), overlapping windows merged by averaging."""
    windows = cut_windows(video, model.window, min(stride, model.window))
    logits = []
    for i in range(0, len(windows), batch_windows):
        chunk = windows[i:i + batch_windows]
        feats = torch.from_numpy(np.stack([w.features for w in chunk]))
        present = torch.from_numpy(np.stack([w.present for w in chunk]))
        logits += list(model(feats, present).float().numpy())
    return merge_window_logits(video, windows, logits)


def abaw_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    labels = list(range(len(classes)))
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "n": int(len(y_true)),
        "macro_f1": float(per_class.mean()),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class_f1": {c: float(f) for c, f in zip(classes, per_class)},
        "per_class_support": {c: int((y_true == k).sum()) for k, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def switches_per_100(videos: list[VideoFeatures], labels_per_video: list[np.ndarray]) -> float:
    """How often the label changes between consecutive frames (per 100 frames): the
    flicker that post-processing removes."""
    changes = sum(int(np.sum(l[1:] != l[:-1])) for l in labels_per_video)
    return 100.0 * changes / max(1, sum(len(v.frames) for v in videos))


def predict_rows(models: dict, videos: list[VideoFeatures], stride: int, post: dict) -> dict[str, list[np.ndarray]]:
    """Per table row, the predicted labels of each video."""
    logits = {variant: [video_logits(model, v, stride) for v in videos] for variant, model in models.items()}
    out = {}
    for name, variant, smoothed in ROWS:
        preds = [l.argmax(1) for l in logits[variant]]
        if smoothed:
            preds = [majority_smooth(v.frames, p, post["window"], post["mode"]) for v, p in zip(videos, preds)]
        out[name] = preds
    return out


def read_conditions(path: str | Path) -> dict[tuple[str, int], tuple[str, float]]:
    """FaceSynth's audit of each video frame: (video, frame) -> (condition, true intensity)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return {(r["video"], int(r["frame"])): (r["condition"], float(r["intensity"])) for r in csv.DictReader(fh)}


def condition_masks(videos: list[VideoFeatures], conditions: dict) -> dict[str, np.ndarray]:
    """Frames grouped by what makes them hard: a blur burst, an occluder, a weak (onset or
    offset) expression; "clean" is none of these."""
    keys = [(v.video, int(f)) for v in videos for f in v.frames]
    missing = [k for k in keys if k not in conditions]
    if missing:
        raise KeyError(f"conditions file has no entry for {len(missing)} frames, e.g. {missing[0]}")
    cond = np.array([conditions[k][0] for k in keys])
    intensity = np.array([conditions[k][1] for k in keys])
    weak = (intensity > 0) & (intensity < 0.5)
    return {"clean": (cond == "clean") & ~weak, "weak expression": (cond == "clean") & weak,
            "blur burst": cond == "blur", "occluded": cond == "occluded"}


def evaluate_seed(models: dict, videos: list[VideoFeatures], classes: list[str], stride: int, post: dict,
                  conditions: dict | None = None) -> dict:
    preds = predict_rows(models, videos, stride, post)
    truth = np.concatenate([v.labels for v in videos])
    scored = truth != MASKED
    masks = condition_masks(videos, conditions) if conditions else {}
    result = {}
    for name, per_video in preds.items():
        predicted = np.concatenate(per_video)
        metrics = abaw_metrics(truth[scored], predicted[scored], classes)
        metrics["switches_per_100_frames"] = switches_per_100(videos, per_video)
        # Accuracy, not F1, per condition: some groups hold too few frames of a class for F1.
        metrics["accuracy_by_condition"] = {
            group: {"n": int((mask & scored).sum()),
                    "accuracy": float((predicted[mask & scored] == truth[mask & scored]).mean())
                    if (mask & scored).any() else None}
            for group, mask in masks.items()}
        result[name] = metrics
    result["truth"] = {"switches_per_100_frames": switches_per_100(videos, [v.labels for v in videos])}
    return {"rows": result, "predictions": preds}


def write_predictions(path: Path, videos: list[VideoFeatures], preds: dict, classes: list[str]) -> None:
    def name(k: int) -> str:
        return classes[k] if k != MASKED else ""

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video", "frame", "label", *[row for row, _, _ in ROWS]])
        for i, v in enumerate(videos):
            for j, frame in enumerate(v.frames):
                writer.writerow([v.video, int(frame), name(int(v.labels[j])),
                                 *[name(int(preds[row][i][j])) for row, _, _ in ROWS]])


def evaluate_temporal(models_dir: str | Path, features_dir: str | Path, out_dir: str | Path, seeds: list[int],
                      cfg: dict, synthetic: bool) -> dict:
    """`cfg` is params `temporal.evaluate`; its `conditions` (FaceSynth's audit file, or
    null) adds accuracy per frame condition to the table."""
    """Evaluate every seed's two encoders on the test videos; write metrics.json,
    table.md, predictions.csv (first seed) and plots into `out_dir`."""
    from fer_pipeline.common.atomic import write_json, write_text
    from fer_pipeline.reporting.format import DEMO_NOTE
    from fer_pipeline.temporal.feature_table import read_videos
    from fer_pipeline.reporting.temporal import build_table, plot_confusion_summed, plot_table, plot_timeline, to_markdown
    from fer_pipeline.temporal.train import VARIANTS, load_encoder

    videos = read_videos(features_dir, "test")
    conditions = read_conditions(cfg["conditions"]) if cfg.get("conditions") else None
    per_seed, first_preds, classes = {}, None, None
    for seed in seeds:
        models = {}
        for variant in VARIANTS:
            models[variant], bundle = load_encoder(Path(models_dir) / f"seed{seed}" / f"{variant}.pt")
            classes = bundle["classes"]
        result = evaluate_seed(models, videos, classes, cfg["stride"], cfg["postprocess"], conditions)
        per_seed[seed] = result["rows"]
        first_preds = first_preds or result["predictions"]
        log.info("seed %d: %s", seed, {k: round(v["macro_f1"], 4) for k, v in result["rows"].items() if "macro_f1" in v})
    table = build_table(per_seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", {"table": table, "per_seed": {str(s): r for s, r in per_seed.items()},
                                      "classes": classes, "postprocess": cfg["postprocess"], "stride": cfg["stride"],
                                      "data": "FaceSynth (synthetic demo)" if synthetic else "user datasets"})
    text = to_markdown(table)
    write_text(out / "table.md", (f"> {DEMO_NOTE}\n\n" if synthetic else "") + text)
    write_predictions(out / "predictions.csv", videos, first_preds, classes)
    plot_table(table, out / "table.png")
    final = ROWS[2][0]
    plot_confusion_summed(per_seed, final, classes, out / "confusion_matrix.png",
                          f"{final} (summed over seeds): confusion (rows = true)")
    plot_timeline(videos[0], {name: p[0] for name, p in first_preds.items()}, classes, out / "timeline.png")
    return table
