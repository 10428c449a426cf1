"""AffectNet (Manually_Annotated) and Aff-Wild2 EXPR readers on small fixtures in the real
on-disk formats, with injected faults; plus 5-point alignment."""

import csv
import json
import warnings

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from fer_pipeline.data.io.affectnet import read_affectnet_manual
from fer_pipeline.data.io.affwild2 import read_affwild2_expr
from fer_pipeline.data.io.readers import reader_for
from fer_pipeline.data.prep.align import BadLandmarksError, align_face, template_landmarks
from fer_pipeline.data.prep.prepare import prepare_dataset

AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"]
AFFWILD2_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"


# ---------------------------------------------------------------- synthetic faces

def canonical_face(size=112):
    """A face-like drawing whose eyes, nose tip and mouth corners sit on the template."""
    t = template_landmarks(size)
    img = np.full((size, size, 3), 40, np.uint8)
    cv2.ellipse(img, (size // 2, int(size * 0.56)), (int(size * 0.36), int(size * 0.47)), 0, 0, 360,
                (150, 180, 210), -1)
    for x, y in t[:2]:
        cv2.circle(img, (round(x), round(y)), 6, (20, 20, 20), -1)
    cv2.circle(img, (round(t[2, 0]), round(t[2, 1])), 4, (60, 60, 160), -1)
    cv2.line(img, tuple(np.round(t[3]).astype(int)), tuple(np.round(t[4]).astype(int)), (30, 30, 120), 3)
    return img


def landmarks68_canonical(size=112):
    """68 iBUG points whose 5-point summary is exactly the template: a hexagon around
    each eye centre (mean = centre), the nose tip at 30, the mouth corners at 48/54."""
    t = template_landmarks(size).astype(np.float64)
    pts = np.zeros((68, 2))
    pts[:17] = np.stack([np.linspace(10, size - 10, 17), np.full(17, size * 0.6)], 1)  # jaw, anywhere
    angles = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    ring = np.stack([5 * np.cos(angles), 3 * np.sin(angles)], 1)
    pts[36:42] = t[0] + ring
    pts[42:48] = t[1] + ring
    pts[27:36] = t[2] + [0, -3]
    pts[30] = t[2]
    pts[48:68] = (t[3] + t[4]) / 2
    pts[48], pts[54] = t[3], t[4]
    return pts


def similarity(angle_deg, scale, shift):
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, np.asarray(shift, float).reshape(2, 1)])


def apply(matrix, pts):
    return pts @ matrix[:, :2].T + matrix[:, 2]


def jpeg(img):
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def photo_with_face(angle_deg=25.0, scale=1.3, shift=(120.0, 40.0)):
    """A 300x260 photo with the canonical face placed by a known similarity; its 68 points."""
    matrix = similarity(angle_deg, scale, shift)
    photo = cv2.warpAffine(canonical_face(), matrix, (300, 260), borderValue=(90, 120, 60))
    return photo, apply(matrix, landmarks68_canonical())


# ---------------------------------------------------------------- AffectNet

def lm_text(pts):
    return ";".join(f"{v:.3f}" for v in np.asarray(pts).reshape(-1))


def affectnet_row(path, code, landmarks="", box=("10", "20", "150", "150")):
    return [path, *box, landmarks, str(code), "0.5", "-0.25"]


