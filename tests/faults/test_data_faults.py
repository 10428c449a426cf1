"""Faults in the data a user points the pipeline at: damaged images and RecordIO records,
bad label lines, missing and extra files. Each ends as a reject with its reason (or a
documented ignore rule, or an error naming the file), never a crash, never a record
silently dropped: records lost = lines listed - (kept + rejected).

Fixtures are written here by hand at a few images each; prepare runs in process."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from fer_pipeline.data.io.layout import LayoutError
from fer_pipeline.data.prep.prepare import prepare_dataset


def jpeg(seed: int, size: int = 48) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def rafdb(root: Path, lines: list[str] | str, images: dict[str, bytes], encoding: str = "utf-8",
          newline: str = "\n") -> Path:
    (root / "EmoLabel").mkdir(parents=True)
    (root / "Image/aligned").mkdir(parents=True)
    text = lines if isinstance(lines, str) else "".join(line + newline for line in lines)
    (root / "EmoLabel/list_patition_label.txt").write_bytes(text.encode(encoding))
    for name, data in images.items():
        (root / "Image/aligned" / name).write_bytes(data)
    return root


def good(n: int, start: int = 1) -> tuple[list[str], dict[str, bytes]]:
    lines = [f"train_{i:05d}.jpg {1 + i % 7}" for i in range(start, start + n)]
    return lines, {f"train_{i:05d}_aligned.jpg": jpeg(i) for i in range(start, start + n)}


def prepare(tmp_path, fmt, root, **kw):
    return prepare_dataset("ds", fmt, str(root), tmp_path / "out", 48, 90, 4, 1000, **kw)


def listed(root: Path) -> int:
    raw = (root / "EmoLabel/list_patition_label.txt").read_text(encoding="utf-8-sig")
    return sum(1 for line in raw.splitlines() if line.strip())


def lost(manifest: dict, listed_entries: int) -> int:
    return listed_entries - (manifest["kept"] + manifest["rejected"])


def rejects(tmp_path) -> list[dict]:
    return pq.read_table(tmp_path / "out/rejects.parquet").to_pylist()


# ------------------------------------------------------------------ images

@pytest.mark.fault("image: corrupted bytes")
@pytest.mark.parametrize("fmt_reason", [("corrupted", "corrupt_image"), ("truncated", "truncated_image"),
                                        ("zero-byte", "empty_file")])
def test_damaged_image_is_rejected_with_its_reason(tmp_path, fault, fmt_reason, capfd):
    kind, reason = fmt_reason
    fault.fault = f"image: {kind}"
    lines, images = good(4)
    whole = jpeg(99, size=96)
    damaged = {"corrupted": bytes(b ^ 0x5A for b in whole), "truncated": whole[: len(whole) // 2], "zero-byte": b""}
    lines.append("train_00099.jpg 4")
    images["train_00099_aligned.jpg"] = damaged[kind]
    root = rafdb(tmp_path / "rafdb", lines, images)
    fault.injected = True
    manifest = prepare(tmp_path, "rafdb_basic", root)
    fault.lost = lost(manifest, listed(root))
    assert (manifest["kept"], manifest["rejected_per_reason"]) == (4, {reason: 1})
    assert [(r["source"], r["reason"]) for r in rejects(tmp_path)] == [("Image/aligned/train_00099_aligned.jpg", reason)]
    assert "OpenCV(" not in capfd.readouterr().err, "a handled image prints no OpenCV assertion"
    assert fault.lost == 0


# ------------------------------------------------------------------ RecordIO

MAGIC = 0xCED7230A


def _record(label: float, payload: bytes, flag: int = 0, extra=()) -> bytes:
    body = struct.pack("<IfQQ", flag, label, 0, 0) + b"".join(struct.pack("<f", v) for v in extra) + payload
    return struct.pack("<II", MAGIC, len(body)) + body + b"\0" * (-len(body) % 4)


def ms1m(root: Path, payloads: list[bytes], cut: int = 0) -> Path:
    """train.rec / .idx / property with a header record and one image record per payload;
    `cut` bytes chopped off the end of train.rec (an interrupted copy)."""
    root.mkdir(parents=True)
    records = [_record(0.0, b"", flag=2, extra=(len(payloads) + 1.0, len(payloads) + 2.0))]
    records += [_record(float(k % 2), p) for k, p in enumerate(payloads)]
    offsets, pos = [], 0
    for r in records:
        offsets.append(pos)
        pos += len(r)
    data = b"".join(records)
    (root / "train.rec").write_bytes(data[: len(data) - cut])
    (root / "train.idx").write_text("".join(f"{k}\t{o}\n" for k, o in enumerate(offsets)))
    (root / "property").write_text("2,112,112\n")
    return root


@pytest.mark.fault("RecordIO: corrupted payload")
@pytest.mark.parametrize("kind", ["corrupted", "zero-byte", "truncated"])
def test_damaged_recordio_record_is_rejected(tmp_path, fault, kind, capfd):
    fault.fault = f"RecordIO: {kind} record"
    payloads = [jpeg(k) for k in range(4)]
    cut = 0
    if kind == "corrupted":
        payloads.append(bytes(b ^ 0x5A for b in jpeg(7, size=96)))
    elif kind == "zero-byte":
        payloads.append(b"")
    else:
        payloads.append(jpeg(7, size=96))
        cut = 300  # the file ends inside the last record
    root = ms1m(tmp_path / "ms1m", payloads, cut=cut)
    fault.injected = True
    manifest = prepare(tmp_path, "ms1m_recordio", root)
    reason = {"corrupted": "corrupt_image", "zero-byte": "empty_file", "truncated": "truncated_record"}[kind]
    fault.lost = len(payloads) - (manifest["kept"] + manifest["rejected"])
    assert (manifest["kept"], manifest["rejected_per_reason"]) == (4, {reason: 1})
    assert [r["source"] for r in rejects(tmp_path)] == ["train.rec#5"]
    assert "OpenCV(" not in capfd.readouterr().err
    assert fault.lost == 0


# ------------------------------------------------------------------ label lines

@pytest.mark.fault("label lines: malformed")
def test_malformed_label_lines_are_rejected_one_by_one(tmp_path, fault):
    lines, images = good(3)
    lines += ["train_00010.jpg", "train_00011.jpg 4 extra", "photo_00012.jpg 3", "train_00013.jpg happy"]
    root = rafdb(tmp_path / "rafdb", lines, images)
    fault.injected = True
    manifest = prepare(tmp_path, "rafdb_basic", root)
    fault.lost = lost(manifest, listed(root))
    assert manifest["kept"] == 3
    assert manifest["rejected_per_reason"] == {"malformed_line": 2, "unknown_split": 1, "unknown_label": 1}
    assert sorted(r["source"] for r in rejects(tmp_path)) == [f"EmoLabel/list_patition_label.txt:{n}" for n in (4, 5, 6, 7)]
    assert fault.lost == 0


@pytest.mark.fault("label lines: CRLF and BOM")
@pytest.mark.parametrize("style", ["crlf", "bom", "bom+crlf"])
def test_crlf_and_bom_label_files_read_like_plain_ones(tmp_path, fault, style):
    fault.fault = f"label lines: {style}"
    lines, images = good(4)
    reference = prepare_dataset("ds", "rafdb_basic", str(rafdb(tmp_path / "plain", lines, images)), tmp_path / "ref",
                                48, 90, 4, 1000)
    root = rafdb(tmp_path / "rafdb", lines, images, encoding="utf-8-sig" if "bom" in style else "utf-8",
                 newline="\r\n" if "crlf" in style else "\n")
    fault.injected = True
    manifest = prepare(tmp_path, "rafdb_basic", root)
    fault.lost = lost(manifest, listed(root))
    assert manifest["kept"] == 4 and manifest["rejected"] == 0
    assert manifest["content_digest"] == reference["content_digest"], "same records, labels and sources"
    assert fault.lost == 0


@pytest.mark.fault("label lines: BOM in Aff-Wild2 and AffectNet files")
def test_bom_in_affwild2_annotation_and_affectnet_csv(tmp_path, fault):
    header = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
    aw = tmp_path / "affwild2"
    (aw / "annotations/EXPR_Classification_Challenge/Train_Set").mkdir(parents=True)
    (aw / "annotations/EXPR_Classification_Challenge/Train_Set/v1.txt").write_bytes(
        f"\ufeff{header}\r\n4\r\n0\r\n".encode())
    (aw / "cropped_aligned/v1").mkdir(parents=True)
    for f in (1, 2):
        (aw / f"cropped_aligned/v1/{f:05d}.jpg").write_bytes(jpeg(f))
    an = tmp_path / "affectnet"
    (an / "Manually_Annotated_Images/1").mkdir(parents=True)
    (an / "Manually_Annotated_Images/1/a.jpg").write_bytes(jpeg(3, size=64))
    marks = ";".join(f"{10 + (k % 40)}.5" for k in range(136))
    (an / "training.csv").write_bytes(
        ("\ufeffsubDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,"
         f"arousal\r\n1/a.jpg,0,0,64,64,{marks},1,0.1,0.2\r\n").encode())
    fault.injected = True
    manifest = prepare_dataset("aw", "affwild2_expr", str(aw), tmp_path / "aw_out", 48, 90, 4, 1000)
    assert (manifest["kept"], manifest["rejected"]) == (2, 0)
    manifest2 = prepare_dataset("an", "affectnet_manual", str(an), tmp_path / "an_out", 48, 90, 4, 1000)
    assert manifest2["inputs"] == 1 and manifest2["rejected_per_reason"].get("bad_header") is None
    fault.lost = (2 - manifest["inputs"]) + (1 - manifest2["inputs"])
    assert fault.lost == 0


@pytest.mark.fault("label lines: duplicate")
def test_a_duplicate_label_line_is_rejected_not_trained_twice(tmp_path, fault):
    lines, images = good(3)
    lines += ["train_00002.jpg 2", "train_00003.jpg 5"]  # the same image again, once with another label
    root = rafdb(tmp_path / "rafdb", lines, images)
    fault.injected = True
    manifest = prepare(tmp_path, "rafdb_basic", root)
    fault.lost = lost(manifest, listed(root))
    assert manifest["kept"] == 3 and manifest["rejected_per_reason"] == {"duplicate_entry": 2}
    details = {r["source"]: r["detail"] for r in rejects(tmp_path)}
    assert details == {"EmoLabel/list_patition_label.txt:4": "'train_00002.jpg' is listed on line 2 already",
                       "EmoLabel/list_patition_label.txt:5": "'train_00003.jpg' is listed on line 3 already"}
    rows = pq.read_table(tmp_path / "out" / manifest["shards"][0]).to_pylist()
    assert [r["label"] for r in rows if r["source"].endswith("train_00002_aligned.jpg")] == ["disgust"], \
        "the first line's label (RAF-DB 3 = disgust, not the repeat's 2 = fear) is the one kept"
    # AffectNet: a valid row repeating an image of the same CSV.
    an = tmp_path / "affectnet"
    (an / "Manually_Annotated_Images/1").mkdir(parents=True)
    (an / "Manually_Annotated_Images/1/a.jpg").write_bytes(jpeg(3, size=64))
    marks = ";".join(f"{10 + (k % 40)}.5" for k in range(136))
    (an / "training.csv").write_text("".join(f"1/a.jpg,0,0,64,64,{marks},{code},0.1,0.2\n" for code in (1, 1, 2)))
    from fer_pipeline.data.io.affectnet import read_affectnet_manual

    items = list(read_affectnet_manual(an))
    assert [getattr(i, "reason", "record") for i in items] == ["record", "duplicate_entry", "duplicate_entry"]
    fault.lost += 3 - len(items)
    assert fault.lost == 0


@pytest.mark.fault("label lines: out-of-range label")
def test_out_of_range_labels_are_rejected(tmp_path, fault):
    lines, images = good(2)
    lines += ["train_00020.jpg 0", "train_00021.jpg 8", "train_00022.jpg -1"]
    images.update({f"train_000{i}_aligned.jpg": jpeg(i) for i in (20, 21, 22)})
    root = rafdb(tmp_path / "rafdb", lines, images)
    fault.injected = True
    manifest = prepare(tmp_path, "rafdb_basic", root)
    fault.lost = lost(manifest, listed(root))
    assert manifest["kept"] == 2 and manifest["rejected_per_reason"] == {"unknown_label": 3}
    assert fault.lost == 0


# ------------------------------------------------------------------ missing and extra files

@pytest.mark.fault("files: listed but missing")
def test_a_missing_file_is_a_reject_and_many_fail_the_stage(tmp_path, fault):
    from fer_pipeline.data.prep.prepare import PrepareError

    lines, images = good(4)
    del images["train_00002_aligned.jpg"]
    root = rafdb(tmp_path / "rafdb", lines, images)
    fault.injected = True
    manifest = prepare(tmp_path, "rafdb_basic", root)
    fault.lost = lost(manifest, listed(root))
    assert manifest["kept"] == 3 and manifest["rejected_per_reason"] == {"missing_file": 1}
    for name in ("train_00001_aligned.jpg", "train_00003_aligned.jpg"):
        (root / "Image/aligned" / name).unlink()
    with pytest.raises(PrepareError, match="3 of 4 inputs name files that are not found"):
        prepare_dataset("ds", "rafdb_basic", str(root), tmp_path / "out2", 48, 90, 4, 1000)
    assert not (tmp_path / "out2").exists()
    assert fault.lost == 0


@pytest.mark.fault("files: extra files and folders")
def test_extra_files_are_ignored_by_rule_and_an_extra_folder_is_named(tmp_path, fault):
    lines, images = good(3)
    images["train_00050_aligned.jpg"] = jpeg(50)  # on disk, in no list line
    root = rafdb(tmp_path / "rafdb", lines, images)
    (root / "Image/aligned/.DS_Store").write_bytes(b"x")
    (root / "Image/aligned/Thumbs.db").write_bytes(b"x")
    (root / "README.txt").write_text("terms")
    fault.injected = True
    manifest = prepare(tmp_path, "rafdb_basic", root)
    fault.lost = lost(manifest, listed(root))
    assert manifest["kept"] == 3 and manifest["rejected"] == 0
    assert manifest["ignored_per_rule"] == {"documentation": 1, "hidden": 1, "os_metadata": 1, "unlisted_image": 1}
    (root / "more_faces").mkdir()
    (root / "more_faces/x.jpg").write_bytes(jpeg(1))
    with pytest.raises(LayoutError, match=r"folder .*more_faces is not part of any layout"):
        prepare_dataset("ds", "rafdb_basic", str(root), tmp_path / "out2", 48, 90, 4, 1000)
    assert fault.lost == 0
