"""Resolve paths read from dataset lists so they cannot escape the dataset root."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path


class PathOutsideRootError(ValueError):
    """A list or CSV entry points outside its dataset root (e.g. '../../etc/passwd')."""


@lru_cache(maxsize=64)
def _resolved_root(root: str, cwd: str) -> str:
    # Keyed by the working directory too: a relative root means another folder after a chdir.
    return os.path.realpath(os.path.join(cwd, root))


@lru_cache(maxsize=4096)
def _resolved_dir(path: str) -> str:
    # Entries of a list share few folders (an AffectNet subdirectory, a WebFace
    # identity): resolve each folder once, then only the file name per entry.
    return os.path.realpath(path)


def _resolve(path: str) -> str:
    """os.path.realpath(path), with the folder part cached."""
    head, name = os.path.split(path)
    if name in ("", ".", ".."):
        return os.path.realpath(path)
    candidate = os.path.join(_resolved_dir(head), name)
    try:
        is_link = os.path.islink(candidate)
    except OSError:
        is_link = False
    return os.path.realpath(candidate) if is_link else candidate


def safe_join(root: str | Path, relative: str) -> Path:
    """`root/relative` with every symlink and `..` resolved; PathOutsideRootError when
    that lands outside the (resolved) root. The root is resolved once per process, not
    once per entry: readers call this for every line of a list."""
    root = os.fspath(root)
    resolved_root = _resolved_root(root, "" if os.path.isabs(root) else os.getcwd())
    if os.path.isabs(relative):
        raise PathOutsideRootError(f"{relative!r} resolves outside the dataset root {resolved_root}")
    candidate = _resolve(os.path.join(resolved_root, relative))
    inside = resolved_root if resolved_root.endswith(os.sep) else resolved_root + os.sep  # root may be "/"
    if candidate != resolved_root and not candidate.startswith(inside):
        raise PathOutsideRootError(f"{relative!r} resolves outside the dataset root {resolved_root}")
    return Path(candidate)
