"""Atomic writes: a temp file (or folder) beside the target, then a rename, so a crash
never leaves a half-written output that looks complete."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

from fer_pipeline.common.processes import alive


def _tmp_name(path: Path, hidden: bool = True) -> Path:
    # Unique per process: two jobs refreshing the same cache file must not share a temp file.
    return path.with_name(f"{'.' if hidden else ''}{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | Path, hidden: bool = True) -> Iterator[Path]:
    """A temp path beside `path` for writers that want a file name (torch.save, savefig,
    csv, Parquet); renamed onto `path` when the block ends without error, removed when
    it fails. `hidden=False` keeps `path`'s name as the temp name's prefix (see
    train/checkpoint.py)."""
    path = Path(path)
    tmp = _tmp_name(path, hidden)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


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
def scratch_dir(beside: str | Path) -> Iterator[Path]:
    """A fresh, empty temp folder beside `beside` (so renames out of it stay on one
    filesystem), removed when the block ends, whatever is left in it."""
    beside = Path(beside)
    beside.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(beside)
    if tmp.exists():  # left by a killed run of a process with the same id
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def building_dir(final: str | Path) -> Iterator[Path]:
    """A fresh temp folder beside `final`, swapped into place when the block ends
    without error and removed when it fails."""
    with scratch_dir(final) as tmp:
        yield tmp
        replace_dir(tmp, Path(final))


# Temp names this module makes: `<name>.tmp-<pid>` (hidden or not) and `<name>.old-<pid>`.
_TEMP = re.compile(r"^\.?(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$")


def is_temp_name(name: str) -> bool:
    """A name this module gives to a file or folder being written (never a final output)."""
    return _TEMP.match(name) is not None


def remove_dead_temps(final: str | Path) -> list[Path]:
    """Remove the temp files and folders beside `final` (and inside it, when it is a
    folder) left by processes that no longer run: a killed job's half-written output
    must not be mistaken for data (DVC and the fingerprints skip such names anyway)."""
    final = Path(final)
    removed = []
    for folder in (final.parent, final):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            match = _TEMP.match(entry.name)
            if match is None or alive(int(match["pid"])):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
