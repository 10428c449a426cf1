"""Aff-Wild2 EXPR (ABAW): `<annotations>/EXPR_Classification_Challenge/{Train,Validation}_Set/<video>.txt`
+ `cropped_aligned/<video>/<NNNNN>.jpg`.

The annotations folder is found wherever the ABAW release put it (`annotations/`,
`Third ABAW Annotations/`, `5th_ABAW_Annotations/`, `6th ABAW Annotations/...
EXPR_Recognition_Challenge`, names compared without regard to case), or named by
`datasets.<name>.annotations_dir` when two are there. A train-only copy is read as
such (docs/datasets.md).

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

from fer_pipeline.data.io.layout import (NOT_DATA, PARAMS_IGNORE, LayoutError, ReadOptions, Report, check_entries,
                                         entries, find_child, ignore_rule, is_dir, is_image_name, is_label_name,
                                         params_ignored, relative_to, resolve_root)
from fer_pipeline.data.io.partition import WHOLE, Partition
from fer_pipeline.data.io.paths import PathOutsideRootError, SymlinkRefusedError, safe_join
from fer_pipeline.data.io.records import RawRecord, Reject, file_loader
from fer_pipeline.common.labels import UnknownLabelError, to_canonical

FRAMES_DIR = "cropped_aligned"
ANNOTATION_DIR = "annotations/EXPR_Classification_Challenge"
# The validation set is the public test set (ABAW's test labels are withheld).
SPLIT_DIRS = (("Train_Set", "train"), ("Validation_Set", "test"))
HEADER = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
FRAME_FILE = re.compile(r"^(\d{5})\.jpg$")  # other names are not frames
# What the ABAW releases call the EXPR annotations folder (compared in lower case):
# annotations/EXPR_Classification_Challenge, Third ABAW Annotations/EXPR_Classification_Challenge,
# 5th_ABAW_Annotations/EXPR_Classification_Challenge, 6th ABAW Annotations/EXPR_Recognition_Challenge.
EXPR_DIR_CANONICAL = ("EXPR_Classification_Challenge", "EXPR_Recognition_Challenge", "EXPR_Set")
EXPR_DIR_NAMES = {n.lower() for n in EXPR_DIR_CANONICAL}
# Folders of the release this format does not read (compared in lower case).
RELEASE_PARTS = {"cropped", "videos", "batch1", "batch2", "new_vids", "cropped_aligned_new", "landmarks"}
UNANNOTATED_VIDEO = "unannotated_video"  # ignore rule: a frame folder no annotation file names


def frame_name(index: int) -> str:
    return f"{index:05d}.jpg"


def frames_on_disk(video_dir: Path) -> set[int]:
    """Indices of the frame files present (one directory listing, not a stat per label)."""
    if not video_dir.is_dir():
        return set()
    return {int(m.group(1)) for e in os.scandir(video_dir) if (m := FRAME_FILE.match(e.name))}


def _other_files(video_dir: Path, root: Path, options: ReadOptions, report: Report, split: str,
                 video: str) -> Iterator[Reject]:
    """The entries of a video folder that are not frames: an image with another name is
    rejected (`not_a_frame`), the rest is ignored by rule."""
    if not video_dir.is_dir():
        return
    for entry in entries(video_dir):
        if FRAME_FILE.match(entry.name):
            continue
        relative = relative_to(Path(entry.path), root)
        rule = ignore_rule(entry.name) or (PARAMS_IGNORE if params_ignored(relative, options) else None)
        if rule:
            report.ignore(rule, relative)
        elif is_image_name(entry.name) or is_dir(entry):
            yield Reject(f"{FRAMES_DIR}/{video}/{entry.name}", split, "not_a_frame",
                         f"{entry.name!r} is not a frame file (<NNNNN>.jpg, 5 digits, 1-based)")
        else:
            report.ignore(NOT_DATA, relative)


def _label_lines(path: Path) -> tuple[str, list[str]]:
    lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a BOM (Windows editors) is not the header's
    while lines and not lines[-1].strip():  # a trailing newline labels no frame
        lines.pop()
    return (lines[0] if lines else ""), lines[1:]


def _frame_item(video: str, video_dir: Path, present: set[int], where: str,
                frame: int, text: str, split: str, frames_rel: str = FRAMES_DIR) -> RawRecord | Reject:
    """One label line -> a record, or a reject with its reason."""
    source = f"{frames_rel}/{video}/{frame_name(frame)}"
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
            return Reject(source, split, "missing_file", f"video folder {video_dir} is not on disk")
        return Reject(source, split, "no_face", "labelled frame has no face crop on disk")
    return RawRecord(source=source, split=split, label=label, identity=None,
                     load=file_loader(video_dir / frame_name(frame)), video=video, frame=frame)


def _read_video(root: Path, annotation: Path, split: str, frames_rel: str, options: ReadOptions,
                report: Report) -> Iterator[RawRecord | Reject]:
    video = annotation.stem
    relative = relative_to(annotation, root)
    header, labels = _label_lines(annotation)

    def every_line(reason: str, detail: str) -> Iterator[Reject]:
        # The file cannot be read, but each of its lines is an input: all are rejected.
        for frame in range(1, len(labels) + 1):
            yield Reject(f"{relative}:{frame + 1}", split, reason, f"frame {frame}: {detail}")

    try:
        # Frame names below are built from integers, so only the video folder needs the check.
        video_dir = safe_join(root, f"{frames_rel}/{video}", options.follow_symlinks)
    except PathOutsideRootError as exc:
        yield from every_line("path_outside_root", str(exc))
        return
    except SymlinkRefusedError as exc:
        yield from every_line("symlink_not_followed", str(exc))
        return
    present = frames_on_disk(video_dir)
    if tuple(h.strip() for h in header.split(",")) != HEADER:
        # The header fixes the code order; without it every label of the file is suspect.
        yield from every_line("bad_header", f"{relative}:1: header {header!r} is not {','.join(HEADER)}")
    else:
        for frame, text in enumerate(labels, 1):
            yield _frame_item(video, video_dir, present, f"{relative}:{frame + 1}", frame, text, split, frames_rel)
    for frame in sorted(f for f in present if f > len(labels)):
        yield Reject(f"{frames_rel}/{video}/{frame_name(frame)}", split, "unlabeled_frame",
                     f"frame on disk past the last of {len(labels)} labels")
    yield from _other_files(video_dir, root, options, report, split, video)


def _expr_dirs(root: Path, skip: set[str], depth: int = 3) -> list[Path]:
    """Folders up to `depth` levels down named like an EXPR challenge's annotations."""
    found, level = [], [root]
    for _ in range(depth):
        below = []
        for folder in level:
            for entry in entries(folder):
                relative = relative_to(Path(entry.path), root)
                if not is_dir(entry) or ignore_rule(entry.name) or relative in skip or (
                        folder == root and entry.name.lower() in RELEASE_PARTS):
                    continue
                if entry.name.lower() in EXPR_DIR_NAMES:
                    found.append(Path(entry.path))
                else:
                    below.append(Path(entry.path))
        level = below
    return found


