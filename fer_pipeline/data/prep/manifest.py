"""A prepared dataset's manifest.json: the ledger that proves every input record ended
up kept (counted per split and class) or rejected (counted per reason), and reading and
writing the file. prepare, gather and mining all count through `Ledger`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from fer_pipeline.common.atomic import write_json

MANIFEST = "manifest.json"


class Ledger:
    """Counts of one dataset: `inputs` records in, each kept or rejected."""

    def __init__(self) -> None:
        self.inputs = 0
        self.kept: dict[str, Counter] = {}  # split -> class -> rows
        self.rejected: Counter = Counter()  # reason -> rows

    def keep(self, split: str, label: str, n: int = 1) -> None:
        self.kept.setdefault(split, Counter())[label] += n

    def keep_counts(self, split: str, per_class: dict[str, int]) -> None:
        """Rows per class kept in `split` (the split is listed even when `per_class` is empty)."""
        self.kept.setdefault(split, Counter()).update(per_class)

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] += n  # n = 0 still lists the reason

    def add(self, counts: dict) -> None:
        """Another ledger's manifest counts (a partition of the same dataset)."""
        self.inputs += counts["inputs"]
        for split, per_class in counts["kept_per_split_class"].items():
            self.keep_counts(split, per_class)
        self.rejected.update(counts["rejected_per_reason"])

    def counts(self, what: str, error: type[Exception] = AssertionError) -> dict:
        """The manifest's count fields, checked to reconcile (`inputs == kept + rejected`);
        `error` says whose fault a mismatch is (a bug by default)."""
        per_split = {split: total for split, c in sorted(self.kept.items()) if (total := sum(c.values()))}
        kept, rejected = sum(per_split.values()), sum(self.rejected.values())
        if kept + rejected != self.inputs:
            raise error(f"{what}: {self.inputs} inputs but {kept} kept + {rejected} rejected")
        return {
            "inputs": self.inputs,
            "kept": kept,
            "rejected": rejected,
            "kept_per_split": per_split,
            "kept_per_split_class": {s: dict(sorted(c.items())) for s, c in sorted(self.kept.items())},
            "rejected_per_reason": dict(sorted(self.rejected.items())),
        }


def read_manifest(dataset_dir: str | Path) -> dict:
    path = Path(dataset_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the dataset was not prepared (or not completely)")
    return json.loads(path.read_text(encoding="utf-8"))


def write_manifest(dataset_dir: str | Path, manifest: dict) -> None:
    write_json(Path(dataset_dir) / MANIFEST, manifest)