@pytest.fixture
def affectnet_root(tmp_path):
    root = tmp_path / "affectnet"
    images = root / "Manually_Annotated_Images"
    (images / "101").mkdir(parents=True)
    (images / "102").mkdir(parents=True)
    photo, pts = photo_with_face()
    good = lm_text(pts)
    (images / "101/face.jpg").write_bytes(jpeg(photo))
    (images / "101/flat.jpg").write_bytes(jpeg(photo))  # its own file: a repeat of face.jpg is a duplicate_entry
    photo2, pts2 = photo_with_face(-10.0, 0.9, (60.0, 70.0))
    (images / "102/other.png").write_bytes(cv2.imencode(".png", photo2)[1].tobytes())
    (images / "101/corrupt.jpg").write_bytes(b"\xff\xd8 not a jpeg at all")
    train = [
        affectnet_row("101/face.jpg", 1, good),                          # kept: happiness
        affectnet_row("101/face.jpg", 8, good),                          # None
        affectnet_row("101/face.jpg", 9, good),                          # Uncertain
        affectnet_row("101/face.jpg", 10, ""),                           # No-Face (no landmarks either)
        affectnet_row("../../etc/passwd", 0, good),                      # escapes the root
        affectnet_row("101/face.jpg", 0, lm_text(np.arange(10))),        # 10 numbers, not 136
        affectnet_row("101/absent.jpg", 2, good),                        # missing image
        affectnet_row("101/corrupt.jpg", 3, good),                       # corrupt image
        affectnet_row("101/flat.jpg", 4, lm_text(np.full(136, 50.0))),   # degenerate: all points equal
        ["101/face.jpg", "10", "20", good, "1"],                         # wrong column count
        affectnet_row("101/face.jpg", 1, good, box=("ten", "20", "150", "150")),  # non-numeric
        affectnet_row("101/face.jpg", 12, good),                         # unknown code
        affectnet_row("102/other.png", 7, lm_text(pts2)),                # kept: contempt
    ]
    validation = [affectnet_row("102/other.png", 0, lm_text(pts2))]      # kept: test, neutral
    for name, rows in (("training.csv", train), ("validation.csv", validation)):
        with open(root / name, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(AFFECTNET_HEADER)
            writer.writerows(rows)
    return root


def test_affectnet_prepare_aligns_and_ledgers_every_row(affectnet_root, tmp_path):
    out = tmp_path / "prepared/affectnet"
    manifest = prepare_dataset("affectnet", "affectnet_manual", str(affectnet_root), out, 112, 95, 4, 100)
    assert manifest["inputs"] == 14
    assert manifest["kept"] + manifest["rejected"] == manifest["inputs"]
    assert manifest["kept_per_split_class"] == {"test": {"neutral": 1},
                                                "train": {"contempt": 1, "happiness": 1}}
    assert manifest["rejected_per_reason"] == {"bad_landmarks": 2, "corrupt_image": 1, "malformed_line": 2,
                                               "missing_file": 1, "non_expression_label": 3,
                                               "path_outside_root": 1, "unknown_label": 1}
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    non_expr = [r for r in rejects if r["reason"] == "non_expression_label"]
    assert [r["source"] for r in non_expr] == ["training.csv:3", "training.csv:4", "training.csv:5"]
    assert ["None" in non_expr[0]["detail"], "Uncertain" in non_expr[1]["detail"],
            "No-Face" in non_expr[2]["detail"]] == [True] * 3
    by_source = {r["source"]: r for r in rejects}
    assert by_source["training.csv:6"]["reason"] == "path_outside_root"
    assert "passwd" in by_source["training.csv:6"]["detail"]
    assert by_source["training.csv:7"]["reason"] == "bad_landmarks"
    assert by_source["Manually_Annotated_Images/101/absent.jpg"]["reason"] == "missing_file"
    assert by_source["Manually_Annotated_Images/101/corrupt.jpg"]["reason"] == "corrupt_image"
    assert by_source["Manually_Annotated_Images/101/flat.jpg"]["reason"] == "bad_landmarks"  # degenerate
    assert by_source["training.csv:11"]["reason"] == "malformed_line"
    assert by_source["training.csv:12"]["reason"] == "malformed_line"
    assert by_source["training.csv:13"]["reason"] == "unknown_label"

    rows = pq.read_table(out / "shard-00000.parquet").to_pylist()
    assert [(r["split"], r["label"]) for r in rows] == [("train", "happiness"), ("train", "contempt"),
                                                        ("test", "neutral")]
    template = template_landmarks(112)
    reference = canonical_face()
    for row in rows:
        assert row["video"] is None and row["frame"] is None
        assert np.abs(np.reshape(row["landmarks5"], (5, 2)) - template).max() < 1.5
        crop = cv2.imdecode(np.frombuffer(row["image"], np.uint8), cv2.IMREAD_COLOR)
        assert crop.shape == (112, 112, 3)
        # The warp runs the right way: the crop shows the drawn face, upright, on the template.
        inner = (slice(30, 100), slice(25, 87))
        assert np.abs(crop[inner].astype(int) - reference[inner].astype(int)).mean() < 12
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_affectnet_headerless_validation_and_missing_csv(affectnet_root):
    lines = (affectnet_root / "validation.csv").read_text().splitlines()
    (affectnet_root / "validation.csv").write_text("\n".join(lines[1:]) + "\n")  # as some releases ship it
    items = list(read_affectnet_manual(affectnet_root))
    test_items = [i for i in items if i.split == "test"]
    assert len(test_items) == 1 and test_items[0].label == "neutral"
    assert len(test_items[0].landmarks5) == 5
    (affectnet_root / "validation.csv").unlink()  # a train-only copy: read as such
    assert {i.split for i in read_affectnet_manual(affectnet_root)} == {"train"}
    (affectnet_root / "training.csv").unlink()
    with pytest.raises(FileNotFoundError, match="training,validation"):
        list(read_affectnet_manual(affectnet_root))


def test_affectnet_five_points_from_68(tmp_path):
    _, pts = photo_with_face()
    for name, rows in (("training.csv", [affectnet_row("a.jpg", 1, lm_text(pts))]), ("validation.csv", [])):
        with open(tmp_path / name, "w", newline="") as fh:
            csv.writer(fh).writerows([AFFECTNET_HEADER] + rows)
    (record,) = list(read_affectnet_manual(tmp_path))
    expected = apply(similarity(25.0, 1.3, (120.0, 40.0)), template_landmarks(112).astype(np.float64))
    assert np.abs(np.asarray(record.landmarks5) - expected).max() < 0.01  # full-photo pixels


# ---------------------------------------------------------------- Aff-Wild2

def frame_image(video_no, frame):
    img = canonical_face()
    cv2.putText(img, f"{video_no}:{frame}", (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    return img


@pytest.fixture
def affwild2_root(tmp_path):
    root = tmp_path / "affwild2"
    ann = root / "annotations/EXPR_Classification_Challenge"
    (ann / "Train_Set").mkdir(parents=True)
    (ann / "Validation_Set").mkdir(parents=True)
    videos = {
        # (set, labels, frames on disk)
        "video1": ("Train_Set", ["4", "0", "-1", "2", "abc", "6"], [1, 2, 3, 5, 6, 7, 8]),
        "video7_left": ("Validation_Set", ["7", "1", "9"], [1, 2, 3]),
        "video9": ("Train_Set", ["0"], None),  # annotated, but its frames were never extracted
    }
    for no, (video, (set_dir, labels, frames)) in enumerate(videos.items()):
        (ann / set_dir / f"{video}.txt").write_text(AFFWILD2_HEADER + "\n" + "\n".join(labels) + "\n")
        if frames is None:
            continue
        (root / "cropped_aligned" / video).mkdir(parents=True)
        for f in frames:
            (root / "cropped_aligned" / video / f"{f:05d}.jpg").write_bytes(jpeg(frame_image(no, f)))
    (root / "cropped_aligned/video1/notes.txt").write_text("not a frame")
    return root


def test_affwild2_prepare_keeps_video_and_frame(affwild2_root, tmp_path):
    out = tmp_path / "prepared/affwild2"
    manifest = prepare_dataset("affwild2", "affwild2_expr", str(affwild2_root), out, 112, 90, 4, 100)
    assert manifest["inputs"] == 12  # 10 label lines + 2 unlabelled frames on disk
    assert manifest["kept"] + manifest["rejected"] == manifest["inputs"]
    assert manifest["kept"] == 5
    assert manifest["rejected_per_reason"] == {"invalid_frame": 1, "malformed_line": 1, "missing_file": 1,
                                               "no_face": 1, "unknown_label": 1, "unlabeled_frame": 2}
    assert manifest["kept_per_split_class"] == {"test": {"anger": 1, "other": 1},
                                                "train": {"happiness": 1, "neutral": 1, "surprise": 1}}
    rejects = {(r["reason"], r["source"]) for r in pq.read_table(out / "rejects.parquet").to_pylist()}
    ann = "annotations/EXPR_Classification_Challenge"
    assert rejects == {
        ("invalid_frame", "cropped_aligned/video1/00003.jpg"),
        ("no_face", "cropped_aligned/video1/00004.jpg"),
        ("malformed_line", f"{ann}/Train_Set/video1.txt:6"),
        ("unlabeled_frame", "cropped_aligned/video1/00007.jpg"),
        ("unlabeled_frame", "cropped_aligned/video1/00008.jpg"),
        ("missing_file", "cropped_aligned/video9/00001.jpg"),
        ("unknown_label", f"{ann}/Validation_Set/video7_left.txt:4"),
    }
    table = pq.read_table(out / "shard-00000.parquet")
    assert str(table.schema.field("frame").type) == "int32"
    rows = table.to_pylist()
    assert [(r["video"], r["frame"], r["label"], r["split"]) for r in rows] == [
        ("video1", 1, "happiness", "train"), ("video1", 2, "neutral", "train"),
        ("video1", 6, "surprise", "train"),
        ("video7_left", 1, "other", "test"), ("video7_left", 2, "anger", "test")]
    for row in rows:
        assert row["source"] == f"cropped_aligned/{row['video']}/{row['frame']:05d}.jpg"
        assert np.allclose(np.reshape(row["landmarks5"], (5, 2)), template_landmarks(112), atol=1e-4)
        assert cv2.imdecode(np.frombuffer(row["image"], np.uint8), 1).shape == (112, 112, 3)


def test_affwild2_missing_annotations_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Train_Set"):
        list(read_affwild2_expr(tmp_path))


def test_affwild2_wrong_header_rejects_every_line_of_the_file(affwild2_root):
    path = affwild2_root / "annotations/EXPR_Classification_Challenge/Validation_Set/video7_left.txt"
    path.write_text("Anger,Neutral,Disgust,Fear,Happiness,Sadness,Surprise,Other\n7\n1\n")
    items = [i for i in read_affwild2_expr(affwild2_root) if i.split == "test"]
    # Each label line is an input, rejected; the frame on disk past them is one too.
    assert [(i.reason, i.source.rsplit("/", 1)[-1]) for i in items] == [
        ("bad_header", "video7_left.txt:2"), ("bad_header", "video7_left.txt:3"), ("unlabeled_frame", "00003.jpg")]


def test_both_formats_are_registered():
    assert reader_for("affectnet_manual") is read_affectnet_manual
    assert reader_for("affwild2_expr") is read_affwild2_expr


# ---------------------------------------------------------------- alignment

@pytest.mark.parametrize("size", [112, 96, 128])
def test_align_face_maps_a_known_similarity_back_to_the_template(size):
    template = template_landmarks(size).astype(np.float64)
    matrix = similarity(-35.0, 1.8, (70.0, 140.0))
    image = cv2.warpAffine(canonical_face(size), matrix, (400, 380))
    crop, mapped = align_face(image, apply(matrix, template), size)
    assert crop.shape == (size, size, 3)
    assert np.abs(mapped - template).max() < 0.5
    inner = (slice(size // 4, size * 7 // 8), slice(size // 4, size * 3 // 4))
    assert np.abs(crop[inner].astype(int) - canonical_face(size)[inner].astype(int)).mean() < 10


def test_align_face_matches_insightface_estimate_norm_on_noisy_points():
    from insightface.utils.face_align import estimate_norm
    rng = np.random.default_rng(3)
    points = apply(similarity(12.0, 2.2, (40.0, 30.0)), template_landmarks(112)) + rng.normal(0, 2.0, (5, 2))
    _, mapped = align_face(np.zeros((300, 300, 3), np.uint8), points, 112)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-image deprecation inside insightface
        reference = estimate_norm(points.astype(np.float32), 112)
    assert np.abs(mapped - apply(reference, points)).max() < 1e-3


@pytest.mark.parametrize("points", [np.full((5, 2), 30.0), np.array([[1, 1]] * 4 + [[np.nan, 2]])])
def test_align_face_rejects_degenerate_points(points):
    with pytest.raises(BadLandmarksError):
        align_face(np.zeros((50, 50, 3), np.uint8), points, 112)


@pytest.mark.parametrize("text, ok", [
    (";".join(["1.5"] * 136), True),
    (";".join(["1.5"] * 136) + ";", True),              # trailing separator
    (" ; ".join(["2"] * 136), True),                    # blanks around values
    (";".join(["1.5"] * 134), False),                   # 67 points
    (";".join(["1.5"] * 135 + ["nan"]), False),
    (";".join(["inf"] + ["1.5"] * 135), False),
    (";".join(["1e308"] * 2 + ["-inf"] + ["1"] * 133), False),
    (";".join(["1.5"] * 68 + ["x"] + ["1.5"] * 67), False),
    ("", False),
])
def test_affectnet_landmark_strings(text, ok):
    from fer_pipeline.data.io.affectnet import _RowError, parse_landmarks

    if ok:
        points = parse_landmarks(text)
        assert len(points) == 68 and all(len(p) == 2 for p in points)
    else:
        with pytest.raises(_RowError) as err:
            parse_landmarks(text)
        assert err.value.reason == "bad_landmarks"
