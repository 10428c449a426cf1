"""What a dataset reader yields: one raw record, before decoding or alignment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable


def file_loader(path: str | os.PathLike) -> Callable[[], bytes]:
    """A record's `load` for an image file: its bytes, read when prepare gets to it."""
    def load() -> bytes:
        with open(path, "rb") as fh:
            return fh.read()
    return load


@dataclass(frozen=True)
class RawRecord:
    source: str                      # path (or rec key) inside the dataset root, for the ledger
    split: str                       # train | test | unlabeled ...
    label: str | None                # canonical expression name; None for unlabeled pools
    identity: str | None             # face identity when the dataset has one
    load: Callable[[], bytes]        # returns the encoded image bytes (may raise OSError)
    # Five (x, y) points in source-image pixels (eyes, nose tip, mouth corners): when
    # present, prepare aligns the face onto the template instead of only resizing.
    landmarks5: tuple | None = None
    video: str | None = None         # video id, for datasets of video frames
    frame: int | None = None         # 1-based frame index inside `video`


@dataclass(frozen=True)
class Reject:
    source: str
    split: str | None
    reason: str                      # a code: missing_file, corrupt_image, unknown_label, ...
    detail: str
