"""WebFace (WebFace260M / 42M / 4M): one folder per identity of aligned 112x112 JPEGs,
unlabeled for FER; the folder name is the identity. Two layouts:

- `identities`: `<root>/<identity>/<n>.jpg` (one folder per identity at the top);
- `shards`: `<root>/<shard>/<identity>/<n>.jpg` (as released: identities spread over
  top-level shard folders, e.g. `0/0_0_0000000/0_0.jpg`).

The layout is read from the first non-empty top-level folder (one holding images is an
identity, one holding folders a shard) and every folder is checked against it: a folder
holding both, or a root mixing the two, is an error naming it (set
`datasets.<name>.layout` to say which). Entries are listed, not read from a list file,
so a path cannot escape the root; a symlinked file or folder inside it is followed
unless `datasets.<name>.follow_symlinks` is false (then it is rejected,
`symlink_not_followed`). Hidden files (.DS_Store) and OS thumbnails (Thumbs.db) are
ignored by rule and counted; any other non-JPEG file is rejected (`not_an_image`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from fer_pipeline.data.io.layout import (PARAMS_IGNORE, LayoutError, ReadOptions, Report, entries, ignore_rule,
                                         is_dir, params_ignored, resolve_root)
from fer_pipeline.data.io.partition import WHOLE, Partition
from fer_pipeline.data.io.paths import PathOutsideRootError, SymlinkRefusedError, safe_join
from fer_pipeline.data.io.records import RawRecord, Reject, file_loader

IMAGE_SUFFIXES = (".jpg", ".jpeg")
LAYOUTS = ("identities", "shards")


def _skip(entry: os.DirEntry, relative: str, options: ReadOptions, report: Report) -> bool:
    """True (and counted) when the entry is ignored by rule or by params."""
    rule = ignore_rule(entry.name) or (PARAMS_IGNORE if params_ignored(relative, options) else None)
    if rule is not None and rule not in ("documentation", "archive"):
        report.ignore(rule, relative)
        return True
    return False


def _kind(folder: Path, relative: str, options: ReadOptions) -> str | None:
    """'identity' (holds files), 'shard' (holds folders), None (empty); LayoutError when both."""
    files = folders = False
    for entry in entries(folder):
        rel = f"{relative}/{entry.name}"
        if ignore_rule(entry.name) in ("hidden", "os_metadata") or params_ignored(rel, options):
            continue
        if is_dir(entry):
            folders = True
        else:
            files = True
    if files and folders:
        raise LayoutError(f"WebFace: {folder} holds both files and folders: neither an identity folder "
                          f"(<identity>/<n>.jpg) nor a shard (<shard>/<identity>/); see docs/datasets.md")
    return "identity" if files else "shard" if folders else None


def _identity(root: Path, relative: str, identity: str, options: ReadOptions,
              report: Report) -> Iterator[RawRecord | Reject]:
    try:
        folder = safe_join(root, relative, options.follow_symlinks)
    except SymlinkRefusedError as exc:
        # Not listed: listing it would follow the link. The folder is one rejected input.
        yield Reject(relative, "unlabeled", "symlink_not_followed", str(exc))
        return
    for entry in entries(folder):
        source = f"{relative}/{entry.name}"
        if _skip(entry, source, options, report):
            continue
        if is_dir(entry):
            raise LayoutError(f"WebFace: folder {entry.path} inside identity folder {folder}: identities hold "
                              f"images only (<identity>/<n>.jpg); see docs/datasets.md")
        if not entry.name.lower().endswith(IMAGE_SUFFIXES):
            yield Reject(source, "unlabeled", "not_an_image", f"{entry.name!r} is not a .jpg file")
            continue
        try:
            path = safe_join(root, source, options.follow_symlinks)
        except (PathOutsideRootError, SymlinkRefusedError) as exc:
            reason = "path_outside_root" if isinstance(exc, PathOutsideRootError) else "symlink_not_followed"
            yield Reject(source, "unlabeled", reason, str(exc))
            continue
        yield RawRecord(source=source, split="unlabeled", label=None, identity=identity, load=file_loader(path))


def read_webface_folders(root: str | Path, part: Partition = WHOLE, options: ReadOptions | None = None,
                         report: Report | None = None) -> Iterator[RawRecord | Reject]:
    options, report = options or ReadOptions(), report or Report(part)
    root = resolve_root(root)
    if not root.is_dir():
        raise FileNotFoundError(f"WebFace folder not found: {root} (expected <root>/<identity>/<image>.jpg "
                                f"or <root>/<shard>/<identity>/<image>.jpg)")
    if options.layout is not None and options.layout not in LAYOUTS:
        raise LayoutError(f"WebFace: datasets.<name>.layout is {options.layout!r}; one of {LAYOUTS}")
    # Sorted listings: the same folder always gives the same record order (and shard digest).
    top, loose = [], []
    for entry in entries(root):
        if _skip(entry, entry.name, options, report):
            continue
        (top if is_dir(entry) else loose).append(entry)
    layout, kinds = _decide_layout(top, options)
    report.layout["layout"] = layout or "identities"
    for entry in loose:  # files at the top: an image has no identity folder
        if ignore_rule(entry.name) is not None:
            report.ignore(ignore_rule(entry.name), entry.name)
        elif part.owns(entry.name):
            yield Reject(entry.name, "unlabeled", "no_identity_folder",
                         f"{entry.name!r} lies at the root; images belong in <identity>/ folders")
    for entry in top:
        if layout == "shards":
            yield from _shard_records(root, entry, part, options, report, kinds)
        elif part.owns(entry.name):  # before listing it: a job lists only its own folders
            if options.layout is not None or entry.name in kinds:
                _check_kind(entry, entry.name, "identity", kinds, "identities", options)
            report.listed += 1
            yield from _identity(root, entry.name, entry.name, options, report)


def _decide_layout(top: list, options: ReadOptions) -> tuple[str | None, dict[str, str | None]]:
    """The layout params name, or the one the first recognisable top folder shows."""
    kinds: dict[str, str | None] = {}
    if options.layout is not None:
        return options.layout, kinds
    for entry in top:
        kind = kinds[entry.name] = _kind(Path(entry.path), entry.name, options)
        if kind is not None:
            return ("identities" if kind == "identity" else "shards"), kinds
    return None, kinds


def _check_kind(entry, relative: str, want: str, kinds: dict, layout: str, options: ReadOptions) -> None:
    """A LayoutError when a folder looks like the other layout's (a mixed root)."""
    kind = kinds[relative] if relative in kinds else _kind(Path(entry.path), relative, options)
    if kind is not None and kind != want:
        raise LayoutError(f"WebFace: {entry.path} looks like {'an identity' if kind == 'identity' else 'a shard'} "
                          f"folder but the root is laid out as {layout} (decided by the first folder, or "
                          f"datasets.<name>.layout); see docs/datasets.md")


def _shard_records(root: Path, entry, part: Partition, options: ReadOptions, report: Report,
                   kinds: dict) -> Iterator[RawRecord | Reject]:
    """The identities of one `<shard>/` folder."""
    _check_kind(entry, entry.name, "shard", kinds, "shards", options)
    try:
        shard = safe_join(root, entry.name, options.follow_symlinks)
    except SymlinkRefusedError as exc:
        yield Reject(entry.name, "unlabeled", "symlink_not_followed", str(exc))
        return
    for sub in entries(shard):
        relative = f"{entry.name}/{sub.name}"
        if _skip(sub, relative, options, report):
            continue
        if ignore_rule(sub.name) is not None:  # documentation, archives
            report.ignore(ignore_rule(sub.name), relative)
            continue
        if not is_dir(sub):
            if part.owns(relative):
                yield Reject(relative, "unlabeled", "no_identity_folder",
                             f"{relative!r} lies in a shard folder; images belong in <shard>/<identity>/")
            continue
        report.listed += 1
        if part.owns(sub.name):  # by identity, as in the flat layout
            yield from _identity(root, relative, sub.name, options, report)
