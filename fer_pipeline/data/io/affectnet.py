"""AffectNet (Manually_Annotated): `training.csv` / `validation.csv` + `Manually_Annotated_Images/`.

Each CSV row names a full photo, its face box, 68 iBUG landmarks and an expression
code (some releases ship validation.csv without the header line: both are read).
The photo is not aligned, so every record carries the 5 alignment points
(eye centres, nose tip, mouth corners) taken from the 68, in photo pixels.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Iterable, Iterator

from fer_pipeline.data.io.layout import (NOT_DATA, PARAMS_IGNORE, LayoutError, ReadOptions, Report, check_entries,
                                         find_child, ignore_rule, is_image_name, params_ignored, relative_to,
                                         resolve_root, unwrap)
from fer_pipeline.data.io.partition import WHOLE, Partition
from fer_pipeline.data.io.paths import PathOutsideRootError, SymlinkRefusedError, check_relative, safe_join_str
from fer_pipeline.data.io.records import RawRecord, Reject, file_loader
from fer_pipeline.common.labels import UnknownLabelError, to_canonical

IMAGES_DIR = "Manually_Annotated_Images"
# Where releases put the two CSVs and the images, relative to the root (tried in order).
LABEL_DIRS = (".", "Manually_Annotated_file_lists", "Manually_Annotated")
IMAGE_DIRS = (IMAGES_DIR, "Manually_Annotated/Manually_Annotated_Images", "Manually_Annotated")
# The release's automatically annotated part: another format, not read here.
RELEASE_PARTS = {"automatically_annotated", "automatically_annotated_images", "automatically_annotated_file_list",
                 "automatically_annotated_file_lists"}
UNLISTED_IMAGE = "unlisted_image"
# The validation set is AffectNet's public test set (the real test set is unreleased).
SPLIT_FILES = (("training.csv", "train"), ("validation.csv", "test"))
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
           "facial_landmarks", "expression", "valence", "arousal")
NUMERIC_COLUMNS = ("face_x", "face_y", "face_width", "face_height", "valence", "arousal")
# AffectNet's own names for its codes that are not expressions (the reject's detail).
NON_EXPRESSION_NAMES = {8: "None", 9: "Uncertain", 10: "No-Face"}

# 0-based iBUG-68 indices.
LEFT_EYE = range(36, 42)
RIGHT_EYE = range(42, 48)
NOSE_TIP = 30
MOUTH_LEFT, MOUTH_RIGHT = 48, 54


class _RowError(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def five_from_68(points: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """68 iBUG points -> the template's 5: eye centres, nose tip, mouth corners."""
    def mean(indices):
        xs, ys = zip(*(points[i] for i in indices))
        return (sum(xs) / len(xs), sum(ys) / len(ys))
    return (mean(LEFT_EYE), mean(RIGHT_EYE), points[NOSE_TIP], points[MOUTH_LEFT], points[MOUTH_RIGHT])


def parse_landmarks(text: str) -> list[tuple[float, float]]:
    """`x0;y0;x1;y1;...` -> 68 (x, y) points, or _RowError('bad_landmarks')."""
    parts = text.split(";")
    if parts and not parts[-1].strip():  # a trailing ';'
        parts.pop()
    try:
        values = list(map(float, parts))  # float() ignores surrounding blanks
    except ValueError:
        raise _RowError("bad_landmarks", f"non-numeric value in facial_landmarks {text[:60]!r}") from None
    # The sum is finite only if every value is (nan and inf propagate): one check per row.
    if len(values) != 136 or not math.isfinite(sum(values)):
        raise _RowError("bad_landmarks", f"expected 136 finite numbers (68 points), got {len(values)} values")
    return list(zip(values[0::2], values[1::2]))


def _label(code_text: str) -> str:
    try:
        code = int(code_text)
    except ValueError:
        raise _RowError("malformed_line", f"expression {code_text!r} is not an integer") from None
    try:
        label = to_canonical("affectnet", code)
    except UnknownLabelError as exc:
        raise _RowError("unknown_label", str(exc)) from None
    if label is None:
        raise _RowError("non_expression_label", f"expression {code} = {NON_EXPRESSION_NAMES[code]}: not an expression")
    return label


def _check_numeric(row: dict) -> None:
    for column in NUMERIC_COLUMNS:
        try:
            float(row[column])
        except ValueError:
            raise _RowError("malformed_line", f"{column} {row[column]!r} is not a number") from None


