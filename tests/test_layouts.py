"""The readers on the layouts users have (docs/datasets.md): release names and nesting,
case differences, train-only copies, symlinked folders, empty label files, ignore rules.

Every fixture is written here by hand (tiny cv2 JPEGs, label files as text), not with
FaceSynth's writers, so the readers are checked against the formats as documented.
"""

import csv
import struct
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from fer_pipeline.common import params as params_mod
from fer_pipeline.data.io.affectnet import read_affectnet_manual
from fer_pipeline.data.io.affwild2 import read_affwild2_expr
from fer_pipeline.data.io.layout import LayoutError, ReadOptions, Report
from fer_pipeline.data.io.records import RawRecord, Reject
from fer_pipeline.data.io.webface import read_webface_folders
from fer_pipeline.data.prep.prepare import PrepareError, prepare_dataset

AFFWILD2_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"]


def jpeg(seed: int, size: int = 64) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def prepare(tmp_path, fmt, root, options=None, out="out", **kw):
    return prepare_dataset("ds", fmt, str(root), tmp_path / out, 64, 90, 16, 1000, options=options, **kw)


def split_items(items):
    items = list(items)
    records = [i for i in items if isinstance(i, RawRecord)]
    rejects = [i for i in items if isinstance(i, Reject)]
    return records, rejects


# ------------------------------------------------------------------ WebFace

def test_webface_shard_folders_as_released(tmp_path):
    root = tmp_path / "WebFace42M"
    layout = {"0": {"0_0_0000000": 3, "0_0_0000001": 2}, "1": {"1_0_0000005": 4}}
    for shard, identities in layout.items():
        for identity, n in identities.items():
            for k in range(n):
                write(root / shard / identity / f"{k}_0.jpg", jpeg(hash((identity, k)) % 1000))
    write(root / ".DS_Store", b"\0\0\0\1Bud1")
    write(root / "0/.DS_Store", b"\0\0\0\1Bud1")
    write(root / "1/1_0_0000005/.DS_Store", b"\0\0\0\1Bud1")
    write(root / "1/1_0_0000005/Thumbs.db", b"thumbs")
    manifest = prepare(tmp_path, "webface_folders", root)
    assert manifest["inputs"] == 9 and manifest["kept"] == 9 and manifest["rejected"] == 0
    assert manifest["ignored_per_rule"] == {"hidden": 3, "os_metadata": 1}
    assert manifest["layout"]["layout"] == "shards"
    rows = pq.read_table(tmp_path / "out" / manifest["shards"][0]).to_pylist()
    assert sorted({(r["identity"], r["source"].split("/")[0]) for r in rows}) == [
        ("0_0_0000000", "0"), ("0_0_0000001", "0"), ("1_0_0000005", "1")]


def test_webface_flat_ds_store_is_ignored_not_rejected(tmp_path):
    root = tmp_path / "webface"
    for identity in ("0000000", "0000001"):
        for k in range(2):
            write(root / identity / f"{k}.jpg", jpeg(k))
    write(root / ".DS_Store", b"x")
    write(root / "0000001/.DS_Store", b"x")
    manifest = prepare(tmp_path, "webface_folders", root)
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (4, 4, 0)
    assert manifest["ignored_per_rule"] == {"hidden": 2}
    assert manifest["layout"]["layout"] == "identities"


def test_webface_root_mixing_identities_and_shards_is_an_error_naming_the_folder(tmp_path):
    root = tmp_path / "webface"
    write(root / "0000000/0.jpg", jpeg(0))
    write(root / "shard9/0000001/0.jpg", jpeg(1))
    with pytest.raises(LayoutError, match="shard9"):
        list(read_webface_folders(root))
    with pytest.raises(LayoutError, match="0000000"):
        list(read_webface_folders(root, options=ReadOptions(layout="shards")))


