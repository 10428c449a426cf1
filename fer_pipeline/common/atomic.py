"""Atomic writes: a temp file (or folder) beside the target, then a rename, so a crash
never leaves a half-written output that looks complete."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator


def _tmp_name(path: Path) -> Path:
    # Unique per process: two jobs refreshing the same cache file must not share a temp file.
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj, **dump_kwargs) -> None:
    write_text(path, json.dumps(obj, indent=2, **dump_kwargs) + "\n")


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a fully written temp folder into place, so a half-written output never
    sits at the final path."""
    if final.exists():
        old = final.with_name(final.name + f".old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def building_dir(final: str | Path) -> Iterator[Path]:
    """A fresh temp folder beside `final`, swapped into place when the block ends
    without error and removed when it fails."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        replace_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
