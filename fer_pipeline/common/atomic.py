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


def _tmp_name(path: Path, hidden: bool = True, outside_parent: bool = False) -> Path:
    # Unique per process: two jobs refreshing the same cache file must not share a temp file.
    folder, name = (path.parent.parent, _flat_name(path)) if outside_parent else (path.parent, path.name)
    return folder / f"{'.' if hidden else ''}{name}.tmp-{os.getpid()}"


def _flat_name(path: Path) -> str:
    """`<parent>-<name>`: the temp name of an output written from one level up."""
    return f"{path.parent.name}-{path.name}"


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
    sits at the final path. The output it replaces waits beside the temp folder
    while the swap runs."""
    if final.exists():
        old_name = tmp.name.replace(".tmp-", ".old-")
        # A temp folder named by _tmp_name waits as its .old- twin; a part of a scratch folder
        # (FaceSynth's) has no such name: the old output then waits beside itself.
        old = tmp.with_name(old_name) if old_name != tmp.name else final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def scratch_dir(beside: str | Path, outside_parent: bool = False) -> Iterator[Path]:
    """A fresh, empty temp folder beside `beside` (so renames out of it stay on one
    filesystem), removed when the block ends, whatever is left in it.
    `outside_parent`: one level up instead, as `<grandparent>/.<parent>-<name>.tmp-<pid>`,
    for an output whose parent folder is itself another job's declared input
    (a prepare partition inside gather's `_parts/<dataset>`): a killed job's temp
    folder then never sits inside that input."""
    beside = Path(beside)
    beside.parent.mkdir(parents=True, exist_ok=True)
    if outside_parent and os.stat(beside.parent).st_dev != os.stat(beside.parent.parent).st_dev:
        outside_parent = False  # the parent is a mount point: a rename from above would cross devices
    tmp = _tmp_name(beside, outside_parent=outside_parent)
    if tmp.exists():  # left by a killed run of a process with the same id
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def building_dir(final: str | Path, outside_parent: bool = False) -> Iterator[Path]:
    """A fresh temp folder beside `final` (one level up with `outside_parent`: see
    scratch_dir), swapped into place when the block ends without error and removed
    when it fails."""
    with scratch_dir(final, outside_parent) as tmp:
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
    # Beside it, inside it, and one level up under its `outside_parent` temp name only.
    for folder, only in ((final.parent, None), (final, None), (final.parent.parent, _flat_name(final))):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            match = _TEMP.match(entry.name)
            if match is None or (only is not None and match["name"] != only) or alive(int(match["pid"])):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
