"""`fer evaluate`: the trained model on the test split -> metrics.json, plots, predictions."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from fer_pipeline.common.atomic import atomic_path, write_json
from fer_pipeline.eval.metrics import classification_metrics
from fer_pipeline.eval.plots import plot_confusion, plot_per_class
from fer_pipeline.common.labels import ClassSet
from fer_pipeline.data.datasets import FaceShardDataset
from fer_pipeline.train.device import autocast, pick_device
from fer_pipeline.models.bundle import load_bundle

log = logging.getLogger(__name__)


@torch.no_grad()
def predict(model: torch.nn.Module, dataset, batch_size: int, device: torch.device) -> torch.Tensor:
    model.eval().to(device)
    preds = []
    for images, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        with autocast(device, True):
            preds.append(model(images.to(device)).argmax(1).cpu())
    return torch.cat(preds)


def evaluate(model_dir: str | Path, dataset_dir: str | Path, out_dir: str | Path, batch_size: int,
             device: str = "auto", split: str = "test", title: str = "", bundle_name: str = "model.pt") -> dict:
    model, bundle = load_bundle(model_dir, bundle_name)
    class_set = ClassSet(bundle["class_set"], tuple(bundle["classes"]))
    dataset = FaceShardDataset(dataset_dir, split, class_set, bundle["input_size"], augment=None)
    dev = pick_device(device)
    preds = predict(model, dataset, batch_size, dev)
    metrics = classification_metrics(dataset.targets.numpy(), preds.numpy(), list(class_set.classes))
    metrics.update({"split": split, "dataset": str(dataset_dir), "classes": list(class_set.classes)})

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    with atomic_path(out / "predictions.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["source", "actual", "predicted"])
        for src, t, p in zip(dataset.sources, dataset.targets.tolist(), preds.tolist()):
            writer.writerow([src, class_set.classes[t], class_set.classes[p]])
    label = title or Path(model_dir).name
    plot_confusion(metrics["confusion_matrix"], list(class_set.classes), out / "confusion_matrix.png",
                   f"{label}: confusion (rows = true)")
    plot_per_class(metrics["per_class_accuracy"], metrics["mean_class_accuracy"], out / "per_class_accuracy.png",
                   f"{label}: per-class accuracy")
    log.info("%s: overall %.3f, mean %.3f, std %.3f, macro-F1 %.3f", label, metrics["overall_accuracy"],
             metrics["mean_class_accuracy"], metrics["std_class_accuracy"], metrics["macro_f1"])
    return metrics
