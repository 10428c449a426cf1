"""FaceSynth's scene: who is drawn (``Identity``) and how the shot is taken (``Nuisance``,
``Occluder``), with their samplers. All randomness comes from the caller's
``numpy.random.Generator``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

HAIR_STYLES: tuple[str, ...] = ("none", "short", "long", "fringe")
OCCLUDER_KINDS: tuple[str, ...] = ("hand", "bar", "sunglasses", "ellipse")

BGR = tuple[int, int, int]

_SKIN_PALETTE = np.array(
    [(40, 55, 85), (60, 85, 125), (90, 130, 180), (120, 160, 205), (165, 190, 230)], dtype=np.float64
)
_HAIR_COLOURS: tuple[BGR, ...] = (
    (22, 22, 26), (30, 42, 62), (40, 68, 105), (100, 160, 205), (40, 66, 140), (150, 150, 155),
)
_IRIS_COLOURS: tuple[BGR, ...] = ((28, 55, 95), (20, 28, 40), (150, 110, 70), (85, 125, 85), (45, 95, 120))


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Identity:
    """Person-specific appearance.  Lengths are in pixels of the 112 frame."""

    face_width: float  # multiplier of the face half-width
    face_length: float  # multiplier of the mouth-to-chin distance
    jaw_roundness: float  # super-ellipse exponent of the lower face (2 = ellipse)
    skin_bgr: BGR
    eye_distance: float  # added to the inter-ocular distance
    eye_height: float  # vertical offset of both eyes (+ = lower)
    eye_size: float  # multiplier
    eye_openness: float  # multiplier of the resting lid aperture
    iris_bgr: BGR
    brow_thickness: float
    brow_height: float  # + = higher above the eye
    brow_tilt: float  # resting inner-end lift (+ up), mimics weak AU1/AU4
    nose_length: float  # vertical offset of the nose tip (+ = lower)
    nose_width: float  # multiplier
    mouth_width: float  # added to the mouth width
    mouth_height: float  # vertical offset of the mouth (+ = lower)
    lip_thickness: float  # multiplier
    mouth_curve: float  # resting corner lift (+ up), mimics weak AU12/AU15
    lips_apart: float  # resting lip gap in px, mimics weak AU25
    lip_bgr: BGR
    age: float  # 0..1, resting visibility of folds and wrinkles
    hair_style: str  # one of HAIR_STYLES
    hair_bgr: BGR
    hairline: float  # vertical offset of the hairline / fringe edge
    beard: float  # 0 = none, else beard density in (0, 1]
    glasses: bool
    shirt_bgr: BGR


@dataclass(frozen=True)
class Occluder:
    """An object in front of the face; position/size in fractions of the canonical
    face frame.  Sunglasses sit on the eyes whatever cx/cy say; a hand uses ``w``
    as palm width and points its fingers along ``angle_deg``."""

    kind: str  # one of OCCLUDER_KINDS
    cx: float
    cy: float
    w: float
    h: float
    angle_deg: float
    bgr: BGR


@dataclass(frozen=True)
class Nuisance:
    """Capture conditions.  ``Nuisance`` from ``sample_nuisance(rng, 0)`` is a clean frontal shot."""

    yaw_deg: float
    pitch_deg: float
    roll_deg: float  # positive = clockwise in the image
    scale: float
    dx: float  # translation, fraction of the image size
    dy: float
    brightness: float  # additive, in 8-bit levels
    contrast: float  # multiplicative around mid-grey
    color_gain: tuple[float, float, float]  # per-channel (BGR) colour cast
    light_angle_deg: float  # direction the light comes from
    light_strength: float  # amplitude of the directional gradient (0 = flat)
    bg_bgr: BGR
    bg_kind: int  # 0 flat, 1 blotches, 2 gradient, 3 vertical blocks
    bg_texture: float  # texture amplitude in 8-bit levels
    blur_sigma: float  # gaussian blur sigma in pixels of a 112 image
    noise_sigma: float  # gaussian noise sigma in 8-bit levels
    occluder: Occluder | None
    jpeg_quality: int
    gaze: tuple[float, float]  # iris offset in [-1, 1]
    seed: int  # drives textures/noise when render_face gets no rng


# ----------------------------------------------------------------------- sampling


def _rgb_jitter(rng: np.random.Generator, base: BGR | np.ndarray, amount: float) -> BGR:
    c = np.asarray(base, dtype=np.float64) + rng.uniform(-amount, amount, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))  # type: ignore[return-value]


def sample_identity(rng: np.random.Generator) -> Identity:
    """A random person.  Ranges are chosen so identity variation is of the same
    order as weak expression cues (resting brow tilt, mouth curve, lid aperture)."""
    tone = rng.uniform(0.0, len(_SKIN_PALETTE) - 1.0)
    lo = int(tone)
    hi = min(lo + 1, len(_SKIN_PALETTE) - 1)
    skin_f = _SKIN_PALETTE[lo] + (tone - lo) * (_SKIN_PALETTE[hi] - _SKIN_PALETTE[lo])
    skin = _rgb_jitter(rng, skin_f, 10)
    lip = _rgb_jitter(rng, 0.72 * skin_f + 0.28 * np.array([70.0, 70.0, 185.0]), 10)
    hair_idx = int(rng.integers(len(_HAIR_COLOURS)))
    if tone < 1.5 and hair_idx == 3:  # blond hair is rare on very dark skin
        hair_idx = 0
    style = HAIR_STYLES[int(rng.choice(4, p=[0.12, 0.38, 0.3, 0.2]))]
    beard_draw, glasses_draw, apart_draw = rng.random(3)
    beard = float(rng.uniform(0.35, 1.0)) if beard_draw < 0.18 else 0.0
    lips_apart = float(rng.uniform(0.4, 1.8)) if apart_draw < 0.25 else 0.0
    return Identity(
        face_width=float(rng.uniform(0.9, 1.08)),
        face_length=float(rng.uniform(0.88, 1.15)),
        jaw_roundness=float(rng.uniform(1.7, 2.9)),
        skin_bgr=skin,
        eye_distance=float(rng.uniform(-2.5, 2.5)),
        eye_height=float(rng.uniform(-1.5, 1.5)),
        eye_size=float(rng.uniform(0.85, 1.15)),
        eye_openness=float(rng.uniform(0.75, 1.2)),
        iris_bgr=_rgb_jitter(rng, _IRIS_COLOURS[int(rng.integers(len(_IRIS_COLOURS)))], 12),
        brow_thickness=float(rng.uniform(1.6, 3.4)),
        brow_height=float(rng.uniform(-1.5, 1.8)),
        brow_tilt=float(rng.uniform(-1.3, 1.3)),
        nose_length=float(rng.uniform(-1.8, 1.8)),
        nose_width=float(rng.uniform(0.85, 1.2)),
        mouth_width=float(rng.uniform(-3.0, 3.0)),
        mouth_height=float(rng.uniform(-1.5, 1.5)),
        lip_thickness=float(rng.uniform(0.7, 1.3)),
        mouth_curve=float(rng.uniform(-0.9, 0.9)),
        lips_apart=lips_apart,
        lip_bgr=lip,
        age=float(rng.uniform(0.0, 1.0) ** 2),
        hair_style=style,
        hair_bgr=_rgb_jitter(rng, _HAIR_COLOURS[hair_idx], 12),
        hairline=float(rng.uniform(-3.0, 3.0)),
        beard=beard,
        glasses=bool(glasses_draw < 0.12),
        shirt_bgr=_rgb_jitter(rng, rng.uniform(30, 220, 3), 0),
    )


def _sym(rng: np.random.Generator) -> float:
    """Centre-heavy draw in [-1, 1] (mean of two uniforms)."""
    return float(rng.uniform(-1, 1) + rng.uniform(-1, 1)) / 2.0


def sample_occluder(rng: np.random.Generator) -> Occluder:
    kind = OCCLUDER_KINDS[int(rng.choice(4, p=[0.4, 0.25, 0.15, 0.2]))]
    u = rng.random(6)
    colour = _rgb_jitter(rng, rng.uniform(20, 230, 3), 0)
    if kind == "hand":
        skin = _SKIN_PALETTE[int(rng.integers(len(_SKIN_PALETTE)))]
        colour = _rgb_jitter(rng, skin, 10)
        return Occluder(kind, 0.2 + 0.6 * u[0], 0.6 + 0.35 * u[1], 0.28 + 0.12 * u[2], 0.0,
                        -50 + 100 * u[3], colour)
    if kind == "bar":
        return Occluder(kind, 0.3 + 0.4 * u[0], 0.15 + 0.8 * u[1], 1.5, 0.06 + 0.1 * u[2],
                        -70 + 140 * u[3], colour)
    if kind == "sunglasses":
        return Occluder(kind, 0.5, 0.0, 1.0, 1.0, 0.0, _rgb_jitter(rng, (20, 20, 25), 15))
    return Occluder(kind, 0.05 + 0.9 * u[0], 0.45 + 0.55 * u[1], 0.15 + 0.2 * u[2],
                    0.15 + 0.25 * u[4], -90 + 180 * u[3], colour)


def sample_nuisance(rng: np.random.Generator, strength: float = 1.0) -> Nuisance:
    """Random capture conditions; ``strength`` scales every range (0 = clean frontal).

    The same number of draws is made for any strength, so one seed gives the
    "same direction" of nuisance at every strength.
    """
    if not math.isfinite(strength) or strength < 0:
        raise ValueError(f"strength must be a finite value >= 0, got {strength!r}")
    s = float(strength)
    yaw, pitch, roll = _sym(rng), _sym(rng), _sym(rng)
    u = rng.random(12)
    gains = rng.uniform(-1, 1, 3)
    bg = _rgb_jitter(rng, rng.uniform(25, 230, 3), 0)
    bg_kind = int(rng.integers(4))
    occluder = sample_occluder(rng)
    has_occluder = bool(u[9] < min(1.0, 0.15 * s))
    gaze = (float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1)))
    seed = int(rng.integers(2**31 - 1))
    return Nuisance(
        yaw_deg=28.0 * s * yaw,
        pitch_deg=14.0 * s * pitch,
        roll_deg=15.0 * s * float(np.clip(1.4 * roll, -1.0, 1.0)),
        scale=float(1.0 + 0.15 * s * (2 * u[0] - 1)),
        dx=float(0.05 * s * (2 * u[1] - 1)),
        dy=float(0.05 * s * (2 * u[2] - 1)),
        brightness=float(40.0 * s * (2 * u[3] - 1)),
        contrast=float(1.0 + 0.3 * s * (2 * u[4] - 1)),
        color_gain=tuple(float(1.0 + 0.12 * s * g) for g in gains),  # type: ignore[arg-type]
        light_angle_deg=float(360.0 * u[5]),
        light_strength=float(0.45 * s * u[6]),
        bg_bgr=bg,
        bg_kind=bg_kind,
        bg_texture=float(min(1.0, s) * 60.0 * u[7]),
        blur_sigma=float(1.2 * s * u[8]),
        noise_sigma=float(8.0 * s * u[10]),
        occluder=occluder if has_occluder else None,
        jpeg_quality=int(round(95 - 55 * min(1.0, s) * u[11])),
        gaze=(0.6 * min(1.0, s) * gaze[0], 0.4 * min(1.0, s) * gaze[1]),
        seed=seed,
    )
