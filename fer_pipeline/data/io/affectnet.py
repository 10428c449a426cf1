"""AffectNet (Manually_Annotated): `training.csv` / `validation.csv` + `Manually_Annotated_Images/`.

Each CSV row names a full photo, its face box, 68 iBUG landmarks and an expression
code (some releases ship validation.csv without the header line: both are read).
The photo is not aligned, so every record carries the 5 alignment points
(eye centres, nose tip, mouth corners) taken from the 68, in photo pixels.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterator

from fer_pipeline.data.io.partition import WHOLE, Partition
from fer_pipeline.data.io.paths import PathOutsideRootError, safe_join
from fer_pipeline.data.io.records import RawRecord, Reject
from fer_pipeline.common.labels import UnknownLabelError, to_canonical

IMAGES_DIR = "Manually_Annotated_Images"
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


def _reader(path: Path):
    return lambda: path.read_bytes()


def _record(root: Path, fields: list[str], split: str) -> RawRecord:
    """One CSV row -> a record, or _RowError with its reject reason."""
    if len(fields) != len(COLUMNS):
        raise _RowError("malformed_line", f"expected {len(COLUMNS)} columns, got {len(fields)}")
    row = dict(zip(COLUMNS, (f.strip() for f in fields)))
    _check_numeric(row)
    label = _label(row["expression"])  # before landmarks: No-Face rows often have none
    relative = f"{IMAGES_DIR}/{row['subDirectory_filePath']}"
    try:
        path = safe_join(root, relative)
    except PathOutsideRootError as exc:
        raise _RowError("path_outside_root", str(exc)) from None
    landmarks5 = five_from_68(parse_landmarks(row["facial_landmarks"]))
    return RawRecord(source=relative, split=split, label=label, identity=None, load=_reader(path),
                     landmarks5=landmarks5)


def _check_header(path: Path, fields: list[str]) -> None:
    # Columns are read by position, so a reordered header would shift every field.
    if tuple(f.strip() for f in fields) != COLUMNS:
        raise ValueError(f"{path}: header {fields} is not AffectNet's {list(COLUMNS)}")


def _read_csv(root: Path, csv_name: str, split: str, part: Partition) -> Iterator[RawRecord | Reject]:
    with open(root / csv_name, encoding="utf-8-sig", newline="") as fh:
        rows = csv.reader(fh)
        for fields in rows:
            where = f"{csv_name}:{rows.line_num}"
            if not fields or not any(f.strip() for f in fields):
                continue
            if rows.line_num == 1 and fields[0].strip() == COLUMNS[0]:
                _check_header(root / csv_name, fields)
                continue
            if not part.owns(fields[0]):  # keyed by subDirectory_filePath
                continue
            try:
                yield _record(root, fields, split)
            except _RowError as exc:
                yield Reject(where, split, exc.reason, str(exc))


def read_affectnet_manual(root: str | Path, part: Partition = WHOLE) -> Iterator[RawRecord | Reject]:
    root = Path(root)
    for csv_name, _ in SPLIT_FILES:  # check both before yielding anything
        if not (root / csv_name).is_file():
            raise FileNotFoundError(f"AffectNet annotation file not found: {root / csv_name} "
                                    f"(expected <root>/{csv_name})")
    for csv_name, split in SPLIT_FILES:
        yield from _read_csv(root, csv_name, split, part)
