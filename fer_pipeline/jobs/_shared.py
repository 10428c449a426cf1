"""Small helpers several stage modules share."""

from __future__ import annotations

import json
from pathlib import Path


def check_dataset(params: dict, command: str, name: str) -> None:
    if name not in params["datasets"]:
        raise SystemExit(f"fer {command}: dataset {name!r} is not in params.yaml `datasets` "
                         f"({', '.join(params['datasets'])})")


def read_manifest(folder: str | Path, made_by: str) -> dict:
    """A prepared dataset's or feature table's manifest, or an error saying which command makes it."""
    path = Path(folder) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run {made_by} first (or `snakemake`)")
    return json.loads(path.read_text(encoding="utf-8"))
