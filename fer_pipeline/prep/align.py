"""Face geometry shared by prepare and the augmentations: the ArcFace 5-point template
and the similarity warp that aligns a face onto it."""

from __future__ import annotations

import cv2
import numpy as np

# Left eye, right eye, nose tip, left mouth corner, right mouth corner at 112x112.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def template_landmarks(size: int) -> np.ndarray:
    """The template at `size` x `size`: the landmarks of an already aligned crop."""
    return ARCFACE_TEMPLATE_112 * (size / 112.0)


class BadLandmarksError(ValueError):
    """Five points that cannot define a face (non-finite, or all at one spot)."""


def similarity_to_template(landmarks5, size: int) -> np.ndarray:
    """2x3 similarity (rotation, uniform scale, shift) taking the 5 points onto the template.

    This is the least-squares fit that insightface's `face_align.estimate_norm` makes
    (Umeyama), solved directly so every `size` uses this one template: estimate_norm
    only accepts multiples of 112 or 128 and shifts the template 8 px at 128.
    cv2.estimateAffinePartial2D with LMEDS is not used on purpose: it drops points it
    deems outliers, so on noisy landmarks it departs from that fit by pixels.
    """
    src = np.asarray(landmarks5, dtype=np.float64).reshape(-1)
    if src.size != 10 or not np.all(np.isfinite(src)):
        raise BadLandmarksError(f"need 5 finite (x, y) points, got {src.size} values")
    src = src.reshape(5, 2)
    spread = np.sqrt(((src - src.mean(axis=0)) ** 2).sum(axis=1).mean())
    if spread < 1.0:  # points within a pixel of each other fix no scale or rotation
        raise BadLandmarksError(f"the 5 points are degenerate (spread {spread:.3g} px)")
    dst = template_landmarks(size).astype(np.float64)
    # Unknowns (a, b, tx, ty): x' = a x - b y + tx, y' = b x + a y + ty.
    x, y = src[:, 0], src[:, 1]
    one, zero = np.ones(5), np.zeros(5)
    design = np.concatenate([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)
    matrix = np.array([[a, -b, tx], [b, a, ty]])
    if not np.all(np.isfinite(matrix)) or np.hypot(a, b) < 1e-6:
        raise BadLandmarksError("no similarity transform maps these points onto the template")
    return matrix


def align_face(image_bgr: np.ndarray, landmarks5, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face onto the template at `size` x `size`.

    Returns the crop and the 5 source points mapped into it (float32, 5x2): close to
    the template, but not equal to it when the points do not fit a similarity exactly.
    """
    matrix = similarity_to_template(landmarks5, size)
    crop = cv2.warpAffine(image_bgr, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    src = np.asarray(landmarks5, dtype=np.float64).reshape(5, 2)
    mapped = src @ matrix[:, :2].T + matrix[:, 2]
    return crop, mapped.astype(np.float32)