def _split_dirs(expr_dir: Path) -> dict[str, Path]:
    found = {}
    for set_dir, split in SPLIT_DIRS:
        path = find_child(expr_dir, set_dir, kind="dir")
        if path is not None:
            found[split] = path
    return found


def _locate(root: Path, options: ReadOptions, report: Report) -> tuple[Path, dict[str, Path], str]:
    """(the dataset folder, {split: its annotation folder}, the frames folder relative to the dataset folder)."""
    if not root.is_dir():
        raise FileNotFoundError(f"Aff-Wild2 root not found: {root} (expected <root>/{ANNOTATION_DIR}/Train_Set)")
    if options.frames_dir:
        frames = root / options.frames_dir
        if not frames.is_dir():
            raise FileNotFoundError(f"Aff-Wild2 frames folder not found: {frames} (datasets.<name>.frames_dir)")
    else:
        frames = find_child(root, FRAMES_DIR, kind="dir")
    frames_rel = relative_to(frames, root) if frames is not None else FRAMES_DIR
    expected = (f"expected <root>/<annotations>/<EXPR folder>/Train_Set/<video>.txt and/or Validation_Set/, the "
                f"EXPR folder named {' or '.join(EXPR_DIR_CANONICAL)} (e.g. {ANNOTATION_DIR}, "
                f"'6th ABAW Annotations/EXPR_Recognition_Challenge')")
    if options.annotations_dir:
        expr = root / options.annotations_dir
        if not expr.is_dir():
            raise FileNotFoundError(f"Aff-Wild2 EXPR annotations not found: {expr} (datasets.<name>.annotations_dir)")
        candidates = [expr] if _split_dirs(expr) else []
        if not candidates:
            raise FileNotFoundError(f"Aff-Wild2 EXPR annotations: {expr} (datasets.<name>.annotations_dir) holds "
                                    f"neither Train_Set/ nor Validation_Set/")
    else:
        candidates = [d for d in _expr_dirs(root, {frames_rel, *(p.strip('/') for p in options.ignore)}) if _split_dirs(d)]
    if not candidates:
        raise FileNotFoundError(f"Aff-Wild2 EXPR annotations not found under {root}: {expected}")
    if len(candidates) > 1:
        raise LayoutError(f"Aff-Wild2: {len(candidates)} EXPR annotation folders under {root}: "
                          f"{[relative_to(c, root) for c in candidates]}; say which with "
                          f"datasets.<name>.annotations_dir")
    expr = candidates[0]
    splits = _split_dirs(expr)
    if options.splits is not None:
        for split in options.splits:
            if split not in splits:
                set_dir = dict((s, d) for d, s in SPLIT_DIRS)[split]
                raise FileNotFoundError(f"Aff-Wild2 EXPR annotations not found: {expr / set_dir} "
                                        f"(datasets.<name>.splits lists {split!r})")
        splits = {s: p for s, p in splits.items() if s in options.splits}
    if frames is None:
        raise FileNotFoundError(f"Aff-Wild2 frames folder not found: {root / FRAMES_DIR} (expected "
                                f"<root>/{FRAMES_DIR}/<video>/<NNNNN>.jpg, or set datasets.<name>.frames_dir)")
    report.layout.update({"annotations": relative_to(expr, root),
                          "splits": {s: relative_to(p, root) for s, p in splits.items()},
                          "frames": frames_rel})
    if set(splits) != {"train", "test"}:
        report.layout["splits_missing"] = sorted({"train", "test"} - set(splits))
    # The top level: the frames, the annotation folders (this release's and others'),
    # the release's other parts; anything else is named.
    ann_top = relative_to(expr, root).split("/")[0].lower()
    release_parts = set(RELEASE_PARTS) | {e.name.lower() for e in entries(root) if is_dir(e) and any(
        w in e.name.lower() for w in ("annotation", "abaw"))}
    check_entries(root, root, {frames_rel.split("/")[0].lower(), ann_top}, options, report, "Aff-Wild2",
                  release_parts=release_parts - {ann_top},
                  expected=f"{FRAMES_DIR}/, an annotations folder")
    known_sets = {p.name.lower() for p in _split_dirs(expr).values()}
    check_entries(expr, root, known_sets, options, report, "Aff-Wild2", expected="Train_Set/, Validation_Set/")
    return frames, splits, frames_rel


