"""Face geometry shared by prepare and the augmentations: the ArcFace 5-point template
and the similarity warp that aligns a face onto it."""

from __future__ import annotations

import math

import cv2
import numpy as np

# Left eye, right eye, nose tip, left mouth corner, right mouth corner at 112x112
# (float64: FaceSynth draws on it; the float32 copy is what alignment has always used).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_TEMPLATE_112 = ARCFACE_TEMPLATE.astype(np.float32)
_TEMPLATE_X = ARCFACE_TEMPLATE_112[:, 0].astype(np.float64).tolist()
_TEMPLATE_Y = ARCFACE_TEMPLATE_112[:, 1].astype(np.float64).tolist()


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
    The closed form runs on Python floats: on five points NumPy's per-call overhead
    (an lstsq took ~300 us) costs more than the arithmetic, once per image.
    """
    values = np.asarray(landmarks5, dtype=np.float64).reshape(-1).tolist()
    if len(values) != 10 or not all(math.isfinite(v) for v in values):
        raise BadLandmarksError(f"need 5 finite (x, y) points, got {len(values)} values")
    xs, ys = values[0::2], values[1::2]
    scale = size / 112.0
    us = [u * scale for u in _TEMPLATE_X]
    vs = [v * scale for v in _TEMPLATE_Y]
    mx, my, mu, mv = sum(xs) / 5, sum(ys) / 5, sum(us) / 5, sum(vs) / 5
    # With both point sets centred, the least-squares (a, b) of x' = a x - b y + tx,
    # y' = b x + a y + ty are two dot products over the source variance.
    var = dot = cross = 0.0
    for x, y, u, v in zip(xs, ys, us, vs):
        x, y, u, v = x - mx, y - my, u - mu, v - mv
        var += x * x + y * y
        dot += x * u + y * v
        cross += x * v - y * u
    spread = math.sqrt(var / 5)
    if spread < 1.0:  # points within a pixel of each other fix no scale or rotation
        raise BadLandmarksError(f"the 5 points are degenerate (spread {spread:.3g} px)")
    a, b = dot / var, cross / var
    if math.hypot(a, b) < 1e-6:
        raise BadLandmarksError("no similarity transform maps these points onto the template")
    return np.array([[a, -b, mu - (a * mx - b * my)], [b, a, mv - (b * mx + a * my)]])


def align_face(image_bgr: np.ndarray, landmarks5, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Warp the face onto the template at `size` x `size`.

    Returns the crop and the 5 source points mapped into it (float32, 5x2): close to
    the template, but not equal to it when the points do not fit a similarity exactly.
    """
    matrix = similarity_to_template(landmarks5, size)
    crop = cv2.warpAffine(image_bgr, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # Five points mapped in plain Python on purpose: `points @ matrix.T` (BLAS) and
    # cv2.transform both run wide-vector (AVX-512) kernels, after which this process's
    # JPEG decode and encode ran ~30 % slower (measured: +200 us per image).
    (a, c, tx), (b, d, ty) = matrix.tolist()
    points = np.asarray(landmarks5, dtype=np.float64).reshape(5, 2).tolist()
    mapped = [(a * x + c * y + tx, b * x + d * y + ty) for x, y in points]
    return crop, np.array(mapped, dtype=np.float32)
