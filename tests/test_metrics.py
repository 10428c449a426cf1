import numpy as np
import pytest

from fer_pipeline.eval.metrics import classification_metrics


def test_metrics_against_hand_computation():
    classes = ["a", "b", "c"]
    y_true = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 0, 2, 2, 0, 1]
    m = classification_metrics(y_true, y_pred, classes)
    per_class = [3 / 4, 1 / 2, 2 / 4]
    assert m["overall_accuracy"] == pytest.approx(6 / 10)
    assert m["per_class_accuracy"] == pytest.approx(dict(zip(classes, per_class)))
    assert m["mean_class_accuracy"] == pytest.approx(np.mean(per_class))
    assert m["std_class_accuracy"] == pytest.approx(np.std(per_class))
    # F1 per class: a: p=3/5 r=3/4; b: p=1/3 r=1/2; c: p=1 r=1/2
    f1 = [2 * p * r / (p + r) for p, r in ((3 / 5, 3 / 4), (1 / 3, 1 / 2), (1.0, 1 / 2))]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert m["confusion_matrix"] == [[3, 1, 0], [1, 1, 0], [1, 1, 2]]


def test_absent_class_is_excluded_from_mean_and_std():
    m = classification_metrics([0, 0, 1], [0, 1, 1], ["a", "b", "never"])
    assert m["per_class_accuracy"]["never"] is None
    assert m["mean_class_accuracy"] == pytest.approx(0.75)
    assert m["per_class_support"] == {"a": 2, "b": 1, "never": 0}