def _annotations(split_dir: Path, root: Path, options: ReadOptions, report: Report) -> list[Path]:
    found = []
    for entry in entries(split_dir):
        relative = relative_to(Path(entry.path), root)
        rule = ignore_rule(entry.name) or (PARAMS_IGNORE if params_ignored(relative, options) else None)
        if rule:
            report.ignore(rule, relative)
        elif entry.name.lower().endswith(".txt") and not is_dir(entry):
            found.append(Path(entry.path))
        elif is_dir(entry) or is_label_name(entry.name) or is_image_name(entry.name):
            raise LayoutError(f"Aff-Wild2: {entry.path} is not an annotation file (<video>.txt); list "
                              f"{relative!r} under datasets.<name>.ignore to skip it")
        else:
            report.ignore(NOT_DATA, relative)
    return found


def read_affwild2_expr(root: str | Path, part: Partition = WHOLE, options: ReadOptions | None = None,
                       report: Report | None = None) -> Iterator[RawRecord | Reject]:
    """The EXPR annotations of every split present (a train-only copy reads Train_Set
    alone; `datasets.<name>.splits` makes a split required). Frame folders of videos
    no annotation file names are counted as ignored (`unannotated_video`: the test set,
    or another challenge's videos)."""
    options, report = options or ReadOptions(), report or Report(part)
    root = resolve_root(root)
    frames, splits, frames_rel = _locate(root, options, report)
    by_split = {split: _annotations(path, root, options, report) for split, path in splits.items()}
    annotated = set()
    for split, files in by_split.items():
        report.label_files += [str(p) for p in files]
        annotated |= {p.stem for p in files}
        for path in files:
            report.listed += len(_label_lines(path)[1])
    for entry in entries(frames):
        relative = relative_to(Path(entry.path), root)
        if entry.name in annotated:
            continue
        rule = ignore_rule(entry.name) or (PARAMS_IGNORE if params_ignored(relative, options) else None)
        report.ignore(rule or (UNANNOTATED_VIDEO if is_dir(entry) else NOT_DATA), relative)
    for set_dir, split in SPLIT_DIRS:
        for annotation in by_split.get(split, []):
            if part.owns(annotation.stem):  # a whole video per partition: its frames stay in order
                yield from _read_video(root, annotation, split, frames_rel, options, report)
