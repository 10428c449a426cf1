"""FaceSynth's AffectNet photos and Aff-Wild2 videos, read back by the real readers."""

import cv2
import numpy as np
import pyarrow.parquet as pq

from fer_pipeline.data.io.affectnet import read_affectnet_manual
from fer_pipeline.data.prep.align import template_landmarks
from fer_pipeline.data.prep.prepare import prepare_dataset
from fer_pipeline.data.synth.photos import landmarks68_from_5
from fer_pipeline.data.synth.videos import VISIBLE_INTENSITY, episode_track, frame_label
from fer_pipeline.data.synth.world import World
from fer_pipeline.data.synth.writers import write_affectnet_manual, write_affwild2_expr
from fer_pipeline.data.io.affectnet import five_from_68


def _world():
    return World(seed=3, render_size=64, nuisance_strength=0.3, intensity=(0.5, 1.0))


def test_68_points_reduce_to_the_5_they_were_built_from():
    five = template_landmarks(112)
    points = landmarks68_from_5(five)
    assert np.allclose(np.array(five_from_68([tuple(p) for p in points])), five, atol=1e-9)


def test_affectnet_photos_align_back_to_the_template(tmp_path):
    cfg = {"identities": 5, "train_images": 24, "test_per_class": 2}
    counts = write_affectnet_manual(_world(), tmp_path / "raw", cfg, label_noise=0.0)
    assert sum(v for k, v in counts.items() if k.startswith("test/")) == 16  # 8 classes x 2, balanced
    assert {k for k in counts if k.startswith("test/")} == {f"test/{c}" for c in range(8)}
    records = list(read_affectnet_manual(tmp_path / "raw"))
    assert len(records) == 24 + 16
    manifest = prepare_dataset("affectnet", "affectnet_manual", str(tmp_path / "raw"), tmp_path / "prep", 64, 90,
                               16, 1000)
    non_expression = sum(v for k, v in counts.items() if k.split("/")[1] in ("8", "9", "10"))
    assert manifest["rejected"] == non_expression == manifest["rejected_per_reason"].get("non_expression_label", 0)
    assert manifest["kept"] + manifest["rejected"] == manifest["inputs"] == 40
    table = pq.read_table(tmp_path / "prep" / manifest["shards"][0])
    landmarks = np.array(table.column("landmarks5").to_pylist()).reshape(-1, 5, 2)
    # The face was rotated (up to 25 degrees) and scaled into the photo; alignment undoes it.
    # What is left is each face's own shape against the template (a least-squares fit).
    eyes = landmarks[:, 1] - landmarks[:, 0]
    assert np.degrees(np.abs(np.arctan2(eyes[:, 1], eyes[:, 0]))).max() < 3.0
    assert np.abs(landmarks - template_landmarks(64)).mean() < 1.5


def test_affwild2_videos_have_episodes_and_every_frame_is_accounted_for(tmp_path):
    cfg = {"train_videos": 2, "test_videos": 1, "frames_per_video": 40, "invalid_rate": 0.05, "missing_rate": 0.05}
    counts = write_affwild2_expr(_world(), tmp_path / "raw", cfg)
    manifest = prepare_dataset("affwild2", "affwild2_expr", str(tmp_path / "raw"), tmp_path / "prep", 64, 90, 16,
                               1000)
    assert manifest["inputs"] == 4 * 40  # video0_left, video0_right, video1, video2 (test)
    assert manifest["kept"] + manifest["rejected"] == manifest["inputs"]
    invalid = sum(v for k, v in counts.items() if k.endswith("/-1"))
    assert manifest["rejected_per_reason"].get("invalid_frame", 0) == invalid
    missing_valid = manifest["rejected_per_reason"].get("no_face", 0)
    assert missing_valid <= counts.get("missing_on_disk", 0)
    table = pq.read_table(tmp_path / "prep" / manifest["shards"][0]).to_pylist()
    videos = {row["video"] for row in table}
    assert {"video0_left", "video0_right", "video2"} <= videos
    assert all(row["source"].endswith(f"{row['frame']:05d}.jpg") for row in table)
    assert {row["split"] for row in table if row["video"] == "video2"} == {"test"}