def _record(root: Path, fields: list[str], split: str, images_rel: str = IMAGES_DIR,
            follow_symlinks: bool = True) -> RawRecord:
    """One CSV row -> a record, or _RowError with its reject reason."""
    if len(fields) != len(COLUMNS):
        raise _RowError("malformed_line", f"expected {len(COLUMNS)} columns, got {len(fields)}")
    row = dict(zip(COLUMNS, (f.strip() for f in fields)))
    _check_numeric(row)
    label = _label(row["expression"])  # before landmarks: No-Face rows often have none
    relative = f"{images_rel}/{row['subDirectory_filePath']}"
    try:
        # The CSV's own path must stay inside the images folder, not only inside the root.
        check_relative(row["subDirectory_filePath"], f"{root}/{images_rel}")
        path = safe_join_str(root, relative, follow_symlinks)
    except PathOutsideRootError as exc:
        raise _RowError("path_outside_root", str(exc)) from None
    except SymlinkRefusedError as exc:
        raise _RowError("symlink_not_followed", str(exc)) from None
    landmarks5 = five_from_68(parse_landmarks(row["facial_landmarks"]))
    return RawRecord(source=relative, split=split, label=label, identity=None, load=file_loader(path),
                     landmarks5=landmarks5)


def _check_header(path: Path, fields: list[str]) -> None:
    # Columns are read by position, so a reordered header would shift every field.
    if tuple(f.strip() for f in fields) != COLUMNS:
        raise ValueError(f"{path}: header {fields} is not AffectNet's {list(COLUMNS)}")


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank data row, streamed (a real training.csv
    holds ~290 000 rows of 136 landmark numbers: prepare's memory must not grow with
    it); the header is checked, not returned."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = csv.reader(fh)
        for fields in rows:
            if not fields or not any(f.strip() for f in fields):
                continue
            if rows.line_num == 1 and fields[0].strip() == COLUMNS[0]:
                _check_header(path, fields)
                continue
            yield rows.line_num, fields


def _survey(path: Path, referenced: set[str]) -> int:
    """First pass over one CSV: checks its header, adds the image paths it names to
    `referenced` and returns its row count; the rows themselves are read again later."""
    count = 0
    for _, fields in _csv_rows(path):
        referenced.add(os.path.normpath(fields[0].strip()))
        count += 1
    return count


def _read_csv(root: Path, csv_path: Path, rows: Iterable, split: str, part: Partition, images_rel: str,
              options: ReadOptions, seen: dict[str, str]) -> Iterator[RawRecord | Reject]:
    """The CSV's rows as records or rejects; `seen`: image path -> where a valid row of
    this CSV first listed it (a repeat is a duplicate_entry reject)."""
    csv_rel = relative_to(csv_path, root)
    for line_num, fields in rows:
        where = f"{csv_rel}:{line_num}"
        if not part.owns(fields[0]):  # keyed by subDirectory_filePath
            continue
        try:
            record = _record(root, fields, split, images_rel, options.follow_symlinks)
        except _RowError as exc:
            yield Reject(where, split, exc.reason, str(exc))
            continue
        if isinstance(record, RawRecord) and record.source in seen:
            # The same image twice would train twice (or with two labels): the first valid row counts.
            yield Reject(where, split, "duplicate_entry", f"{fields[0]!r} is listed at {seen[record.source]} already")
            continue
        seen.setdefault(record.source, where)
        yield record


def _in_root(root: Path, relative: str) -> Path | None:
    """`root/relative` matched without regard to case, one component at a time."""
    path = root
    for part in [] if relative in (".", "") else relative.split("/"):
        path = find_child(path, part, kind="dir")
        if path is None:
            return None
    return path


