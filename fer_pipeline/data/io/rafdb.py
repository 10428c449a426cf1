"""RAF-DB basic: `EmoLabel/list_patition_label.txt` + `Image/aligned/<stem>_aligned.jpg`
(format `rafdb_basic`), or the original photos `Image/original/<name>` with their
manual landmarks `Annotation/manual/<stem>_manu_attri.txt` (format `rafdb_original`,
aligned by prepare)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from fer_pipeline.data.io.partition import WHOLE, Partition
from fer_pipeline.data.io.paths import PathOutsideRootError, safe_join
from fer_pipeline.data.io.records import RawRecord, Reject
from fer_pipeline.common.labels import UnknownLabelError, to_canonical

LABEL_LIST = "EmoLabel/list_patition_label.txt"  # sic: the dataset's own spelling
ALIGNED_DIR = "Image/aligned"
ORIGINAL_DIR = "Image/original"
MANUAL_DIR = "Annotation/manual"  # <stem>_manu_attri.txt: 5 lines "x y", then gender, race, age


def aligned_name(image_name: str) -> str:
    """`train_00001.jpg` -> `train_00001_aligned.jpg`. Any directory part is kept,
    so a hostile entry is caught by safe_join instead of being silently rewritten."""
    stem = image_name[: -len(Path(image_name).suffix)] if Path(image_name).suffix else image_name
    return f"{stem}_aligned.jpg"


def _reader(path: Path):
    return lambda: path.read_bytes()


def read_manual_landmarks(path: Path) -> tuple[tuple[float, float], ...]:
    """The 5 points of a `_manu_attri.txt` file (eyes, nose tip, mouth corners)."""
    lines = path.read_text(encoding="utf-8").split("\n")[:5]
    points = tuple(tuple(float(v) for v in line.split()) for line in lines)
    if len(points) != 5 or any(len(p) != 2 for p in points):
        raise ValueError(f"expected 5 lines of 'x y', got {lines}")
    return points


def read_rafdb_original(root: str | Path, part: Partition = WHOLE) -> Iterator[RawRecord | Reject]:
    """The original photos: each record carries its 5 manual landmarks for alignment."""
    root = Path(root)
    for item in read_rafdb_basic(root, original=True, part=part):
        if isinstance(item, Reject):
            yield item
            continue
        stem = Path(item.source).stem
        try:
            landmarks = read_manual_landmarks(safe_join(root, f"{MANUAL_DIR}/{stem}_manu_attri.txt"))
        except FileNotFoundError:
            yield Reject(item.source, item.split, "missing_landmarks", f"{MANUAL_DIR}/{stem}_manu_attri.txt not found")
            continue
        except (ValueError, PathOutsideRootError) as exc:
            yield Reject(item.source, item.split, "bad_landmarks", str(exc))
            continue
        yield RawRecord(item.source, item.split, item.label, None, item.load, landmarks5=landmarks)


def read_rafdb_basic(root: str | Path, original: bool = False, part: Partition = WHOLE) -> Iterator[RawRecord | Reject]:
    root = Path(root)
    list_path = root / LABEL_LIST
    if not list_path.is_file():
        raise FileNotFoundError(f"RAF-DB label list not found: {list_path} (expected <root>/{LABEL_LIST})")
    with open(list_path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            where = f"{LABEL_LIST}:{lineno}"
            if not line.strip():
                continue
            fields = line.split()
            if not part.owns(fields[0]):  # keyed by image name: stable when lines are added
                continue
            if len(fields) != 2:
                yield Reject(where, None, "malformed_line", f"expected '<image> <label>', got {line.rstrip()!r}")
                continue
            name, code = fields
            split = name.split("_", 1)[0]
            if split not in ("train", "test"):
                yield Reject(where, None, "unknown_split", f"{name!r} starts with neither train_ nor test_")
                continue
            try:
                label = to_canonical("rafdb", int(code))
            except (ValueError, UnknownLabelError) as exc:
                yield Reject(where, split, "unknown_label", str(exc) if isinstance(exc, UnknownLabelError) else f"label {code!r} is not an integer")
                continue
            relative = f"{ORIGINAL_DIR}/{name}" if original else f"{ALIGNED_DIR}/{aligned_name(name)}"
            try:
                path = safe_join(root, relative)
            except PathOutsideRootError as exc:
                yield Reject(where, split, "path_outside_root", str(exc))
                continue
            yield RawRecord(source=relative, split=split, label=label, identity=None, load=_reader(path))