def test_episode_track_rises_holds_and_falls():
    track = episode_track(np.random.default_rng(0), 300)
    intensity = np.array([i for _, i, _ in track])
    assert len(track) == 300 and intensity.min() == 0.0 and intensity.max() > 0.5
    labels = [frame_label(*frame) for frame in track]
    assert all(label == "neutral" for label, (_, i, _) in zip(labels, track) if i < VISIBLE_INTENSITY)
    assert len(set(labels)) >= 3, "several expressions over 300 frames"
    runs = np.diff(np.flatnonzero(np.diff([label != "neutral" for label in labels])))
    assert runs.size and runs.max() >= 5, "expressions last for episodes, not single frames"


def test_webface_folders_round_trip_with_truth_and_bad_entries(tmp_path):
    from fer_pipeline.common.labels import ClassSet
    from fer_pipeline.meta.train import read_pool_truth
    from fer_pipeline.data.synth.writers import write_webface_folders

    cfg = {"identities": 3, "images_per_identity": 4, "blend_fraction": 0.0}
    write_webface_folders(_world(), tmp_path / "raw", cfg, tmp_path / "audit")
    (tmp_path / "raw/0000001/notes.txt").write_text("not a face")
    (tmp_path / "raw/0000002/9.jpg").symlink_to("/etc/hostname")  # placed in the root by the user: followed
    (tmp_path / "raw/0000002/8.jpg").write_bytes(b"broken")
    manifest = prepare_dataset("webface", "webface_folders", str(tmp_path / "raw"), tmp_path / "prep", 64, 90, 16,
                               1000)
    assert manifest["inputs"] == 12 + 3 and manifest["kept"] == 12
    assert manifest["rejected_per_reason"] == {"corrupt_image": 2, "not_an_image": 1}
    rows = pq.read_table(tmp_path / "prep" / manifest["shards"][0]).to_pylist()
    assert [r["identity"] for r in rows] == [f"{i:07d}" for i in range(3) for _ in range(4)]
    truth = read_pool_truth(str(tmp_path / "audit/webface_truth.csv"), [r["source"] for r in rows],
                            ClassSet.named("basic8_contempt"))
    assert len(truth) == 12 and (truth >= 0).all()


def test_rafdb_original_photos_align_with_their_manual_landmarks(tmp_path):
    from fer_pipeline.data.io.rafdb import LABEL_LIST, MANUAL_DIR, ORIGINAL_DIR
    from fer_pipeline.data.synth.photos import place_in_photo

    world, root = _world(), tmp_path / "raw"
    (root / ORIGINAL_DIR).mkdir(parents=True)
    (root / MANUAL_DIR).mkdir(parents=True)
    lines = []
    for i in range(1, 7):
        sample = world.sample("rafdb_original", i, range(3), {"happiness": 1.0})
        face, five, _ = world.render("people", "rafdb_original", sample)
        photo, points, _ = place_in_photo(face, five, np.random.default_rng(i))
        name = f"train_{i:05d}.jpg"
        cv2.imwrite(str(root / ORIGINAL_DIR / name), photo)
        lines.append(f"{name} 4")
        five_in_photo = five_from_68([tuple(p) for p in points])
        text = "\n".join(f"{x:.2f} {y:.2f}" for x, y in five_in_photo) + "\n0\n1\n2\n"
        if i == 5:
            text = "12.0 13.0\nnot a point\n"
        if i != 6:  # image 6 has no annotation file
            (root / MANUAL_DIR / f"train_{i:05d}_manu_attri.txt").write_text(text)
    (root / LABEL_LIST).parent.mkdir(parents=True)
    (root / LABEL_LIST).write_text("\n".join(lines) + "\n")
    manifest = prepare_dataset("rafdb", "rafdb_original", str(root), tmp_path / "prep", 64, 90, 16, 1000)
    assert manifest["kept"] == 4 and manifest["rejected_per_reason"] == {"bad_landmarks": 1, "missing_landmarks": 1}
    landmarks = np.array(pq.read_table(tmp_path / "prep" / manifest["shards"][0]).column("landmarks5")
                         .to_pylist()).reshape(-1, 5, 2)
    eyes = landmarks[:, 1] - landmarks[:, 0]
    assert np.degrees(np.abs(np.arctan2(eyes[:, 1], eyes[:, 0]))).max() < 3.0
