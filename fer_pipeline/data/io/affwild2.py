"""Aff-Wild2 EXPR (ABAW): `annotations/EXPR_Classification_Challenge/{Train,Validation}_Set/<video>.txt`
+ `cropped_aligned/<video>/<NNNNN>.jpg`.

An annotation file is a class-name header, then one integer label per frame: line
i + 1 labels frame i (1-based, the 5-digit file name). Frames where no face was
detected are absent from disk; frames on disk past the last label have none. Video
names are taken as-is (two-person videos end in `_left` / `_right`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from fer_pipeline.data.io.partition import WHOLE, Partition
from fer_pipeline.data.io.paths import PathOutsideRootError, safe_join
from fer_pipeline.data.io.records import RawRecord, Reject
from fer_pipeline.common.labels import UnknownLabelError, to_canonical

FRAMES_DIR = "cropped_aligned"
ANNOTATION_DIR = "annotations/EXPR_Classification_Challenge"
# The validation set is the public test set (ABAW's test labels are withheld).
SPLIT_DIRS = (("Train_Set", "train"), ("Validation_Set", "test"))
HEADER = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
FRAME_FILE = re.compile(r"^(\d{5})\.jpg$")  # other names are not frames


def frame_name(index: int) -> str:
    return f"{index:05d}.jpg"


def _reader(path: Path):
    return lambda: path.read_bytes()


def frames_on_disk(video_dir: Path) -> set[int]:
    """Indices of the frame files present (one directory listing, not a stat per label)."""
    if not video_dir.is_dir():
        return set()
    return {int(m.group(1)) for e in os.scandir(video_dir) if (m := FRAME_FILE.match(e.name))}


def _label_lines(path: Path) -> tuple[str, list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():  # a trailing newline labels no frame
        lines.pop()
    return (lines[0] if lines else ""), lines[1:]


def _frame_item(video: str, video_dir: Path, present: set[int], where: str,
                frame: int, text: str, split: str) -> RawRecord | Reject:
    """One label line -> a record, or a reject with its reason."""
    source = f"{FRAMES_DIR}/{video}/{frame_name(frame)}"
    try:
        code = int(text.strip())
    except ValueError:
        return Reject(where, split, "malformed_line", f"frame {frame}: label {text!r} is not an integer")
    try:
        label = to_canonical("affwild2", code)
    except UnknownLabelError as exc:
        return Reject(where, split, "unknown_label", str(exc))
    if label is None:
        return Reject(source, split, "invalid_frame", "label -1: the annotators marked the frame invalid")
    if frame not in present:
        if not video_dir.is_dir():  # a whole missing video is a broken download, not a faceless frame
            return Reject(source, split, "missing_file", f"video folder {FRAMES_DIR}/{video} is not on disk")
        return Reject(source, split, "no_face", "labelled frame has no face crop on disk")
    return RawRecord(source=source, split=split, label=label, identity=None,
                     load=_reader(video_dir / frame_name(frame)), video=video, frame=frame)


def _read_video(root: Path, annotation: Path, split: str) -> Iterator[RawRecord | Reject]:
    video = annotation.stem
    relative = annotation.relative_to(root).as_posix()
    header, labels = _label_lines(annotation)
    if tuple(h.strip() for h in header.split(",")) != HEADER:
        # The header fixes the code order; without it every label of the file is suspect.
        yield Reject(f"{relative}:1", split, "malformed_line",
                     f"header {header!r} is not {','.join(HEADER)}: file skipped")
        return
    try:
        # Frame names below are built from integers, so only the video folder needs the check.
        video_dir = safe_join(root, f"{FRAMES_DIR}/{video}")
    except PathOutsideRootError as exc:
        yield Reject(relative, split, "path_outside_root", str(exc))
        return
    present = frames_on_disk(video_dir)
    for frame, text in enumerate(labels, 1):
        yield _frame_item(video, video_dir, present, f"{relative}:{frame + 1}", frame, text, split)
    for frame in sorted(f for f in present if f > len(labels)):
        yield Reject(f"{FRAMES_DIR}/{video}/{frame_name(frame)}", split, "unlabeled_frame",
                     f"frame on disk past the last of {len(labels)} labels")


def read_affwild2_expr(root: str | Path, part: Partition = WHOLE) -> Iterator[RawRecord | Reject]:
    root = Path(root)
    for set_dir, _ in SPLIT_DIRS:  # check both before yielding anything
        if not (root / ANNOTATION_DIR / set_dir).is_dir():
            raise FileNotFoundError(f"Aff-Wild2 EXPR annotations not found: {root / ANNOTATION_DIR / set_dir} "
                                    f"(expected <root>/{ANNOTATION_DIR}/{set_dir}/<video>.txt)")
    for set_dir, split in SPLIT_DIRS:
        for annotation in sorted((root / ANNOTATION_DIR / set_dir).glob("*.txt")):
            if part.owns(annotation.stem):  # a whole video per partition: its frames stay in order
                yield from _read_video(root, annotation, split)
