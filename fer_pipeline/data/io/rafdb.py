"""RAF-DB basic: `EmoLabel/list_patition_label.txt` + `Image/aligned/<stem>_aligned.jpg`
(format `rafdb_basic`), or the original photos `Image/original/<name>` with their
manual landmarks `Annotation/manual/<stem>_manu_attri.txt` (format `rafdb_original`,
aligned by prepare).

The root may be the `basic/` folder or the release folder holding `basic/` and
`compound/` (or a wrapper folder around either); folder names are matched without
regard to case. Images in the images folder that no list line names are counted as
ignored (`unlisted_image`), never silently dropped (docs/datasets.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from fer_pipeline.data.io.layout import (NOT_DATA, PARAMS_IGNORE, LayoutError, ReadOptions, Report, check_entries,
                                         entries, find_child, ignore_rule, is_dir, is_image_name, params_ignored,
                                         relative_to, resolve_root, unwrap)
from fer_pipeline.data.io.partition import WHOLE, Partition
from fer_pipeline.data.io.paths import PathOutsideRootError, SymlinkRefusedError, safe_join
from fer_pipeline.data.io.records import RawRecord, Reject, file_loader
from fer_pipeline.common.labels import UnknownLabelError, to_canonical

LABEL_LIST = "EmoLabel/list_patition_label.txt"  # sic: the dataset's own spelling
ALIGNED_DIR = "Image/aligned"
ORIGINAL_DIR = "Image/original"
MANUAL_DIR = "Annotation/manual"  # <stem>_manu_attri.txt: 5 lines "x y", then gender, race, age
UNLISTED_IMAGE = "unlisted_image"  # ignore rule: an image no list line names (no label: not an input)


def aligned_name(image_name: str) -> str:
    """`train_00001.jpg` -> `train_00001_aligned.jpg`. Any directory part is kept,
    so a hostile entry is caught by safe_join instead of being silently rewritten."""
    stem = image_name[: -len(Path(image_name).suffix)] if Path(image_name).suffix else image_name
    return f"{stem}_aligned.jpg"


def read_manual_landmarks(path: Path) -> tuple[tuple[float, float], ...]:
    """The 5 points of a `_manu_attri.txt` file (eyes, nose tip, mouth corners)."""
    lines = path.read_text(encoding="utf-8").split("\n")[:5]
    points = tuple(tuple(float(v) for v in line.split()) for line in lines)
    if len(points) != 5 or any(len(p) != 2 for p in points):
        raise ValueError(f"expected 5 lines of 'x y', got {lines}")
    return points


def _has_list(folder: Path) -> bool:
    return find_child(folder, "EmoLabel", kind="dir") is not None


def _has_basic(folder: Path) -> bool:
    basic = find_child(folder, "basic", kind="dir")
    return basic is not None and _has_list(basic)


@dataclass
class _Layout:
    base: Path                  # the folder holding EmoLabel/ and Image/ (the record paths are relative to it)
    list_path: Path
    images: Path
    manual: Path | None


def _locate(root: Path, original: bool, options: ReadOptions, report: Report) -> _Layout:
    if not root.is_dir():
        raise FileNotFoundError(f"RAF-DB root not found: {root} (expected <root>/{LABEL_LIST})")
    base = unwrap(root, lambda p: _has_list(p) or _has_basic(p), options, report)
    if not _has_list(base) and _has_basic(base):
        # The release unpacks to RAF-DB/{basic,compound}: this format reads basic/.
        basic = find_child(base, "basic", kind="dir")
        check_entries(base, root, {basic.name.lower()}, options, report, "RAF-DB", release_parts={"compound"})
        base = basic
        report.layout["inside"] = relative_to(base, root)
    emolabel = find_child(base, "EmoLabel", kind="dir")
    list_path = emolabel and find_child(emolabel, "list_patition_label.txt", "list_partition_label.txt", kind="file")
    if list_path is None:
        raise FileNotFoundError(f"RAF-DB label list not found: {base / LABEL_LIST} (expected <root>/{LABEL_LIST} "
                                f"or <root>/basic/{LABEL_LIST})")
    image = find_child(base, "Image", kind="dir")
    wanted, other = ("original", "aligned") if original else ("aligned", "original")
    images = image and find_child(image, wanted, kind="dir")
    if images is None:
        raise FileNotFoundError(f"RAF-DB images not found: {base / 'Image' / wanted} (format "
                                f"rafdb_{'original' if original else 'basic'} reads <root>/Image/{wanted}/)")
    annotation = find_child(base, "Annotation", kind="dir")
    manual = None
    if original:
        manual = annotation and find_child(annotation, "manual", kind="dir")
        if manual is not None:
            check_entries(annotation, root, {manual.name.lower()}, options, report, "RAF-DB",
                          release_parts={"auto", "boundingbox"})
    known = {emolabel.name.lower(), image.name.lower()} | ({annotation.name.lower()} if original and annotation else set())
    check_entries(base, root, known, options, report, "RAF-DB", release_parts={"annotation"},
                  expected="EmoLabel/, Image/, Annotation/")
    check_entries(emolabel, root, {list_path.name.lower()}, options, report, "RAF-DB")
    check_entries(image, root, {images.name.lower()}, options, report, "RAF-DB", release_parts={other})
    report.layout.update({"labels": relative_to(list_path, root), "images": relative_to(images, root)})
    report.label_files.append(str(list_path))
    return _Layout(base, list_path, images, manual)


def _account_for_images(layout: _Layout, root: Path, referenced: set[str], options: ReadOptions,
                        report: Report) -> None:
    """Every file of the images folder: an input (a list line names it), or ignored by rule."""
    for entry in entries(layout.images):
        relative = relative_to(Path(entry.path), root)
        rule = ignore_rule(entry.name) or (PARAMS_IGNORE if params_ignored(relative, options) else None)
        if rule is not None:
            report.ignore(rule, relative)
        elif is_dir(entry):
            raise LayoutError(f"RAF-DB: folder {entry.path} inside the images folder is not part of the layout "
                              f"(images are <root>/Image/aligned/<name>); list {relative!r} under "
                              f"datasets.<name>.ignore to skip it")
        elif entry.name in referenced:
            continue  # an input: its list line is kept or rejected
        else:
            report.ignore(UNLISTED_IMAGE if is_image_name(entry.name) else NOT_DATA, relative)


def read_rafdb_original(root: str | Path, part: Partition = WHOLE, options: ReadOptions | None = None,
                        report: Report | None = None) -> Iterator[RawRecord | Reject]:
    """The original photos: each record carries its 5 manual landmarks for alignment."""
    return read_rafdb_basic(root, original=True, part=part, options=options, report=report)


def _with_landmarks(item: RawRecord, layout: _Layout, options: ReadOptions) -> RawRecord | Reject:
    stem = Path(item.source).stem
    name = f"{stem}_manu_attri.txt"
    manual_rel = relative_to(layout.manual, layout.base) if layout.manual else MANUAL_DIR
    try:
        landmarks = read_manual_landmarks(safe_join(layout.base, f"{manual_rel}/{name}", options.follow_symlinks))
    except FileNotFoundError:
        return Reject(item.source, item.split, "missing_landmarks", f"{manual_rel}/{name} not found")
    except SymlinkRefusedError as exc:
        return Reject(item.source, item.split, "symlink_not_followed", str(exc))
    except (ValueError, PathOutsideRootError) as exc:
        return Reject(item.source, item.split, "bad_landmarks", str(exc))
    return RawRecord(item.source, item.split, item.label, None, item.load, landmarks5=landmarks)


def read_rafdb_basic(root: str | Path, original: bool = False, part: Partition = WHOLE,
                     options: ReadOptions | None = None, report: Report | None = None) -> Iterator[RawRecord | Reject]:
    options, report = options or ReadOptions(), report or Report(part)
    root = resolve_root(root)
    layout = _locate(root, original, options, report)
    base = layout.base
    list_rel = relative_to(layout.list_path, base)
    images_rel = relative_to(layout.images, base)
    with open(layout.list_path, encoding="utf-8-sig") as fh:  # -sig: a BOM is not part of the first name
        lines = [(lineno, line) for lineno, line in enumerate(fh, 1) if line.strip()]
    report.listed += len(lines)
    referenced = {(name if original else aligned_name(name)) for name in (line.split()[0] for _, line in lines)}
    _account_for_images(layout, root, referenced, options, report)
    first_line: dict[str, int] = {}
    for lineno, line in lines:
        where = f"{list_rel}:{lineno}"
        fields = line.split()
        if not part.owns(fields[0]):  # keyed by image name: stable when lines are added
            continue
        if fields[0] in first_line:
            # The same image twice would train twice (or with two labels): the first line counts.
            yield Reject(where, None, "duplicate_entry", f"{fields[0]!r} is listed on line {first_line[fields[0]]} already")
            continue
        first_line[fields[0]] = lineno
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
        relative = f"{images_rel}/{name if original else aligned_name(name)}"
        try:
            path = safe_join(base, relative, options.follow_symlinks)
        except PathOutsideRootError as exc:
            yield Reject(where, split, "path_outside_root", str(exc))
            continue
        except SymlinkRefusedError as exc:
            yield Reject(relative, split, "symlink_not_followed", str(exc))
            continue
        record = RawRecord(source=relative, split=split, label=label, identity=None, load=file_loader(path))
        yield _with_landmarks(record, layout, options) if original else record
