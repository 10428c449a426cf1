"""The manifest ledger that prepare, gather and mining count with, and the penultimate-feature tap."""

from __future__ import annotations

import pytest
import torch

from fer_pipeline.data.prep.gather import GatherError
from fer_pipeline.data.prep.manifest import Ledger, read_manifest, write_manifest
from fer_pipeline.models.factory import build_model
from fer_pipeline.models.features import Penultimate


def test_ledger_counts_reconcile_and_sort():
    ledger = Ledger()
    ledger.inputs = 6
    for split, label in (("train", "sadness"), ("test", "neutral"), ("train", "anger"), ("train", "sadness")):
        ledger.keep(split, label)
    ledger.reject("no_face")
    ledger.reject("corrupt_image")
    counts = ledger.counts("demo")
    assert list(counts) == ["inputs", "kept", "rejected", "kept_per_split", "kept_per_split_class",
                            "rejected_per_reason"]
    assert (counts["inputs"], counts["kept"], counts["rejected"]) == (6, 4, 2)
    assert counts["kept_per_split"] == {"test": 1, "train": 3}
    assert list(counts["kept_per_split_class"]["train"].items()) == [("anger", 1), ("sadness", 2)]
    assert list(counts["rejected_per_reason"]) == ["corrupt_image", "no_face"]


def test_ledger_keeps_listed_zero_counts_as_mining_writes_them():
    ledger = Ledger()
    ledger.inputs = 3
    ledger.keep_counts("train", {})  # nothing mined: the split is still listed per class
    ledger.reject("below_margin", 3)
    ledger.reject("other", 0)
    counts = ledger.counts("mined")
    assert counts["kept_per_split"] == {} and counts["kept_per_split_class"] == {"train": {}}
    assert counts["rejected_per_reason"] == {"below_margin": 3, "other": 0}


def test_ledger_mismatch_names_the_dataset_and_whose_fault():
    ledger = Ledger()
    ledger.inputs = 3
    ledger.keep("train", "fear")
    with pytest.raises(AssertionError, match="demo: 3 inputs but 1 kept \\+ 0 rejected"):
        ledger.counts("demo")
    with pytest.raises(GatherError, match="demo"):
        ledger.counts("demo", GatherError)


def test_ledger_sums_partitions():
    parts = []
    for n in (2, 3):
        part = Ledger()
        part.inputs = n + 1
        for _ in range(n):
            part.keep("train", "fear")
        part.reject("no_face")
        parts.append(part.counts("part"))
    total = Ledger()
    for counts in parts:
        total.add(counts)
    assert total.counts("all") == {"inputs": 7, "kept": 5, "rejected": 2, "kept_per_split": {"train": 5},
                                   "kept_per_split_class": {"train": {"fear": 5}},
                                   "rejected_per_reason": {"no_face": 2}}


def test_manifest_round_trip_and_missing_file(tmp_path):
    write_manifest(tmp_path, {"content_digest": "abc"})
    assert read_manifest(tmp_path) == {"content_digest": "abc"}
    with pytest.raises(FileNotFoundError, match="nope/manifest.json"):
        read_manifest(tmp_path / "nope")


@pytest.mark.parametrize("arch", ["resnet18", "small_cnn"])
def test_penultimate_features_are_the_input_of_fc_bit_for_bit(arch):
    torch.manual_seed(0)
    model = build_model(arch, 7).eval()
    x = torch.randn(3, 3, 40, 40)
    with torch.no_grad():
        tapped = Penultimate(model).eval()(x)
        head, model.fc = model.fc, torch.nn.Identity()
        swapped = model(x)
        model.fc = head
        assert torch.equal(tapped, swapped)
        assert torch.equal(model.fc(tapped), model(x)), "the model itself is left whole"