def test_empty_webface_root_fails_prepare(tmp_path):
    (tmp_path / "webface").mkdir()
    write(tmp_path / "webface/.DS_Store", b"x")
    with pytest.raises(PrepareError, match=r"0 inputs read from .*webface"):
        prepare(tmp_path, "webface_folders", tmp_path / "webface")
    assert not (tmp_path / "out").exists(), "a failed prepare leaves no output"
    manifest = prepare(tmp_path, "webface_folders", tmp_path / "webface", ReadOptions(allow_empty=True))
    assert manifest["inputs"] == 0 and manifest["ignored_per_rule"] == {"hidden": 1}


# ------------------------------------------------------------------ symlinks

LANDMARKS = ";".join(f"{10 + (k % 40)}.5" for k in range(136))  # 68 finite points


def _affectnet_rows(n, start=0, code=1):
    return [[f"{100 + i}/img{i}.jpg", "0", "0", "64", "64", LANDMARKS, str(code), "0.1", "0.2"]
            for i in range(start, start + n)]


def _write_affectnet(folder: Path, name: str, rows, header=True):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "w", newline="") as fh:
        writer = csv.writer(fh)
        if header:
            writer.writerow(AFFECTNET_HEADER)
        writer.writerows(rows)


def _affectnet_images(images: Path, n, start=0):
    for i in range(start, start + n):
        write(images / f"{100 + i}/img{i}.jpg", jpeg(i))


def test_symlinked_folder_inside_the_root_is_followed_unless_forbidden(tmp_path):
    # Licensed images on "another disk", linked into the dataset root.
    elsewhere = tmp_path / "other_disk/affectnet_images"
    _affectnet_images(elsewhere, 3)
    root = tmp_path / "affectnet"
    _write_affectnet(root, "training.csv", _affectnet_rows(3))
    (root / "Manually_Annotated_Images").symlink_to(elsewhere, target_is_directory=True)

    records, rejects = split_items(read_affectnet_manual(root))
    assert not rejects and [r.source for r in records] == [
        f"Manually_Annotated_Images/{100 + i}/img{i}.jpg" for i in range(3)]
    assert records[1].load() == jpeg(1), "read through the link"

    records, rejects = split_items(read_affectnet_manual(root, options=ReadOptions(follow_symlinks=False)))
    assert [r.reason for r in rejects] == ["symlink_not_followed"] * 3
    assert "Manually_Annotated_Images" in rejects[0].detail and "follow_symlinks" in rejects[0].detail


def test_symlinked_video_and_identity_folders(tmp_path):
    elsewhere = tmp_path / "disk2"
    for f in (1, 2):
        write(elsewhere / "video1" / f"{f:05d}.jpg", jpeg(f))
    root = tmp_path / "affwild2"
    write(root / "annotations/EXPR_Classification_Challenge/Train_Set/video1.txt", f"{AFFWILD2_HEADER}\n4\n0\n")
    (root / "cropped_aligned").mkdir(parents=True)
    (root / "cropped_aligned/video1").symlink_to(elsewhere / "video1", target_is_directory=True)
    manifest = prepare(tmp_path, "affwild2_expr", root)
    assert manifest["kept"] == 2 and manifest["rejected"] == 0
    with pytest.raises(PrepareError, match="0 of 2 inputs kept"):
        prepare(tmp_path, "affwild2_expr", root, ReadOptions(follow_symlinks=False))
    _, rejects = split_items(read_affwild2_expr(root, options=ReadOptions(follow_symlinks=False)))
    assert [(r.reason, r.source.rsplit("/", 1)[-1]) for r in rejects] == [
        ("symlink_not_followed", "video1.txt:2"), ("symlink_not_followed", "video1.txt:3")]

    webface = tmp_path / "webface"
    write(webface / "0000000/0.jpg", jpeg(0))
    write(elsewhere / "ident/0.jpg", jpeg(1))
    (webface / "0000001").symlink_to(elsewhere / "ident", target_is_directory=True)
    records, rejects = split_items(read_webface_folders(webface))
    assert [r.identity for r in records] == ["0000000", "0000001"] and not rejects
    records, rejects = split_items(read_webface_folders(webface, options=ReadOptions(follow_symlinks=False)))
    assert [r.identity for r in records] == ["0000000"]
    assert [(r.source, r.reason) for r in rejects] == [("0000001", "symlink_not_followed")]


