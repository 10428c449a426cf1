"""Where a dataset's files are, in the layouts its releases use, and an account of
every entry under the root (docs/datasets.md lists the layouts and the rules).

Readers find their label files and image folders here: release names matched without
regard to case where releases differ, one wrapper folder descended into (an archive
unpacked into its own folder), a params key (`datasets.<name>.annotations_dir`, ...)
where the choice is ambiguous. Every entry a reader meets is then an input (kept or
rejected with a reason), ignored under one of the documented rules below (counted
in the manifest's `ignored_per_rule`), or an error naming it.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fer_pipeline.common.params import DATASET_READ_KEYS
from fer_pipeline.data.io.partition import WHOLE, Partition

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
LABEL_SUFFIXES = (".txt", ".csv", ".tsv", ".idx", ".lst", ".json")
# Files and folders an operating system or file browser leaves behind (lower case).
OS_METADATA = {"thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r", "__macosx", "@eadir", "$recycle.bin",
               "system volume information", "lost+found"}
DOC_SUFFIXES = (".md", ".pdf", ".html", ".htm", ".rtf", ".docx")
DOC_PREFIXES = ("readme", "license", "licence", "copying", "terms", "agreement", "eula")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".7z", ".rar")

# Ignore rules (keys of the manifest's `ignored_per_rule`).
HIDDEN = "hidden"                       # a name starting with '.': .DS_Store, ._x.jpg, .git, ...
OS_FILE = "os_metadata"                 # Thumbs.db, desktop.ini, __MACOSX/, @eaDir/ ...
DOCUMENTATION = "documentation"         # README*, LICENSE*, *.md, *.pdf ...
ARCHIVE = "archive"                     # the release's downloads next to what they unpacked
PARAMS_IGNORE = "params_ignore"         # listed under datasets.<name>.ignore
OTHER_RELEASE_PART = "other_release_part"  # a folder of the release this format does not read
NOT_DATA = "not_data"                   # a file that is neither an image nor a label file


class LayoutError(ValueError):
    """The dataset root holds something the reader does not understand, or two layouts."""


@dataclass(frozen=True)
class ReadOptions:
    """The reader's part of `datasets.<name>` in params.yaml (all optional)."""

    follow_symlinks: bool = True
    allow_empty: bool = False
    max_missing_fraction: float = 0.5
    ignore: tuple[str, ...] = ()
    layout: str | None = None           # webface_folders: identities | shards
    annotations_dir: str | None = None  # affwild2_expr: the folder holding Train_Set/, Validation_Set/
    frames_dir: str | None = None       # affwild2_expr: the folder of <video>/<NNNNN>.jpg
    labels_dir: str | None = None       # affectnet_manual: the folder holding training.csv / validation.csv
    images_dir: str | None = None       # affectnet_manual: Manually_Annotated_Images
    splits: tuple[str, ...] | None = None  # affectnet_manual, affwild2_expr: the splits that must be there

    @classmethod
    def from_params(cls, ds: dict) -> "ReadOptions":
        values = {k: ds[k] for k in READ_KEYS if k in ds}
        for key in ("ignore", "splits"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


# The keys of datasets.<name> that ReadOptions takes, and the formats each applies to (None: all).
READ_KEYS = DATASET_READ_KEYS


@dataclass
class Report:
    """What a reader found besides its records: the layout it chose, the label files it
    read and how many entries they list (the whole dataset, not one partition), and the
    entries it ignored, by rule (counted once: each by the partition that owns it)."""

    part: Partition = WHOLE
    layout: dict = field(default_factory=dict)
    label_files: list[str] = field(default_factory=list)
    listed: int = 0
    ignored: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    def ignore(self, rule: str, relative: str) -> None:
        if self.part.owns(relative):
            self.ignored[rule] += 1
            self.examples.setdefault(rule, relative)


def resolve_root(root: str | Path, base_dir: str | Path | None = None) -> Path:
    """A dataset root as an absolute path: a relative root is taken from `base_dir`
    (the params file's folder), or the working directory when none is given."""
    path = Path(os.path.expanduser(os.fspath(root)))
    if not path.is_absolute():
        path = Path(base_dir if base_dir is not None else os.getcwd()) / path
    return Path(os.path.normpath(os.path.abspath(path)))


def ignore_rule(name: str) -> str | None:
    """The documented rule under which an entry named `name` is skipped, or None."""
    low = name.lower()
    if low in OS_METADATA:
        return OS_FILE
    if name.startswith("."):
        return HIDDEN
    if low.startswith(DOC_PREFIXES) or low.endswith(DOC_SUFFIXES):
        return DOCUMENTATION
    if low.endswith(ARCHIVE_SUFFIXES):
        return ARCHIVE
    return None


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def is_label_name(name: str) -> bool:
    return name.lower().endswith(LABEL_SUFFIXES)


def entries(folder: Path) -> list[os.DirEntry]:
    """A folder's entries sorted by name (the same folder always gives the same order)."""
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows a symlink: a symlinked folder is a folder
    except OSError:
        return False


def relative_to(path: Path, root: Path) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


def find_child(folder: Path, *names: str, kind: str = "any") -> Path | None:
    """The entry of `folder` named one of `names`, the exact spelling first, then
    without regard to case (releases differ: `Image` / `image`); None when absent.
    Two entries that differ only by case are a LayoutError."""
    if not folder.is_dir():
        return None
    listing = [e for e in entries(folder) if kind == "any" or (is_dir(e) if kind == "dir" else e.is_file())]
    for name in names:
        exact = [e for e in listing if e.name == name]
        if exact:
            return Path(exact[0].path)
    for name in names:
        folded = [e for e in listing if e.name.lower() == name.lower()]
        if len(folded) > 1:
            raise LayoutError(f"{folder}: both {' and '.join(repr(e.name) for e in folded)} are there; "
                              f"which one is {name!r}? Remove or rename one")
        if folded:
            return Path(folded[0].path)
    return None


def params_ignored(relative: str, options: ReadOptions) -> bool:
    relative = relative.strip("/")
    return any(relative == p.strip("/") or relative.startswith(p.strip("/") + "/") for p in options.ignore)


def check_entries(folder: Path, root: Path, known: set[str], options: ReadOptions, report: Report, what: str,
                  release_parts: set[str] = frozenset(), expected: str = "") -> None:
    """Account for every entry of `folder` the reader does not read itself: `known`
    names (lower case) are the reader's; `release_parts` (lower case) are folders of
    the release this format does not read; the ignore rules and `datasets.<name>.ignore`
    skip others; anything else that is a folder, an image or a label file is an error
    naming it, and any other file is `not_data`."""
    for entry in entries(folder):
        name, low = entry.name, entry.name.lower()
        relative = relative_to(Path(entry.path), root)
        if low in known:
            continue
        if params_ignored(relative, options):
            report.ignore(PARAMS_IGNORE, relative)
            continue
        rule = ignore_rule(name)
        if rule is not None:
            report.ignore(rule, relative)
            continue
        if low in release_parts:
            report.ignore(OTHER_RELEASE_PART, relative)
            continue
        if is_dir(entry) or is_image_name(name) or is_label_name(name):
            kind = "folder" if is_dir(entry) else "file"
            raise LayoutError(f"{what}: {kind} {entry.path} is not part of any layout this reader knows"
                              f"{' (' + expected + ')' if expected else ''}; list {relative!r} under "
                              f"datasets.<name>.ignore to skip it, or see docs/datasets.md")
        report.ignore(NOT_DATA, relative)


def unwrap(root: Path, has_marker, options: ReadOptions, report: Report, max_depth: int = 2) -> Path:
    """`root`, or the folder inside it that holds the dataset when `root` holds nothing
    but one wrapper folder (an archive unpacked into its own folder), up to `max_depth`
    levels down."""
    base = root
    for _ in range(max_depth):
        if has_marker(base) or not base.is_dir():
            return base
        folders, skipped = [], []
        for entry in entries(base):
            relative = relative_to(Path(entry.path), root)
            if params_ignored(relative, options):
                skipped.append((PARAMS_IGNORE, relative))
                continue
            if ignore_rule(entry.name):
                skipped.append((ignore_rule(entry.name), relative))
                continue
            if is_dir(entry):
                folders.append(entry)
            elif is_image_name(entry.name) or is_label_name(entry.name):
                return base  # data here: not a wrapper
        if len(folders) != 1:
            return base
        for rule, relative in skipped:
            report.ignore(rule, relative)
        base = Path(folders[0].path)
        report.layout["inside"] = relative_to(base, root)
    return base