def _locate(root: Path, options: ReadOptions, report: Report) -> tuple[Path, dict[str, Path], str]:
    """(the dataset folder, {split: its CSV}, the images folder relative to the dataset folder)."""
    if not root.is_dir():
        raise FileNotFoundError(f"AffectNet root not found: {root} (expected <root>/training.csv)")

    def csvs_in(folder: Path | None) -> dict[str, Path]:
        found = {}
        for csv_name, split in SPLIT_FILES:
            path = folder and find_child(folder, csv_name, kind="file")
            if path is not None:
                found[split] = path
        return found

    label_dirs = (options.labels_dir,) if options.labels_dir else LABEL_DIRS
    base = root if options.labels_dir else unwrap(
        root, lambda p: any(csvs_in(_in_root(p, d)) for d in LABEL_DIRS), options, report)
    candidates = {d: csvs_in(_in_root(base, d)) for d in label_dirs}
    candidates = {d: found for d, found in candidates.items() if found}
    expected = " or ".join(f"<root>/{d + '/' if d != '.' else ''}{{training,validation}}.csv" for d in label_dirs)
    if not candidates:
        raise FileNotFoundError(f"AffectNet annotation files not found under {base}: expected {expected} "
                                f"(training.csv and/or validation.csv)")
    if len(candidates) > 1:
        raise LayoutError(f"AffectNet: CSV files in {len(candidates)} folders of {base}: {sorted(candidates)}; "
                          f"say which with datasets.<name>.labels_dir")
    (labels_dir, csvs), = candidates.items()
    if options.splits is not None:
        wanted = {"train": "training.csv", "test": "validation.csv"}
        for split in options.splits:
            if split not in csvs:
                raise FileNotFoundError(f"AffectNet annotation file not found: {_in_root(base, labels_dir) / wanted[split]} "
                                        f"(datasets.<name>.splits lists {split!r})")
        csvs = {s: p for s, p in csvs.items() if s in options.splits}
    image_dirs = (options.images_dir,) if options.images_dir else IMAGE_DIRS
    images = next((d for d in image_dirs if _in_root(base, d) is not None and (
        d != "Manually_Annotated" or _in_root(base, "Manually_Annotated/Manually_Annotated_Images") is None)), None)
    if images is None and options.images_dir:
        raise FileNotFoundError(f"AffectNet images folder not found: {base / options.images_dir} "
                                f"(datasets.<name>.images_dir)")
    images_rel = relative_to(_in_root(base, images), base) if images is not None else IMAGES_DIR
    report.layout.update({"labels": {s: relative_to(p, root) for s, p in csvs.items()},
                          "images": relative_to(base / images_rel, root)})
    if set(csvs) != {"train", "test"}:
        report.layout["splits_missing"] = sorted({"train", "test"} - set(csvs))
    # Account for the folders next to the CSVs and the images.
    top = images_rel.split("/")[0].lower()
    known = {top} | {p.name.lower() for p in csvs.values() if p.parent == base} | {
        relative_to(_in_root(base, labels_dir), base).split("/")[0].lower()}
    known |= {p.name.lower() for p in csvs_in(base).values()}
    check_entries(base, root, known, options, report, "AffectNet", release_parts=RELEASE_PARTS,
                  expected="training.csv, validation.csv, Manually_Annotated_Images/, Manually_Annotated_file_lists/")
    return base, csvs, images_rel


def _account_for_images(base: Path, root: Path, images_rel: str, referenced: set[str], options: ReadOptions,
                        report: Report) -> None:
    """Every file under the images folder: an input (a CSV row names it), or ignored by rule."""
    images = base / images_rel
    if not images.is_dir():
        return
    for folder, dirs, files in os.walk(images, followlinks=options.follow_symlinks):
        kept_dirs = []
        for name in sorted(dirs):
            relative = relative_to(Path(folder) / name, root)
            rule = ignore_rule(name) or (PARAMS_IGNORE if params_ignored(relative, options) else None)
            if rule:
                report.ignore(rule, relative)
            else:
                kept_dirs.append(name)
        dirs[:] = kept_dirs
        # Plain strings below: this loop sees every image of the dataset.
        folder_rel = relative_to(Path(folder), root)
        folder_inner = relative_to(Path(folder), images)
        for name in sorted(files):
            relative = name if folder_rel == "." else f"{folder_rel}/{name}"
            inner = os.path.normpath(name if folder_inner == "." else f"{folder_inner}/{name}")
            rule = ignore_rule(name) or (PARAMS_IGNORE if params_ignored(relative, options) else None)
            if rule:
                report.ignore(rule, relative)
            elif inner not in referenced:
                report.ignore(UNLISTED_IMAGE if is_image_name(name) else NOT_DATA, relative)


def read_affectnet_manual(root: str | Path, part: Partition = WHOLE, options: ReadOptions | None = None,
                          report: Report | None = None) -> Iterator[RawRecord | Reject]:
    """Both CSVs when both are there; a train-only (or test-only) copy reads the one it
    has (the manifest's layout says which split is missing); `datasets.<name>.splits`
    makes a split required."""
    options, report = options or ReadOptions(), report or Report(part)
    root = resolve_root(root)
    base, csvs, images_rel = _locate(root, options, report)
    referenced: set[str] = set()
    for split, path in csvs.items():  # every header checked before any record
        report.label_files.append(str(path))
        report.listed += _survey(path, referenced)
    _account_for_images(base, root, images_rel, referenced, options, report)
    del referenced
    for csv_name, split in SPLIT_FILES:
        if split in csvs:
            yield from _read_csv(base, csvs[split], _csv_rows(csvs[split]), split, part, images_rel, options, seen={})