def test_dotdot_and_absolute_paths_in_a_label_file_are_rejected(tmp_path):
    root = tmp_path / "affectnet"
    write(tmp_path / "outside.jpg", jpeg(9))  # exists: the rule is lexical, not "file not found"
    _affectnet_images(root / "Manually_Annotated_Images", 1)
    rows = _affectnet_rows(1) + [
        ["../../outside.jpg", "0", "0", "64", "64", LANDMARKS, "1", "0", "0"],
        ["101/../../../outside.jpg", "0", "0", "64", "64", LANDMARKS, "1", "0", "0"],
        [str(tmp_path / "outside.jpg"), "0", "0", "64", "64", LANDMARKS, "1", "0", "0"],
    ]
    _write_affectnet(root, "training.csv", rows)
    records, rejects = split_items(read_affectnet_manual(root))
    assert len(records) == 1 and [r.reason for r in rejects] == ["path_outside_root"] * 3
    assert [r.source for r in rejects] == ["training.csv:3", "training.csv:4", "training.csv:5"]
    assert all("outside.jpg" in r.detail for r in rejects)


# ------------------------------------------------------------------ Aff-Wild2

def _affwild2(root: Path, annotations: str, sets=("Train_Set", "Validation_Set")):
    videos = {"video1": ("Train_Set", ["4", "0", "2"]), "video2_left": ("Validation_Set", ["1", "6"]),
              "video3": ("Train_Set", ["5"])}
    for video, (set_dir, labels) in videos.items():
        for f in range(1, len(labels) + 1):
            write(root / "cropped_aligned" / video / f"{f:05d}.jpg", jpeg(f))
        if set_dir in sets or set_dir.lower() in sets:
            name = next(s for s in sets if s.lower() == set_dir.lower())
            write(root / annotations / name / f"{video}.txt", AFFWILD2_HEADER + "\n" + "\n".join(labels) + "\n")
    return root


@pytest.mark.parametrize("annotations", [
    "annotations/EXPR_Classification_Challenge",
    "Third ABAW Annotations/EXPR_Classification_Challenge",
    "5th_ABAW_Annotations/EXPR_Classification_Challenge",
    "6th ABAW Annotations/EXPR_Recognition_Challenge",
    "annotations/expr_classification_challenge",
])
def test_affwild2_each_abaw_annotation_folder(tmp_path, annotations):
    sets = ("train_set", "validation_set") if annotations.islower() else ("Train_Set", "Validation_Set")
    root = _affwild2(tmp_path / "Aff-Wild2", annotations, sets)
    write(root / annotations.split("/")[0] / "VA_Estimation_Challenge/Train_Set/video1.txt", "valence,arousal\n")
    manifest = prepare(tmp_path, "affwild2_expr", root)
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (6, 6, 0)
    assert manifest["kept_per_split"] == {"test": 2, "train": 4}
    assert manifest["layout"]["annotations"] == annotations


def test_affwild2_train_only_copy_counts_the_other_videos_as_ignored(tmp_path):
    root = _affwild2(tmp_path / "affwild2", "6th ABAW Annotations/EXPR_Recognition_Challenge", ("Train_Set",))
    manifest = prepare(tmp_path, "affwild2_expr", root)
    assert (manifest["inputs"], manifest["kept"]) == (4, 4)
    assert manifest["kept_per_split"] == {"train": 4}
    assert manifest["layout"]["splits_missing"] == ["test"]
    assert manifest["ignored_per_rule"] == {"unannotated_video": 1}  # video2_left's frames, counted
    with pytest.raises(FileNotFoundError, match="Validation_Set"):
        list(read_affwild2_expr(root, options=ReadOptions(splits=("train", "test"))))


