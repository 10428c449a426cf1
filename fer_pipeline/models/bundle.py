"""The inference bundle: a model's weights plus what evaluation needs to rebuild it
(architecture, class set, input size, normalisation, and whether it is a deviation
network: train.supervised.deviation)."""

from __future__ import annotations

from pathlib import Path

import torch

from fer_pipeline.common.labels import ClassSet
from fer_pipeline.data.datasets import MEAN, STD
from fer_pipeline.methods.deviation import DeviationNet
from fer_pipeline.models.factory import build_model
from fer_pipeline.train import checkpoint


def save_bundle(model: torch.nn.Module, arch: str, class_set: ClassSet, input_size: int, path: Path) -> None:
    """The inference bundle: weights plus what evaluation needs to rebuild the model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Only a deviation network carries the flag: every other bundle keeps its bytes.
    extra = {"deviation": True} if isinstance(model, DeviationNet) else {}
    checkpoint.save(path, model={k: v.cpu() for k, v in model.state_dict().items()}, arch=arch,
                    class_set=class_set.name, classes=list(class_set.classes), input_size=input_size,
                    mean=list(MEAN), std=list(STD), **extra)


def load_bundle(model_dir: str | Path, name: str = "model.pt") -> tuple[torch.nn.Module, dict]:
    bundle = checkpoint.load(Path(model_dir) / name)
    if bundle is None:
        raise FileNotFoundError(f"{model_dir}/{name} not found: run the stage that trains it first")
    model = build_model(bundle["arch"], len(bundle["classes"]))
    if bundle.get("deviation"):
        model = DeviationNet(model, len(bundle["classes"]))
    model.load_state_dict(bundle["model"])
    return model, bundle
