"""Join paths read from dataset lists to their dataset root, so they cannot escape it.

The rule is lexical: an entry of a label file may not be absolute and may not climb
out of the root with `..` (`train_x/../../etc/passwd.jpg` is refused, `a/../b.jpg`
is `b.jpg`). Symlinks the user placed inside the root (the usual way to point at
licensed data on another disk) are followed; with `follow_symlinks=False`
(params `datasets.<name>.follow_symlinks: false`) an entry that passes through a
symlink is refused instead (SymlinkRefusedError).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path


class PathOutsideRootError(ValueError):
    """A list or CSV entry points outside its dataset root (e.g. '../../etc/passwd')."""


class SymlinkRefusedError(ValueError):
    """An entry passes through a symlink and the params say symlinks are not followed."""


@lru_cache(maxsize=64)
def _absolute_root(root: str, cwd: str) -> str:
    # Keyed by the working directory too: a relative root means another folder after a chdir.
    return os.path.normpath(os.path.join(cwd, root))


@lru_cache(maxsize=4096)
def _is_link(path: str) -> bool:
    # Entries share few folders (an AffectNet subdirectory, a WebFace identity): each
    # folder is looked at once.
    return os.path.islink(path)


def absolute_root(root: str | Path) -> str:
    root = os.fspath(root)
    return _absolute_root(root, "" if os.path.isabs(root) else os.getcwd())


def check_relative(relative: str, root: str) -> str:
    """`relative` normalised, or PathOutsideRootError when it is absolute or climbs out."""
    if os.path.isabs(relative):
        raise PathOutsideRootError(f"{relative!r} is an absolute path, not a path inside the dataset root {root}")
    norm = os.path.normpath(relative)
    if norm == os.pardir or norm.startswith(os.pardir + os.sep):
        raise PathOutsideRootError(f"{relative!r} leaves the dataset root {root} (a '..' path)")
    return norm


def first_symlink(root: str, norm: str) -> str | None:
    """The first path component below `root` on the way to `root/norm` that is a symlink."""
    if norm == os.curdir:
        return None
    path = root
    for part in norm.split(os.sep):
        path = os.path.join(path, part)
        if _is_link(path):
            return path
    return None


def safe_join(root: str | Path, relative: str, follow_symlinks: bool = True) -> Path:
    """`root/relative` (absolute). PathOutsideRootError when `relative` is absolute or
    climbs out of the root; SymlinkRefusedError when symlinks are not to be followed
    and one lies on the way. Nothing is resolved, so a symlinked folder inside the
    root keeps its path inside the root."""
    return Path(safe_join_str(root, relative, follow_symlinks))


def safe_join_str(root: str | Path, relative: str, follow_symlinks: bool = True) -> str:
    """safe_join as a string: readers call it once per record, and building a Path
    object was a tenth of prepare's main process (bench/ingest.py)."""
    root_abs = absolute_root(root)
    norm = check_relative(relative, root_abs)
    if not follow_symlinks:
        link = first_symlink(root_abs, norm)
        if link is not None:
            raise SymlinkRefusedError(f"{link} is a symlink (-> {os.readlink(link)}) and symlinks are not followed "
                                      f"(datasets.<name>.follow_symlinks is false)")
    return root_abs if norm == os.curdir else os.path.join(root_abs, norm)