def test_affwild2_two_annotation_releases_need_the_params_key(tmp_path):
    root = _affwild2(tmp_path / "affwild2", "Third ABAW Annotations/EXPR_Classification_Challenge")
    write(root / "6th ABAW Annotations/EXPR_Recognition_Challenge/Train_Set/video1.txt",
          AFFWILD2_HEADER + "\n4\n4\n4\n")
    with pytest.raises(LayoutError, match="annotations_dir"):
        list(read_affwild2_expr(root))
    options = ReadOptions(annotations_dir="6th ABAW Annotations/EXPR_Recognition_Challenge")
    records, rejects = split_items(read_affwild2_expr(root, options=options))
    assert [r.label for r in records] == ["happiness"] * 3 and not rejects


def test_affwild2_bad_header_rejects_each_line_and_frames_count(tmp_path):
    root = _affwild2(tmp_path / "affwild2", "annotations/EXPR_Classification_Challenge")
    write(root / "annotations/EXPR_Classification_Challenge/Train_Set/video1.txt", "Happy,Sad\n4\n0\n")
    write(root / "cropped_aligned/video1/frame_x.jpg", jpeg(3))  # an image that is not a frame name
    manifest = prepare(tmp_path, "affwild2_expr", root)
    # video1: 2 lines (bad header) + frame 3 past them + one non-frame image; others: 3 kept
    assert manifest["rejected_per_reason"] == {"bad_header": 2, "not_a_frame": 1, "unlabeled_frame": 1}
    assert manifest["inputs"] == manifest["kept"] + manifest["rejected"] == 3 + 4


# ------------------------------------------------------------------ AffectNet

def test_affectnet_train_only_copy(tmp_path):
    root = tmp_path / "affectnet"
    _affectnet_images(root / "Manually_Annotated_Images", 2)
    _write_affectnet(root, "training.csv", _affectnet_rows(2))
    items = list(read_affectnet_manual(root))
    assert len(items) == 2 and {i.split for i in items} == {"train"}
    with pytest.raises(FileNotFoundError, match="validation.csv"):
        list(read_affectnet_manual(root, options=ReadOptions(splits=("train", "test"))))


def test_affectnet_release_layout_file_lists_and_nested_images(tmp_path):
    root = tmp_path / "AffectNet"
    _affectnet_images(root / "Manually_Annotated/Manually_Annotated_Images", 4)
    _write_affectnet(root / "Manually_Annotated_file_lists", "training.csv", _affectnet_rows(2))
    _write_affectnet(root / "Manually_Annotated_file_lists", "validation.csv", _affectnet_rows(1, start=2), header=False)
    write(root / "Automatically_Annotated/Automatically_annotated_file_list/automatically_annotated.csv", "x\n")
    report = Report()
    items = list(read_affectnet_manual(root, report=report))
    assert [i.source for i in items] == [f"Manually_Annotated/Manually_Annotated_Images/{100 + i}/img{i}.jpg"
                                         for i in range(3)]
    assert [i.split for i in items] == ["train", "train", "test"]
    assert report.listed == 3
    # img3 is on disk but in no CSV; the automatically annotated part is another format.
    assert report.ignored == {"unlisted_image": 1, "other_release_part": 1}


# ------------------------------------------------------------------ RAF-DB

def _rafdb(base: Path, lines, images, image_dir="Image/aligned", emolabel="EmoLabel"):
    write(base / emolabel / "list_patition_label.txt", "".join(line + "\n" for line in lines))
    for name in images:
        write(base / image_dir / name, jpeg(len(name)))


