"""Write FaceSynth datasets in the real datasets' on-disk formats.

One function per format, so the same readers (fer_pipeline/data/io) serve real and
demo data. A new format (AffectNet CSV, Aff-Wild2 frames, WebFace folders) is one
more writer here, called from generate.py; sampling and drawing stay in world.py.
"""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
from functools import partial
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm

from fer_pipeline.common.workers import die_with_parent
from fer_pipeline.data.io.rafdb import ALIGNED_DIR, LABEL_LIST, aligned_name
from fer_pipeline.data.io.recordio import IRHeader, RecordIOWriter, pack
from fer_pipeline.common.labels import from_canonical
from fer_pipeline.data.synth.render import encode_jpeg
from fer_pipeline.data.synth.world import FR_POOL_PRIOR, RAFDB_PRIOR, Sample, World

RAFDB_ALIGNED_SIZE = 100  # RAF-DB ships its aligned crops at 100x100


def _draw_one(world: World, population: str, out_size: int | None, job: tuple) -> bytes:
    dataset, sample, nuisance = job
    image, _, quality = world.render(population, dataset, sample, nuisance)
    if out_size is not None and image.shape[0] != out_size:
        image = cv2.resize(image, (out_size, out_size), interpolation=cv2.INTER_AREA)
    return encode_jpeg(image, quality)


def render_jobs(world: World, population: str, jobs: list[tuple], workers: int,
                out_size: int | None = None) -> Iterator[bytes]:
    """JPEG bytes of (dataset, sample, nuisance or None) jobs, in order, drawn by `workers`
    processes (0 = all cores). Each sample seeds its own generator, so the bytes do not
    depend on `workers`."""
    draw = partial(_draw_one, world, population, out_size)
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(jobs) < 64:
        yield from map(draw, jobs)
        return
    with render_pool(workers) as pool:
        yield from pool.imap(draw, jobs, chunksize=32)


def render_pool(workers: int) -> mp.pool.Pool:
    """`workers` spawned drawing processes, each killed if this process dies."""
    return mp.get_context("spawn").Pool(workers, initializer=die_with_parent, initargs=(os.getpid(),))


def render_jpegs(world: World, population: str, dataset: str, samples: list[Sample], workers: int,
                 out_size: int | None = None) -> Iterator[bytes]:
    """JPEG bytes of `samples` of one dataset, with capture conditions drawn at random."""
    return render_jobs(world, population, [(dataset, sample, None) for sample in samples], workers, out_size)


def write_rafdb_basic(world: World, out: Path, cfg: dict, label_noise: float, workers: int = 1) -> dict:
    """RAF-DB basic: label list + aligned JPEGs; train and test identities are disjoint."""
    n_ids = cfg["identities"]
    n_train_ids = max(1, round(0.8 * n_ids))
    splits = [("train", cfg["train_images"], range(0, n_train_ids), 5),
              ("test", cfg["test_images"], range(n_train_ids, max(n_ids, n_train_ids + 1)), 4)]
    (out / ALIGNED_DIR).mkdir(parents=True)
    (out / LABEL_LIST).parent.mkdir(parents=True)
    counts: dict[str, int] = {}
    with open(out / LABEL_LIST, "w", encoding="utf-8") as labels:
        for split, n, ids, digits in splits:
            samples = [world.sample(f"rafdb/{split}", i, ids, RAFDB_PRIOR, label_noise=label_noise) for i in range(n)]
            jpegs = render_jpegs(world, "people", f"rafdb/{split}", samples, workers, RAFDB_ALIGNED_SIZE)
            for i, (sample, jpeg) in enumerate(tqdm(zip(samples, jpegs), total=n, desc=f"FaceSynth rafdb/{split}",
                                                    unit="img", mininterval=2.0)):
                name = f"{split}_{i + 1:0{digits}d}.jpg"
                (out / ALIGNED_DIR / aligned_name(name)).write_bytes(jpeg)
                labels.write(f"{name} {from_canonical('rafdb', sample.label)}\n")
                counts[f"{split}/{sample.label}"] = counts.get(f"{split}/{sample.label}", 0) + 1
    return counts


