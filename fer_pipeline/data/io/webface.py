"""WebFace (WebFace260M / 42M / 4M): one folder per identity of aligned 112x112 JPEGs,
`<root>/<identity>/<n>.jpg`. Unlabeled for FER; the folder name is the identity.

Entries are listed, not read from a list file, so a path cannot escape the root;
a symlinked file or folder that points outside it is still rejected
(`path_outside_root`), and a non-JPEG file is set aside (`not_an_image`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from fer_pipeline.data.io.partition import WHOLE, Partition
from fer_pipeline.data.io.paths import PathOutsideRootError, safe_join
from fer_pipeline.data.io.records import RawRecord, Reject

IMAGE_SUFFIXES = (".jpg", ".jpeg")


def _reader(path: Path):
    return lambda: path.read_bytes()


def read_webface_folders(root: str | Path, part: Partition = WHOLE) -> Iterator[RawRecord | Reject]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"WebFace folder not found: {root} (expected <root>/<identity>/<image>.jpg)")
    # Sorted listings: the same folder always gives the same record order (and shard digest).
    for identity in sorted(e.name for e in os.scandir(root) if e.is_dir()):
        if not part.owns(identity):  # before listing it: a job lists only its own folders
            continue
        for name in sorted(e.name for e in os.scandir(root / identity) if e.is_file() or e.is_symlink()):
            source = f"{identity}/{name}"
            if not name.lower().endswith(IMAGE_SUFFIXES):
                yield Reject(source, "unlabeled", "not_an_image", f"{name!r} is not a .jpg file")
                continue
            try:
                path = safe_join(root, source)
            except PathOutsideRootError as exc:
                yield Reject(source, "unlabeled", "path_outside_root", str(exc))
                continue
            yield RawRecord(source=source, split="unlabeled", label=None, identity=identity, load=_reader(path))
