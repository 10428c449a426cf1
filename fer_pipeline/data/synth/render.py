"""FaceSynth renderer: procedural cartoon faces driven by action units.

Everything is drawn with OpenCV polygons in a canonical 112x112 frame whose
five landmarks sit on the ArcFace template.  Geometric nuisances (yaw/pitch on
an ellipsoidal head, roll, scale, shift) are applied to the polygon vertices
*before* rasterising, so no resampling blur is introduced and the returned
landmarks are exact.  Shapes are rasterised anti-aliased at an internal
super-sampled resolution and area-downsampled; photometric nuisances are
applied to the final image.  JPEG artefacts are left to the writers
(``encode_jpeg``).

All randomness comes from the caller's ``numpy.random.Generator``.

The parts live beside this module: ``scene`` (identity, capture conditions and their
sampling), ``face`` (geometry), ``painter`` (posing and rasterising), ``head`` and
``facial_parts`` (what is drawn); this module composes them and adds the capture
(background, photometry, noise).
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from fer_pipeline.data.prep.align import ARCFACE_TEMPLATE  # noqa: F401  (re-exported: the canonical frame)
from fer_pipeline.data.synth.expressions import ACTION_UNITS
from fer_pipeline.data.synth.face import Face
from fer_pipeline.data.synth.facial_parts import (draw_beard, draw_brows, draw_cheeks, draw_eye, draw_folds,
                                                  draw_forehead, draw_mouth, draw_nose)
from fer_pipeline.data.synth.head import (draw_glasses, draw_hair_back, draw_hair_front, draw_head, draw_neck,
                                          draw_occluder, draw_shoulders)
from fer_pipeline.data.synth.painter import Painter, lin
# Identity, Nuisance and their samplers are re-exported: callers render what they sample.
from fer_pipeline.data.synth.scene import Identity, Nuisance, sample_identity, sample_nuisance  # noqa: F401


def _background(side: int, nz: Nuisance, rng: np.random.Generator) -> np.ndarray:
    """Flat colour plus an optional low-frequency texture, made at 8x8 and upsampled."""
    cells = rng.random((8, 3)) - 0.5  # always drawn: the stream does not depend on the texture
    base = np.asarray(nz.bg_bgr, dtype=np.float64)
    amp = 2.0 * nz.bg_texture
    if nz.bg_kind == 1 and amp > 1.0:  # soft blotches
        small, interp = base + amp * cells.reshape(2, 4, 3), cv2.INTER_CUBIC
    elif nz.bg_kind == 2 and amp > 1.0:  # linear gradient
        ramp = lin(-0.6, 0.6, 8)[:, None, None]
        small, interp = base + amp * ramp * (np.sign(cells[0]) + 0.5 * cells[1]), cv2.INTER_LINEAR
    elif nz.bg_kind == 3 and amp > 1.0:  # vertical blocks (shelves, curtains)
        small, interp = base + amp * cells.reshape(1, 8, 3), cv2.INTER_NEAREST
    else:
        return np.full((side, side, 3), nz.bg_bgr, dtype=np.uint8)
    small = np.clip(small, 0, 255).astype(np.uint8)
    return cv2.resize(small, (side, side), interpolation=interp)


_NOISE_BANK_SIZE = 1 << 20


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    bank = np.random.default_rng(20240611).standard_normal(_NOISE_BANK_SIZE, dtype=np.float32)
    bank.flags.writeable = False
    return bank


def _gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit gaussian noise: a random window of a fixed bank with a random sign.
    About 30x cheaper than drawing fresh normals; windows of 1M samples do not
    repeat in practice."""
    n = int(np.prod(shape))
    bank = _noise_bank()
    if n > bank.size:
        return rng.standard_normal(shape, dtype=np.float32)
    start = int(rng.integers(0, bank.size - n + 1))
    sign = np.float32(1.0 if rng.random() < 0.5 else -1.0)
    return bank[start:start + n].reshape(shape) * sign


def _photometric(img: np.ndarray, nz: Nuisance, rng: np.random.Generator) -> np.ndarray:
    """Contrast/brightness/colour cast, directional light, optics blur, sensor noise."""
    size = img.shape[0]
    gain = np.asarray(nz.color_gain, dtype=np.float32)
    affine = np.zeros((3, 4), dtype=np.float32)  # per-channel gain + offset in one cv2 call
    affine[:, :3] = np.diag(gain * nz.contrast)
    affine[:, 3] = (nz.brightness + 128.0 * (1.0 - nz.contrast)) * gain
    f = cv2.transform(img.astype(np.float32), affine)
    if nz.light_strength > 1e-3:
        a = math.radians(nz.light_angle_deg)
        r = np.linspace(-1.0, 1.0, size, dtype=np.float32)
        ramp = 1.0 - nz.light_strength * (r[None, :] * math.cos(a) + r[:, None] * math.sin(a))
        f *= np.clip(ramp, 0.2, None)[:, :, None]
    if nz.blur_sigma > 0.05:
        f = cv2.GaussianBlur(f, (0, 0), nz.blur_sigma * size / 112.0)
    if nz.noise_sigma > 0.05:
        f += _gaussian_noise(rng, f.shape) * np.float32(nz.noise_sigma)
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


# -------------------------------------------------------------------------- api


def _check_aus(aus: dict[str, float]) -> dict[str, float]:
    out = {}
    for name, value in aus.items():
        if name not in ACTION_UNITS:
            raise ValueError(f"unknown action unit {name!r}; known: {', '.join(ACTION_UNITS)}")
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"action unit {name!r} has non-finite activation {value!r}")
        out[name] = min(1.0, max(0.0, v))
    return out


def render_face(
    identity: Identity,
    aus: dict[str, float],
    nuisance: Nuisance,
    size: int = 112,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one face.

    Returns ``(image, landmarks5)``: a ``size x size x 3`` uint8 BGR image and a
    float32 (5, 2) array of (x, y) pixel coordinates of left eye, right eye, nose
    tip, left and right mouth corner in that image.  ``rng`` drives background
    texture and sensor noise; without one, ``nuisance.seed`` does, so the output
    is always a pure function of the arguments.
    """
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    au = _check_aus(aus)
    if rng is None:
        rng = np.random.default_rng(nuisance.seed)
    ss = max(2, math.ceil(224 / size))  # super-sampling factor
    canvas = _background(size * ss, nuisance, rng)
    face = Face(identity, au)
    p = Painter(size, ss, nuisance)

    # Back to front: each part is painted over the ones before it.
    draw_shoulders(p, face)
    draw_hair_back(p, face)
    draw_neck(p, face)
    draw_head(p, face)
    draw_cheeks(p, face)
    draw_forehead(p, face)
    draw_folds(p, face)
    draw_nose(p, face)
    for side in (-1, 1):
        draw_eye(p, face, side, nuisance.gaze)
    draw_brows(p, face)
    draw_beard(p, face)
    draw_mouth(p, face)
    draw_hair_front(p, face)
    if identity.glasses:
        draw_glasses(p, face)
    if nuisance.occluder is not None:
        draw_occluder(p, face, nuisance.occluder)
    p.flush(canvas)

    image = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    image = _photometric(image, nuisance, rng)
    landmarks = np.array([p.out_coords(pt, d)[0] for pt, d in face.landmarks()], dtype=np.float32)
    return image, landmarks


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of a BGR uint8 image at ``quality`` (1..100)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(np.clip(quality, 1, 100))])
    if not ok:
        raise ValueError("cv2.imencode failed to encode the image as JPEG")
    return buf.tobytes()
