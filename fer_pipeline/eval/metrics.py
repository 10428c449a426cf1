"""FER metrics: overall accuracy, mean and std of per-class accuracy (Face2Exp's bias
measure), macro-F1 (ABAW), confusion matrix; computed with scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score


def classification_metrics(y_true, y_pred, classes: list[str]) -> dict:
    labels = list(range(len(classes)))
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    # Per-class accuracy is the recall of each class; a class absent from the test
    # set has no accuracy and is left out of the mean/std (reported as null).
    present = np.isin(labels, y_true)
    per_class = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    per_class_present = per_class[present]
    return {
        "n": int(len(y_true)),
        "overall_accuracy": float(accuracy_score(y_true, y_pred)),
        "mean_class_accuracy": float(per_class_present.mean()),
        # Population std over classes, in the same units as the accuracies (Face2Exp Table 2).
        "std_class_accuracy": float(per_class_present.std()),
        "macro_f1": float(f1_score(y_true, y_pred, labels=[l for l, p in zip(labels, present) if p],
                                   average="macro", zero_division=0)),
        "per_class_accuracy": {c: (float(a) if p else None) for c, a, p in zip(classes, per_class, present)},
        "per_class_support": {c: int((y_true == i).sum()) for i, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