def write_ms1m_recordio(world: World, out: Path, cfg: dict, audit_dir: Path, workers: int = 1) -> dict:
    """An insightface-style RecordIO pool; the true expressions go to `audit_dir`,
    outside the dataset folder, so nothing in training can peek at them."""
    n_ids, per_id = cfg["identities"], cfg["images_per_identity"]
    n_images = n_ids * per_id
    out.mkdir(parents=True)
    audit_dir.mkdir(parents=True, exist_ok=True)
    first_identity_key = n_images + 1
    with RecordIOWriter(out / "train.rec", out / "train.idx") as rec, \
            open(audit_dir / "ms1m_truth.csv", "w", newline="", encoding="utf-8") as fh:
        truth = csv.writer(fh)
        truth.writerow(["key", "identity", "expression", "intensity", "blend_expression", "blend_weight"])
        # Record 0: header whose labels give the image key range and identity records.
        rec.write(0, pack(IRHeader(2, (float(first_identity_key), float(first_identity_key + n_ids)), 0, 0), b""))
        samples = [world.sample("ms1m", i, range(i // per_id, i // per_id + 1), FR_POOL_PRIOR,
                                blend_fraction=cfg["blend_fraction"]) for i in range(n_images)]
        jpegs = render_jpegs(world, "celebrities", "ms1m", samples, workers)
        for i, (sample, jpeg) in enumerate(tqdm(zip(samples, jpegs), total=n_images, desc="FaceSynth ms1m",
                                                unit="img", mininterval=2.0)):
            identity, key = i // per_id, i + 1
            rec.write(key, pack(IRHeader(0, float(identity), key, 0), jpeg))
            blend_name, blend_w = sample.blend if sample.blend else ("", "")
            truth.writerow([key, identity, sample.expression, f"{sample.intensity:.3f}", blend_name,
                            f"{blend_w:.3f}" if blend_w != "" else ""])
        for identity in range(n_ids):  # identity records: the key range of each identity's images
            start = identity * per_id + 1
            rec.write(first_identity_key + identity,
                      pack(IRHeader(2, (float(start), float(start + per_id)), first_identity_key + identity, 0), b""))
    size = world.render_size
    (out / "property").write_text(f"{n_ids},{size},{size}\n", encoding="ascii")
    return {"images": n_images, "identities": n_ids}


AFFECTNET_NON_EXPRESSION_RATE = 0.02  # rows coded None / Uncertain / No-Face, as in the real CSVs


def write_affectnet_manual(world: World, out: Path, cfg: dict, label_noise: float, workers: int = 1) -> dict:
    """AffectNet Manually_Annotated: full photos (face at a random place, scale and rotation),
    face box and 68 landmarks in training.csv / validation.csv; the validation (test)
    split is balanced, the training split follows AffectNet's priors."""
    from fer_pipeline.data.io.affectnet import COLUMNS, IMAGES_DIR
    from fer_pipeline.data.synth.photos import place_in_photo
    from fer_pipeline.data.synth.world import AFFECTNET_PRIOR

    n_ids = cfg["identities"]
    n_train_ids = max(1, round(0.8 * n_ids))
    balanced = {name: 1.0 for name in AFFECTNET_PRIOR}
    splits = [("training.csv", "train", cfg["train_images"], range(0, n_train_ids), AFFECTNET_PRIOR),
              ("validation.csv", "test", cfg["test_per_class"] * len(balanced), range(n_train_ids, n_ids), None)]
    counts: dict[str, int] = {}
    for csv_name, split, n, ids, prior in splits:
        names = sorted(balanced)
        samples = [world.sample(f"affectnet/{split}", i, ids, prior or {names[i % len(names)]: 1.0},
                                label_noise=label_noise if prior else 0.0) for i in range(n)]
        rows = []
        for i, sample in enumerate(tqdm(samples, desc=f"FaceSynth affectnet/{split}", unit="img", mininterval=2.0)):
            face, five, quality = world.render("people", f"affectnet/{split}", sample)
            rng = np.random.default_rng([world.seed, 7, i, split == "test"])
            photo, points, box = place_in_photo(face, five, rng)
            rel = f"{i // 1000:03d}/{split}_{i:06d}.jpg"
            (out / IMAGES_DIR / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / IMAGES_DIR / rel).write_bytes(encode_jpeg(photo, quality))
            code = from_canonical("affectnet", sample.label)
            if prior and rng.random() < AFFECTNET_NON_EXPRESSION_RATE:
                code = int(rng.integers(8, 11))
            rows.append([rel, *box, ";".join(f"{v:.2f}" for v in points.reshape(-1)), code,
                         f"{rng.uniform(-1, 1):.3f}", f"{rng.uniform(-1, 1):.3f}"])
            counts[f"{split}/{code}"] = counts.get(f"{split}/{code}", 0) + 1
        out.mkdir(parents=True, exist_ok=True)
        with open(out / csv_name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
    return counts


def write_affwild2_expr(world: World, out: Path, cfg: dict, audit_dir: Path | None = None, workers: int = 1) -> dict:
    """Aff-Wild2 EXPR: videos as frame folders whose expressions follow onset-apex-offset
    episodes, annotations one label per frame; a few frames are invalid (-1) or
    missing on disk (no face detected), and one video has two people (_left/_right).
    Capture conditions drift over each video, with blur and occlusion events; each
    frame's condition and true intensity go to `audit_dir/affwild2_conditions.csv`
    (outside the dataset) so evaluation can say where a model fails."""
    from fer_pipeline.data.io.affwild2 import ANNOTATION_DIR, FRAMES_DIR, HEADER, frame_name
    from fer_pipeline.data.synth.videos import episode_track, frame_label, video_nuisances

    counts: dict[str, int] = {}
    audit: list[list] = []
    videos = [(f"video{v}", "Train_Set") for v in range(cfg["train_videos"])]
    videos += [(f"video{v}", "Validation_Set") for v in range(cfg["train_videos"], cfg["train_videos"] + cfg["test_videos"])]
    # The first training video shows two people: two annotated tracks of one clip.
    videos = [(f"{videos[0][0]}_left", "Train_Set"), (f"{videos[0][0]}_right", "Train_Set")] + videos[1:]
    # First plan every frame (labels, conditions, which frames exist), then draw them all
    # in one process pool.
    jobs, paths = [], []
    for person, (video, set_dir) in enumerate(videos):
        rng = np.random.default_rng([world.seed, 11, person])
        track = episode_track(rng, cfg["frames_per_video"])
        nuisances, conditions = video_nuisances(np.random.default_rng([world.seed, 12, person]), len(track),
                                                world.nuisance_strength)
        audit += [[video, frame, conditions[frame - 1], f"{intensity:.3f}"]
                  for frame, (_, intensity, _) in enumerate(track, 1)]
        lines, frames_dir = [",".join(HEADER)], out / FRAMES_DIR / video
        frames_dir.mkdir(parents=True, exist_ok=True)
        for frame, (expression, intensity, blend) in enumerate(track, 1):
            sample = Sample(frame, person, expression, intensity, blend, frame_label(expression, intensity, blend))
            code = from_canonical("affwild2", sample.label)
            roll = rng.random()
            if roll < cfg["invalid_rate"]:
                code = -1
            if roll > 1 - cfg["missing_rate"]:
                counts["missing_on_disk"] = counts.get("missing_on_disk", 0) + 1
            else:
                jobs.append((f"affwild2/{video}", sample, nuisances[frame - 1]))
                paths.append(frames_dir / frame_name(frame))
            lines.append(str(code))
            counts[f"{set_dir}/{code}"] = counts.get(f"{set_dir}/{code}", 0) + 1
        (out / ANNOTATION_DIR / set_dir).mkdir(parents=True, exist_ok=True)
        (out / ANNOTATION_DIR / set_dir / f"{video}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    jpegs = render_jobs(world, "actors", jobs, workers)
    for path, jpeg in tqdm(zip(paths, jpegs), total=len(paths), desc="FaceSynth affwild2", unit="frame",
                           mininterval=2.0):
        path.write_bytes(jpeg)
    if audit_dir is not None:
        audit_dir.mkdir(parents=True, exist_ok=True)
        with open(audit_dir / "affwild2_conditions.csv", "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([["video", "frame", "condition", "intensity"]] + audit)
    return counts


def write_webface_folders(world: World, out: Path, cfg: dict, audit_dir: Path, workers: int = 1) -> dict:
    """WebFace-style pool: `<identity>/<n>.jpg` aligned crops, unlabeled; the true
    expressions go to `audit_dir/webface_truth.csv` (keyed by source), outside the dataset."""
    n_ids, per_id = cfg["identities"], cfg["images_per_identity"]
    samples = [world.sample("webface", i, range(i // per_id, i // per_id + 1), FR_POOL_PRIOR,
                            blend_fraction=cfg["blend_fraction"]) for i in range(n_ids * per_id)]
    audit_dir.mkdir(parents=True, exist_ok=True)
    with open(audit_dir / "webface_truth.csv", "w", newline="", encoding="utf-8") as fh:
        truth = csv.writer(fh)
        truth.writerow(["source", "identity", "expression", "intensity"])
        jpegs = render_jpegs(world, "webcrawl", "webface", samples, workers)
        for i, (sample, jpeg) in enumerate(tqdm(zip(samples, jpegs), total=len(samples), desc="FaceSynth webface",
                                                unit="img", mininterval=2.0)):
            source = f"{i // per_id:07d}/{i % per_id}.jpg"
            (out / source).parent.mkdir(parents=True, exist_ok=True)
            (out / source).write_bytes(jpeg)
            truth.writerow([source, i // per_id, sample.expression, f"{sample.intensity:.3f}"])
    return {"images": len(samples), "identities": n_ids}