def test_rafdb_release_folder_with_basic_and_compound_lower_case_image(tmp_path):
    root = tmp_path / "RAF-DB"
    _rafdb(root / "basic", ["train_00001.jpg 4", "test_0001.jpg 7"],
           ["train_00001_aligned.jpg", "test_0001_aligned.jpg", "train_00002_aligned.jpg"], image_dir="image/aligned")
    write(root / "basic/image/original/train_00001.jpg", jpeg(1))
    write(root / "basic/Annotation/manual/train_00001_manu_attri.txt", "1 2\n")
    write(root / "basic/image/aligned/.DS_Store", b"x")
    write(root / "compound/EmoLabel/list_patition_label.txt", "train_00001.jpg 1\n")
    manifest = prepare(tmp_path, "rafdb_basic", root)
    assert (manifest["inputs"], manifest["kept"], manifest["rejected"]) == (2, 2, 0)
    assert manifest["layout"]["images"] == "basic/image/aligned"
    assert manifest["ignored_per_rule"] == {"hidden": 1, "other_release_part": 3, "unlisted_image": 1}


def test_unknown_folder_is_an_error_naming_it_unless_ignored(tmp_path):
    root = tmp_path / "rafdb"
    _rafdb(root, ["train_00001.jpg 4"], ["train_00001_aligned.jpg"])
    write(root / "my_crops/train_00001.jpg", jpeg(0))
    with pytest.raises(LayoutError, match=r"my_crops.*datasets\.ds\.ignore"):
        prepare(tmp_path, "rafdb_basic", root)
    manifest = prepare(tmp_path, "rafdb_basic", root, ReadOptions(ignore=("my_crops",)))
    assert manifest["kept"] == 1 and manifest["ignored_per_rule"] == {"params_ignore": 1}


def test_empty_label_files_fail_prepare_with_a_message(tmp_path):
    rafdb = tmp_path / "rafdb"
    _rafdb(rafdb, [], [])
    (rafdb / "Image/aligned").mkdir(parents=True, exist_ok=True)
    with pytest.raises(PrepareError, match="list_patition_label.txt.*list no entries"):
        prepare(tmp_path, "rafdb_basic", rafdb)

    affectnet = tmp_path / "affectnet"
    _write_affectnet(affectnet, "training.csv", [])
    _write_affectnet(affectnet, "validation.csv", [])
    with pytest.raises(PrepareError, match="training.csv.*list no entries"):
        prepare(tmp_path, "affectnet_manual", affectnet)

    ms1m = tmp_path / "ms1m"
    write(ms1m / "train.rec", b"")
    write(ms1m / "train.idx", "")
    write(ms1m / "property", "0,112,112\n")
    with pytest.raises(PrepareError, match="train.idx.*list no entries"):
        prepare(tmp_path, "ms1m_recordio", ms1m)
    assert prepare(tmp_path, "ms1m_recordio", ms1m, ReadOptions(allow_empty=True))["inputs"] == 0


def test_most_listed_files_missing_fails_prepare(tmp_path):
    root = tmp_path / "rafdb"
    lines = [f"train_{i:05d}.jpg 4" for i in range(1, 11)]
    _rafdb(root, lines, ["train_00001_aligned.jpg", "train_00002_aligned.jpg"])
    with pytest.raises(PrepareError, match="8 of 10 inputs name files that are not found"):
        prepare(tmp_path, "rafdb_basic", root)
    manifest = prepare(tmp_path, "rafdb_basic", root, ReadOptions(max_missing_fraction=1.0))
    assert manifest["kept"] == 2 and manifest["rejected_per_reason"] == {"missing_file": 8}


# ------------------------------------------------------------------ MS1M

def _record(label: float, payload: bytes, flag: int = 0, extra=()) -> bytes:
    body = struct.pack("<IfQQ", flag, label, 0, 0) + b"".join(struct.pack("<f", v) for v in extra) + payload
    return struct.pack("<II", 0xCED7230A, len(body)) + body + b"\0" * (-len(body) % 4)


