"""Resolve paths read from dataset lists so they cannot escape the dataset root."""

from __future__ import annotations

from pathlib import Path


class PathOutsideRootError(ValueError):
    """A list or CSV entry points outside its dataset root (e.g. '../../etc/passwd')."""


def safe_join(root: str | Path, relative: str) -> Path:
    root = Path(root).resolve()
    candidate = (root / relative).resolve()
    if Path(relative).is_absolute() or (candidate != root and root not in candidate.parents):
        raise PathOutsideRootError(f"{relative!r} resolves outside the dataset root {root}")
    return candidate
