"""`fer predict-video`: per-frame expression of a user's video, with the trained
temporal encoder on the frozen student's features.

Input: a folder of aligned face frames (any image files, read in name order; a
name that is a number is taken as the frame index), or a video file read with
OpenCV, whose faces are detected and aligned by the prep path (prep/detect.py,
prep/align.py). Frames without a face are gaps, as in training; the CSV still has
a row for them (face_found 0, no prediction).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm

from fer_pipeline.common.atomic import atomic_path
from fer_pipeline.data.prep.align import align_face
from fer_pipeline.data.prep.crop import CropError, crop_aligned
from fer_pipeline.temporal.evaluate import video_logits
from fer_pipeline.temporal.features import FrameEmbedder
from fer_pipeline.temporal.postprocess import majority_smooth
from fer_pipeline.temporal.train import load_encoder
from fer_pipeline.temporal.windows import MASKED, VideoFeatures

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
JPEG_QUALITY = 95


class UnreadableInputError(ValueError):
    pass


def folder_frames(folder: Path, size: int) -> Iterator[tuple[int, bytes | None]]:
    """(frame index, aligned JPEG crop) per image file of a folder of aligned frames."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UnreadableInputError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    numbered = all(re.fullmatch(r"\d+", p.stem) for p in files)
    for i, path in enumerate(files, 1):
        try:
            crop, _ = crop_aligned(path.read_bytes(), size, JPEG_QUALITY)
        except CropError as exc:
            raise UnreadableInputError(f"{path}: {exc}") from None
        yield (int(path.stem) if numbered else i), crop


def video_frames(path: Path, size: int, detector) -> Iterator[tuple[int, bytes | None]]:
    """(frame index, aligned JPEG crop or None when no face was found) per video frame."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise UnreadableInputError(f"{path}: OpenCV cannot open this video (unknown format or codec)")
    frame = 0
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            frame += 1
            faces = detector.detect(image)
            if not faces:
                yield frame, None
                continue
            crop, _ = align_face(image, faces[0][1], size)  # the largest face
            yield frame, cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
    finally:
        capture.release()
    if frame == 0:
        raise UnreadableInputError(f"{path}: OpenCV opened the file but decoded no frame")


def predict_video(encoder_path: str | Path, source: str | Path, out_csv: str | Path, image_size: int,
                  postprocess: dict, stride: int, batch_size: int = 64, detector=None) -> dict:
    """Write the per-frame CSV; returns counts."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    encoder, bundle = load_encoder(encoder_path)
    embedder = FrameEmbedder(bundle["student"], "cpu", amp=False)
    if source.is_dir():
        frames = folder_frames(source, image_size)
    else:
        if detector is None:
            from fer_pipeline.data.prep.detect import HaarDetector
            detector = HaarDetector()
        frames = video_frames(source, image_size, detector)
    indices, crops = [], []
    for index, crop in tqdm(frames, desc=f"reading {source.name}", unit="frame"):
        indices.append(index)
        crops.append(crop)
    with_face = [i for i, c in enumerate(crops) if c is not None]
    if not with_face:
        raise UnreadableInputError(f"{source}: no face found in any of its {len(crops)} frames")
    feats = []
    for i in tqdm(range(0, len(with_face), batch_size), desc="embedding", unit="batch"):
        chunk = with_face[i:i + batch_size]
        feats.append(embedder([crops[k] for k in chunk], [f"{source.name}#{indices[k]}" for k in chunk]))
    frames_arr = np.asarray([indices[k] for k in with_face], dtype=np.int64)
    video = VideoFeatures(source.name, frames_arr, np.concatenate(feats),
                          np.full(len(with_face), MASKED, dtype=np.int64))
    logits = video_logits(encoder, video, stride)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    predicted = logits.argmax(1)
    smoothed = majority_smooth(video.frames, predicted, postprocess["window"], postprocess["mode"])
    classes = bundle["classes"]
    row_of = {int(f): r for r, f in enumerate(video.frames)}
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["frame", "face_found", "predicted", "smoothed", *[f"p_{c}" for c in classes]])
        for index in indices:
            r = row_of.get(int(index))
            if r is None:
                writer.writerow([index, 0, "", "", *[""] * len(classes)])
            else:
                writer.writerow([index, 1, classes[predicted[r]], classes[smoothed[r]],
                                 *[f"{p:.4f}" for p in probs[r]]])
    return {"frames": len(indices), "with_face": len(with_face), "csv": str(out_csv)}
