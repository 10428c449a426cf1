"""Cross-dataset evaluation (seed 001, Tables 4-7): a model trained on one labelled dataset
scored on another's test split, in the shared taxonomy (common/labels.py).

Prepared datasets all store canonical expression names, so the mapping is by name: the
scored classes are the evaluation class set's classes the model predicts; test rows of
any other class (AffectNet's contempt in a 7-class evaluation) are dropped, with the count
logged; the model's logits are reordered to the scored classes' order, and a class it
predicts outside them (its contempt) cannot be chosen.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from fer_pipeline.common.labels import ClassSet

log = logging.getLogger(__name__)


def scored_classes(model_classes: list[str] | tuple[str, ...], eval_set: ClassSet) -> ClassSet:
    """The evaluation set's classes the model predicts, in the evaluation set's order."""
    shared = tuple(c for c in eval_set.classes if c in model_classes)
    missing = [c for c in eval_set.classes if c not in model_classes]
    if not shared:
        raise ValueError(f"the model predicts none of class set {eval_set.name}'s classes {list(eval_set.classes)}")
    if missing:
        log.warning("the model does not predict %s of class set %s: scored on the other %d classes", missing,
                    eval_set.name, len(shared))
    return ClassSet(eval_set.name if not missing else f"{eval_set.name}_shared", shared)


def logit_columns(model_classes: list[str] | tuple[str, ...], scored: ClassSet) -> torch.Tensor:
    """Column k of the model's logits for scored class k."""
    return torch.tensor([list(model_classes).index(c) for c in scored.classes], dtype=torch.long)


class ScoredLogits(torch.nn.Module):
    """The model's logits of the scored classes only, in their order."""

    def __init__(self, model: torch.nn.Module, columns: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("columns", columns)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).index_select(1, self.columns)


def cross_evaluate(model_dir: str | Path, test_dir: str | Path, eval_set: ClassSet, batch_size: int,
                   device: str = "auto") -> dict:
    """The model of `model_dir` on `test_dir`'s test split: classification metrics over the
    scored classes, plus what was scored."""
    from fer_pipeline.data.datasets import FaceShardDataset
    from fer_pipeline.eval.evaluate import predict
    from fer_pipeline.eval.metrics import classification_metrics
    from fer_pipeline.models.bundle import load_bundle
    from fer_pipeline.train.device import pick_device

    model, bundle = load_bundle(model_dir)
    scored = scored_classes(bundle["classes"], eval_set)
    test = FaceShardDataset(test_dir, "test", scored, bundle["input_size"], augment=None)
    preds = predict(ScoredLogits(model, logit_columns(bundle["classes"], scored)), test, batch_size,
                    pick_device(device))
    metrics = classification_metrics(test.targets.numpy(), preds.numpy(), list(scored.classes))
    metrics.update({"classes": list(scored.classes), "model_classes": list(bundle["classes"]),
                    "test_dataset": str(test_dir)})
    return metrics
