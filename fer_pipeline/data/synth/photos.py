"""FaceSynth's in-the-wild photos: an aligned rendered face placed in a larger picture.

AffectNet ships full photos with a face box and 68 iBUG landmarks, so its reader
must align. FaceSynth renders aligned faces with 5 known landmarks; here a face is
warped into a bigger background at a random place, scale and rotation, and the
68 points are laid out around the 5 so that the reader's 68 -> 5 reduction (eye
contour means, nose tip, mouth corners) gives back exactly the warped 5.
"""

from __future__ import annotations

import numpy as np
import cv2

LEFT_EYE, RIGHT_EYE, NOSE, MOUTH_LEFT, MOUTH_RIGHT = range(5)


def _arc(p0: np.ndarray, p1: np.ndarray, bulge: np.ndarray, n: int) -> np.ndarray:
    """n points from p0 to p1 along a quadratic curve pulled towards p0/p1's midpoint + bulge."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    ctrl = (p0 + p1) / 2 + bulge
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * ctrl + t ** 2 * p1


def _ring(centre: np.ndarray, rx: float, ry: float, n: int) -> np.ndarray:
    """n points evenly spaced on an ellipse: their mean is exactly `centre`."""
    angles = np.pi + np.arange(n) * 2 * np.pi / n  # iBUG eyes start at the outer corner
    return centre + np.stack([rx * np.cos(angles), ry * np.sin(angles)], axis=1)


def landmarks68_from_5(five: np.ndarray) -> np.ndarray:
    """68 iBUG points consistent with the 5 (in the face's own upright frame)."""
    le, re, nose, ml, mr = (np.asarray(p, dtype=np.float64) for p in five)
    eye_dist = np.linalg.norm(re - le)
    down = np.array([0.0, 1.0]) * eye_dist
    pts = np.zeros((68, 2))
    pts[0:17] = _arc(le - [0.55 * eye_dist, 0], re + [0.55 * eye_dist, 0], 2.2 * down, 17)     # jaw
    pts[17:22] = _arc(le - [0.35 * eye_dist, 0.35 * eye_dist], le + [0.3 * eye_dist, -0.4 * eye_dist],
                      -0.1 * down, 5)                                                           # left brow
    pts[22:27] = _arc(re - [0.3 * eye_dist, 0.4 * eye_dist], re + [0.35 * eye_dist, -0.35 * eye_dist],
                      -0.1 * down, 5)                                                           # right brow
    pts[27:31] = _arc((le + re) / 2, nose, np.zeros(2), 4)                                      # bridge, 30 = tip
    pts[31:36] = _arc(nose + [-0.25 * eye_dist, 0.12 * eye_dist], nose + [0.25 * eye_dist, 0.12 * eye_dist],
                      0.1 * down, 5)                                                            # nostrils
    pts[36:42] = _ring(le, 0.22 * eye_dist, 0.09 * eye_dist, 6)
    pts[42:48] = _ring(re, 0.22 * eye_dist, 0.09 * eye_dist, 6)
    pts[48:55] = _arc(ml, mr, -0.25 * down, 7)                                                  # upper lip
    pts[55:60] = _arc(mr, ml, 0.3 * down, 7)[1:6]                                               # lower lip
    pts[60:65] = _arc(ml, mr, -0.08 * down, 7)[1:6]                                             # inner upper
    pts[65:68] = _arc(mr, ml, 0.1 * down, 5)[1:4]                                               # inner lower
    return pts


def place_in_photo(face: np.ndarray, five: np.ndarray, rng: np.random.Generator, scale_range=(0.7, 1.2),
                   max_rotation_deg: float = 25.0, photo_factor: float = 2.2):
    """Warp `face` into a bigger background photo.

    Returns (photo, 68 landmarks in the photo, face box (x, y, w, h) in the photo)."""
    side = face.shape[0]
    h = w = int(round(side * photo_factor))
    scale = rng.uniform(*scale_range)
    angle = rng.uniform(-max_rotation_deg, max_rotation_deg)
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, scale)
    corners = np.array([[0, 0], [side, 0], [side, side], [0, side]], dtype=np.float64)
    placed = corners @ matrix[:, :2].T + matrix[:, 2]
    low, high = placed.min(axis=0), placed.max(axis=0)
    # A random position that keeps the whole (rotated) face inside the photo.
    shift = np.array([rng.uniform(-low[0], w - high[0]), rng.uniform(-low[1], h - high[1])])
    matrix[:, 2] += shift

    top, bottom = rng.uniform(40, 220, 3), rng.uniform(40, 220, 3)
    ramp = np.linspace(0.0, 1.0, h)[:, None, None]
    photo = ((1 - ramp) * top + ramp * bottom).repeat(w, axis=1)
    photo = np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)
    cv2.warpAffine(face, matrix, (w, h), dst=photo, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)

    points = landmarks68_from_5(five) @ matrix[:, :2].T + matrix[:, 2]
    low, high = placed.min(axis=0) + shift, placed.max(axis=0) + shift
    box = (int(low[0]), int(low[1]), int(high[0] - low[0]), int(high[1] - low[1]))
    return photo, points, box
