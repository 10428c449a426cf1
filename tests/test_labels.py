import pytest

from fer_pipeline.common import labels
from fer_pipeline.common.labels import CANONICAL, ClassSet, UnknownLabelError, from_canonical, to_canonical


def test_rafdb_basic_codes():
    expected = {1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness", 6: "anger", 7: "neutral"}
    assert {c: to_canonical("rafdb", c) for c in range(1, 8)} == expected


def test_affectnet_codes_and_non_expressions():
    expected = ["neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt"]
    assert [to_canonical("affectnet", c) for c in range(8)] == expected
    for code, reason in ((8, "none"), (9, "uncertain"), (10, "no_face")):
        assert to_canonical("affectnet", code) is None
        assert labels.NOT_EXPRESSION[("affectnet", code)] == reason


def test_affwild2_expr_codes():
    expected = ["neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise", "other"]
    assert [to_canonical("affwild2", c) for c in range(8)] == expected
    assert to_canonical("affwild2", -1) is None
    assert labels.NOT_EXPRESSION[("affwild2", -1)] == "invalid_frame"


@pytest.mark.parametrize("dataset,bad", [("rafdb", 0), ("rafdb", 8), ("affectnet", 11), ("affwild2", 8)])
def test_unknown_codes_raise_naming_the_code(dataset, bad):
    with pytest.raises(UnknownLabelError, match=str(bad)):
        to_canonical(dataset, bad)


@pytest.mark.parametrize("dataset", ["rafdb", "affectnet", "affwild2"])
def test_maps_are_invertible_and_canonical(dataset):
    for code, name in labels.NATIVE_CODES[dataset].items():
        if name is not None:
            assert name in CANONICAL
            assert from_canonical(dataset, name) == code


def test_class_sets():
    basic7 = ClassSet.named("basic7")
    assert basic7.classes == ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger")
    assert ClassSet.named("basic8_contempt").classes[-1] == "contempt"
    assert ClassSet.named("abaw8").classes[-1] == "other" and len(ClassSet.named("abaw8")) == 8
    assert basic7.index("contempt") is None and basic7.index(None) is None
    assert basic7.index("anger") == 6
    with pytest.raises(KeyError, match="unknown class set"):
        ClassSet.named("basic6")