def test_ms1m_inside_the_release_folder_with_verification_sets(tmp_path):
    base = tmp_path / "ms1m/faces_emore"
    base.mkdir(parents=True)
    records = [_record(0.0, b"", flag=2, extra=(3.0, 4.0)), _record(0.0, jpeg(1)), _record(1.0, jpeg(2))]
    offsets, pos = [], 0
    for r in records:
        offsets.append(pos)
        pos += len(r)
    write(base / "train.rec", b"".join(records))
    write(base / "train.idx", "".join(f"{k}\t{o}\n" for k, o in enumerate(offsets)))
    write(base / "property", "2,112,112\n")
    write(base / "lfw.bin", b"\0" * 16)
    manifest = prepare(tmp_path, "ms1m_recordio", tmp_path / "ms1m")
    assert (manifest["inputs"], manifest["kept"]) == (2, 2)
    assert manifest["layout"] == {"inside": "faces_emore", "files": "faces_emore/train.rec"}
    assert manifest["ignored_per_rule"] == {"not_data": 1}


# ------------------------------------------------------------------ roots and params

def test_relative_root_is_read_from_the_params_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    _rafdb(project / "data/raw/rafdb", ["train_00001.jpg 4"], ["train_00001_aligned.jpg"])
    monkeypatch.chdir(tmp_path)  # not the project
    manifest = prepare(tmp_path, "rafdb_basic", "data/raw/rafdb", base_dir=project)
    assert manifest["kept"] == 1 and manifest["root"] == "data/raw/rafdb", "the manifest keeps the root as written"
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "data/raw/rafdb")):
        prepare(tmp_path, "rafdb_basic", "data/raw/rafdb")  # no base: the working directory, named absolute


def test_prepare_job_resolves_the_root_against_its_params_file(tmp_path, monkeypatch):
    from fer_pipeline.jobs import prepare as job_module

    project = tmp_path / "project"
    _rafdb(project / "data/raw/rafdb", ["train_00001.jpg 4", "test_0001.jpg 1"],
           ["train_00001_aligned.jpg", "test_0001_aligned.jpg"])
    params = params_mod.load(Path(__file__).resolve().parents[1] / "params.yaml")
    params["datasets"] = {"rafdb": {"format": "rafdb_basic", "root": "data/raw/rafdb", "parts": 1,
                                    "follow_symlinks": False}}
    logged = {}
    job = SimpleNamespace(
        params=params, args=SimpleNamespace(params=str(project / "params.yaml")),
        inst=SimpleNamespace(values={"dataset": "rafdb", "index": "0", "root": "data/raw/rafdb"},
                             outs=[str(tmp_path / "out/rafdb/0")]),
        tracker=SimpleNamespace(log_metrics=logged.update, log_artifact=lambda path: None))
    monkeypatch.chdir(tmp_path)
    job_module.run(job)
    assert logged == {"inputs": 2, "kept": 2, "rejected": 0}


def test_params_reader_keys_are_checked_per_format():
    params = params_mod.load(Path(__file__).resolve().parents[1] / "params.yaml")
    params["datasets"]["affwild2"].update(annotations_dir="6th ABAW Annotations/EXPR_Recognition_Challenge",
                                          splits=["train"], follow_symlinks=False, ignore=["videos"])
    params["datasets"]["webface"]["layout"] = "shards"
    params_mod.validate(params)
    assert ReadOptions.from_params(params["datasets"]["affwild2"]).splits == ("train",)
    params["datasets"]["rafdb"]["annotations_dir"] = "x"
    with pytest.raises(params_mod.ParamsError, match=r"datasets\.rafdb\.annotations_dir' applies to format affwild2_expr"):
        params_mod.validate(params)
    del params["datasets"]["rafdb"]["annotations_dir"]
    params["datasets"]["webface"]["layout"] = "flat"
    with pytest.raises(params_mod.ParamsError, match=r"datasets\.webface\.layout"):
        params_mod.validate(params)
