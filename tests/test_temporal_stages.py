"""The temporal stages on a tiny FaceSynth video set: features that reconcile with
the prepared frames, training that resumes to the same weights, evaluation files,
and per-frame prediction for a user's frames or video."""

import copy
import csv
import subprocess
import sys
from pathlib import Path

import cv2
import insightface
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from conftest import tiny_params, tool_env
from fer_pipeline.common.labels import ClassSet
from fer_pipeline.models.factory import build_model
from fer_pipeline.data.prep.prepare import prepare_dataset
from fer_pipeline.data.synth.world import World
from fer_pipeline.data.synth.writers import write_affwild2_expr
from fer_pipeline.temporal.evaluate import evaluate_temporal
from fer_pipeline.temporal.feature_table import read_videos
from fer_pipeline.temporal.features import extract_features
from fer_pipeline.reporting.temporal import ROWS
from fer_pipeline.temporal.predict import UnreadableInputError, predict_video
from fer_pipeline.temporal.train import train_temporal, train_variant
from fer_pipeline.models.bundle import save_bundle

ABAW8 = ClassSet.named("abaw8")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Raw frames, prepared shards, a student bundle and its features."""
    root = tmp_path_factory.mktemp("temporal")
    cfg = {"train_videos": 2, "test_videos": 1, "frames_per_video": 30, "invalid_rate": 0.05, "missing_rate": 0.1}
    write_affwild2_expr(World(5, 64, 0.6, (0.3, 1.0)), root / "raw", cfg, root / "audit")
    manifest = prepare_dataset("affwild2", "affwild2_expr", str(root / "raw"), root / "prep", 64, 90, 16, 40)
    torch.manual_seed(0)
    save_bundle(build_model("small_cnn", 7), "small_cnn", ClassSet.named("basic7"), 32, root / "student/model.pt")
    features = extract_features(root / "student", root / "prep", root / "features", root / "work", ABAW8, 16, "cpu")
    return {"root": root, "prepared": manifest, "features": features}


def temporal_cfg(**changes):
    cfg = copy.deepcopy(tiny_params()["temporal"])
    cfg["train"].update({"seeds": [0], "steps": 6, "window": 4, "stride": 2, "batch_frames": 16, "d_model": 8,
                         "layers": 1, "heads": 2, "ff_dim": 16, "log_every": 1, "checkpoint_every": 2,
                         "threads": 1, "warmup_steps": 2, **changes})
    return cfg


def test_features_reconcile_with_the_prepared_frames(built):
    prepared, features = built["prepared"], built["features"]
    assert features["rows"] == prepared["kept"], "one feature row per prepared frame, none lost"
    assert features["rows_per_split"] == prepared["kept_per_split"]
    assert features["dim"] == 256 and features["classes"] == list(ABAW8.classes)
    table = pq.read_table(built["root"] / "features" / features["shards"][0])
    assert set(table.column_names) == {"video", "frame", "split", "source", "label", "feature"}
    shards = pq.read_table(built["root"] / "prep" / built["prepared"]["shards"][0]).to_pylist()
    label_of = {row["source"]: row["label"] for row in shards}
    for row in table.slice(0, 20).to_pylist():
        assert ABAW8.classes[row["label"]] == label_of[row["source"]]
    assert not (built["root"] / "work").exists(), "the work folder goes once the features are complete"


def test_feature_extraction_resumes_per_shard(built, tmp_path):
    root = built["root"]
    n_shards = len(built["prepared"]["shards"])
    assert n_shards >= 2, "the fixture needs several input shards"
    work = tmp_path / "work"
    work.mkdir()
    # A finished first shard from an earlier (killed) run is kept as it is, not recomputed:
    # mark it, and the mark must reach the output.
    first = pq.read_table(root / "features" / "features-00000.parquet")
    sources = first.column("source").to_pylist()
    marked = first.set_column(first.schema.get_field_index("source"), "source",
                              pa.array(["KEPT"] + sources[1:], pa.string()))
    pq.write_table(marked, work / "features-00000.parquet")
    extract_features(root / "student", root / "prep", tmp_path / "features", work, ABAW8, 16, "cpu")
    assert pq.read_table(tmp_path / "features/features-00000.parquet").column("source")[0].as_py() == "KEPT"
    for i in range(1, n_shards):  # the others are computed, identical to an uninterrupted run
        name = f"features-{i:05d}.parquet"
        assert pq.read_table(tmp_path / "features" / name).equals(pq.read_table(root / "features" / name))


def test_labels_outside_the_class_set_are_kept_as_masked_context(built, tmp_path):
    root = built["root"]
    two = ClassSet("two", ("neutral", "happiness"))
    extract_features(root / "student", root / "prep", tmp_path / "f2", tmp_path / "w", two, 16, "cpu")
    videos = read_videos(tmp_path / "f2", "train") + read_videos(tmp_path / "f2", "test")
    abaw = read_videos(root / "features", "train") + read_videos(root / "features", "test")
    outside = sum(int((v.labels > 1).sum()) for v in abaw)  # abaw8 ids 0, 1 are neutral, happiness
    assert outside > 0, "the fixture has other expressions than neutral and happiness"
    assert sum(int((v.labels == -1).sum()) for v in videos) == outside
    assert sum(len(v.frames) for v in videos) == sum(len(v.frames) for v in abaw), "masked, not dropped"


class Crash(Exception):
    pass


class CrashAt:
    """An MLflow stand-in that kills the run when a given step is logged."""

    def __init__(self, step):
        self.step = step

    def log_metrics(self, metrics, step):
        if step == self.step:
            raise Crash


def test_training_resumes_to_the_same_weights(built, tmp_path):
    cfg = temporal_cfg()["train"]
    videos = read_videos(built["root"] / "features", "train")
    classes = list(ABAW8.classes)
    straight, _ = train_variant(cfg, videos, classes, 0, "temporal", tmp_path / "a", torch.device("cpu"))
    (tmp_path / "b").mkdir()
    with pytest.raises(Crash):  # checkpoint at step 4, killed while logging step 5
        train_variant(cfg, videos, classes, 0, "temporal", tmp_path / "b", torch.device("cpu"), CrashAt(5))
    assert (tmp_path / "b/seed0_temporal.pt").exists()
    resumed, history = train_variant(cfg, videos, classes, 0, "temporal", tmp_path / "b", torch.device("cpu"))
    assert [h["step"] for h in history] == list(range(1, 7))
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resuming"


@pytest.fixture(scope="module")
def trained(built, tmp_path_factory):
    """Encoders of two seeds on the fixture's features, shared by the tests that read
    them (a fixture, not a global: each test runs alone or in any order)."""
    root = tmp_path_factory.mktemp("trained")
    cfg = temporal_cfg(seeds=[0, 1])
    meta = {**built["features"], "image_size": 64}
    summary = train_temporal(cfg["train"], built["root"] / "features", root / "models", root / "work", meta)
    return {"models": root / "models", "summary": summary, "cfg": cfg}


def test_train_and_evaluate_write_the_table(built, trained, tmp_path):
    assert set(trained["summary"]) == {"seed0.frame", "seed0.temporal", "seed1.frame", "seed1.temporal"}
    cfg = copy.deepcopy(trained["cfg"])
    cfg["evaluate"]["postprocess"] = {"mode": "centered", "window": 5}
    cfg["evaluate"]["conditions"] = str(built["root"] / "audit/affwild2_conditions.csv")
    table = evaluate_temporal(trained["models"], built["root"] / "features", tmp_path / "report", [0, 1],
                              cfg["evaluate"], synthetic=True)
    assert [r["row"] for r in table["rows"]] == [name for name, _, _ in ROWS]
    assert table["rows"][0]["macro_f1"]["n"] == 2
    for r in table["rows"]:
        assert 0 <= r["macro_f1"]["mean"] <= 100
    groups = table["rows"][0]["accuracy_by_condition"]
    assert set(groups) == {"clean", "weak expression", "blur burst", "occluded"}
    scored = sum(table["rows"][0]["accuracy_by_condition"][g]["frames"] for g in groups)
    assert scored == table["n_frames"], "every scored frame is in exactly one condition"
    for name in ("metrics.json", "table.md", "predictions.csv", "table.png", "confusion_matrix.png", "timeline.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert "FaceSynth" in (tmp_path / "report/table.md").read_text()
    with open(tmp_path / "report/predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == built["features"]["rows_per_split"]["test"]


def test_predict_video_on_a_folder_of_frames(built, trained, tmp_path):
    models = trained["models"]
    frames_dir = next((built["root"] / "raw/cropped_aligned").iterdir())
    post = {"mode": "centered", "window": 5}
    result = predict_video(models / "seed0/temporal.pt", frames_dir, tmp_path / "out.csv", 64, post, 2)
    with open(tmp_path / "out.csv") as fh:
        rows = list(csv.DictReader(fh))
    files = sorted(frames_dir.glob("*.jpg"))
    assert result["frames"] == len(rows) == len(files)
    assert [int(r["frame"]) for r in rows] == [int(p.stem) for p in files], "the file numbers are the frame indices"
    probs = np.array([[float(r[f"p_{c}"]) for c in ABAW8.classes] for r in rows])
    assert np.allclose(probs.sum(1), 1.0, atol=1e-3)
    assert all(r["predicted"] in ABAW8.classes for r in rows)

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/00001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UnreadableInputError, match=r"bad/00001\.jpg"):
        predict_video(models / "seed0/temporal.pt", tmp_path / "bad", tmp_path / "x.csv", 64, post, 2)
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(UnreadableInputError, match="cannot open"):
        predict_video(models / "seed0/temporal.pt", tmp_path / "clip.mp4", tmp_path / "x.csv", 64, post, 2)
    assert not (tmp_path / "x.csv").exists()


def test_predict_video_file_detects_and_aligns_faces(built, trained, tmp_path):
    models = trained["models"]
    photo = cv2.imread(str(Path(insightface.__file__).parent / "data/images/t1.jpg"))
    blank = np.full_like(photo, 127)
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (photo.shape[1], photo.shape[0]))
    for image in (photo, photo, blank, photo):
        writer.write(image)
    writer.release()
    predict_video(models / "seed0/temporal.pt", path, tmp_path / "out.csv", 64, {"mode": "centered", "window": 3}, 2)
    with open(tmp_path / "out.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["face_found"] for r in rows] == ["1", "1", "0", "1"], "the blank frame is a gap"
    assert rows[2]["predicted"] == "" and rows[0]["predicted"] in ABAW8.classes


def test_fer_predict_video_runs_the_trained_encoder_from_params(built, trained, tmp_path):
    """The command reads the encoder, frame size, stride and voting window from params.yaml:
    its CSV is the one predict_video writes with those values."""
    frames_dir = next((built["root"] / "raw/cropped_aligned").iterdir())
    params = tiny_params()
    params["prepare"]["image_size"] = 64
    params["temporal"]["train"]["out_dir"] = str(trained["models"])
    params["temporal"]["evaluate"].update({"stride": 2, "postprocess": {"mode": "blocks", "window": 4}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    def fer(*args):
        return subprocess.run([sys.executable, "-m", "fer_pipeline.cli", "predict-video", *args], cwd=tmp_path,
                              capture_output=True, text=True, env=tool_env(), timeout=300)

    proc = fer("--input", str(frames_dir), "--out", "out/pred.csv", "--seed", "1", "--variant", "frame")
    assert proc.returncode == 0, proc.stderr[-3000:]
    predict_video(trained["models"] / "seed1/frame.pt", frames_dir, tmp_path / "direct.csv", 64,
                  {"mode": "blocks", "window": 4}, 2)
    assert (tmp_path / "out/pred.csv").read_text() == (tmp_path / "direct.csv").read_text()
    with open(tmp_path / "out/pred.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(list(frames_dir.glob("*.jpg")))

    proc = fer("--input", str(frames_dir), "--out", "x.csv", "--seed", "7")
    assert proc.returncode == 1 and "seed7/temporal.pt not found" in proc.stderr
    proc = fer("--input", "no_such_folder", "--out", "x.csv")
    assert proc.returncode == 1 and "--input no_such_folder" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.csv").exists()
