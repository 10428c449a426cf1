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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from fer_pipeline.data.prep.align import ARCFACE_TEMPLATE  # the canonical frame's five landmarks
from fer_pipeline.data.synth.expressions import ACTION_UNITS

HAIR_STYLES: tuple[str, ...] = ("none", "short", "long", "fringe")
OCCLUDER_KINDS: tuple[str, ...] = ("hand", "bar", "sunglasses", "ellipse")

BGR = tuple[int, int, int]
_SHIFT = 4  # sub-pixel bits for cv2 drawing
_FIX = float(1 << _SHIFT)
_AA = cv2.LINE_AA

# Head ellipsoid (canonical units) used for the yaw/pitch approximation.
_HEAD_C = (56.0, 60.0)
_HEAD_R = (48.0, 64.0, 40.0)  # x, y, depth
_NOSE_DEPTH = 11.0
_CRANIUM_EXP = 2.5  # super-ellipse exponent of the skull top (2 would look egg-shaped)

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


# ---------------------------------------------------------------------- painter


class _Painter:
    """Records canonical-frame shapes, then poses all vertices in one vectorised
    pass and rasterises them in order onto the super-sampled canvas."""

    def __init__(self, size: int, ss: int, nz: Nuisance):
        yaw, pitch = math.radians(nz.yaw_deg), math.radians(nz.pitch_deg)
        self.sy, self.cy = math.sin(yaw), math.cos(yaw)
        self.sp, self.cp = math.sin(pitch), math.cos(pitch)
        self.posed = abs(yaw) > 1e-9 or abs(pitch) > 1e-9
        # canonical (112 units) -> output pixels: rotate/scale about the image centre, shift.
        k = size / 112.0 * nz.scale
        r = math.radians(nz.roll_deg)
        rot = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]]) * k
        centre = np.full(2, (size - 1) / 2.0)
        offset = centre - rot @ (centre * 112.0 / size) + np.array([nz.dx, nz.dy]) * size
        self.to_out = np.hstack([rot, offset[:, None]])
        # output pixels -> canvas pixels (pixel-centre convention of INTER_AREA).
        self.to_canvas = self.to_out * ss
        self.to_canvas[:, 2] += (ss - 1) / 2.0
        self.unit = ss * k  # canvas pixels per canonical unit
        # display list: (points, colour, line width or 0 for fill, closed, polygons in the op)
        self._ops: list[tuple[list[np.ndarray], tuple[float, float, float], int, bool]] = []
        self._pts: list[np.ndarray] = []
        self._depth: list[float] = []
        self._flat: list[bool] = []

    def pose(self, p: np.ndarray, depth: np.ndarray | float = 0.0, flat: np.ndarray | bool = False) -> np.ndarray:
        """Yaw/pitch canonical points on the head ellipsoid (orthographic), keeping
        the face centre fixed as a face-centred crop would.  ``depth`` adds
        protrusion (nose), ``flat`` points (body, props) are not rotated."""
        if not self.posed:
            return p
        (hx, hy), (rx, ry, rz) = _HEAD_C, _HEAD_R
        dx, dy = p[:, 0] - hx, p[:, 1] - hy
        z = rz * np.sqrt(np.clip(1.0 - (dx / rx) ** 2 - (dy / ry) ** 2, 0.0, None)) + depth
        x1 = dx * self.cy + z * self.sy
        z1 = -dx * self.sy + z * self.cy
        y1 = dy * self.cp - z1 * self.sp
        posed = np.stack([hx + x1 - rz * self.sy, hy + y1 + rz * self.cy * self.sp], axis=1)
        return np.where(np.asarray(flat)[..., None], p, posed)

    def out_coords(self, pts: np.ndarray, depth: float = 0.0) -> np.ndarray:
        p = self.pose(np.asarray(pts, dtype=np.float64).reshape(-1, 2), depth)
        return p @ self.to_out[:, :2].T + self.to_out[:, 2]

    def _add(self, polys: list[np.ndarray], colour, width: int, closed: bool, depth: float, flat: bool) -> None:
        self._ops.append((len(polys), _col(colour), width, closed))
        for poly in polys:
            self._pts.append(poly)
            self._depth.append(depth)
            self._flat.append(flat)

    def fill(self, pts: np.ndarray, colour, depth: float = 0.0, flat: bool = False) -> None:
        self._add([pts], colour, 0, False, depth, flat)

    def fills(self, polys: list[np.ndarray], colour, depth: float = 0.0) -> None:
        self._add(polys, colour, 0, False, depth, False)

    def line(self, pts: np.ndarray, colour, width: float, depth: float = 0.0, closed: bool = False,
             flat: bool = False) -> None:
        self._add([pts], colour, max(1, int(round(width * self.unit))), closed, depth, flat)

    def flush(self, canvas: np.ndarray) -> None:
        counts = [len(p) for p in self._pts]
        pts = np.concatenate(self._pts).astype(np.float64)
        depth = np.repeat(self._depth, counts)
        flat = np.repeat(self._flat, counts)
        c = self.pose(pts, depth, flat) @ self.to_canvas[:, :2].T + self.to_canvas[:, 2]
        fixed = np.round(c * _FIX).astype(np.int32)
        polys = np.split(fixed, np.cumsum(counts)[:-1])
        i = 0
        for n, colour, width, closed in self._ops:
            group = polys[i:i + n]
            i += n
            if width == 0:
                cv2.fillPoly(canvas, group, colour, _AA, _SHIFT)
            else:
                cv2.polylines(canvas, group, closed, colour, width, _AA, _SHIFT)
        self._ops.clear()
        self._pts.clear()
        self._depth.clear()
        self._flat.clear()


def _col(c) -> tuple[float, float, float]:
    return (float(c[0]), float(c[1]), float(c[2]))


def _mix(a, b, t: float) -> np.ndarray:
    """Colour between a (t=0) and b (t=1)."""
    return np.asarray(a, dtype=np.float64) * (1.0 - t) + np.asarray(b, dtype=np.float64) * t


@lru_cache(maxsize=None)
def _lin(a: float, b: float, n: int) -> np.ndarray:
    """Cached read-only linspace: the same few samplings are used for every face."""
    out = np.linspace(a, b, n)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=None)
def _cos_sin(n: int, start: float, stop: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.radians(np.linspace(start, stop, n, endpoint=stop - start < 360.0))
    return np.cos(t), np.sin(t)


def _ellipse(cx: float, cy: float, ax: float, ay: float, angle_deg: float = 0.0, n: int = 20,
             start: float = 0.0, stop: float = 360.0) -> np.ndarray:
    cos_t, sin_t = _cos_sin(n, float(start), float(stop))
    a = math.radians(angle_deg)
    x, y = ax * cos_t, ay * sin_t
    return np.stack([cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a)], axis=1)


def _superellipse_arc(cx: float, cy: float, a: float, b: float, exp: float, n: int) -> np.ndarray:
    """Upper half (right -> left) of a super-ellipse; exp > 2 is boxier than an ellipse."""
    t = _lin(0.0, math.pi, n)
    c, s = np.cos(t), np.sin(t)
    return np.stack([cx + a * np.sign(c) * np.abs(c) ** (2.0 / exp), cy - b * s ** (2.0 / exp)], 1)


def _bezier(p0, p1, p2, n: int = 8) -> np.ndarray:
    t = _lin(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)


# --------------------------------------------------------------------- geometry


class _Face:
    """Canonical-frame geometry of one face (identity + AUs), computed once."""

    def __init__(self, ident: Identity, au: dict[str, float]):
        self.id = ident
        self.au = au
        g = au.get
        skin = np.asarray(ident.skin_bgr, dtype=np.float64)
        self.skin = skin
        self.shadow = skin * 0.78
        self.crease = skin * 0.55  # colour of a fully deepened wrinkle

        t = ARCFACE_TEMPLATE
        half_iod = (t[1, 0] - t[0, 0]) / 2.0 + ident.eye_distance / 2.0
        mid_x = (t[0, 0] + t[1, 0]) / 2.0
        self.eyes = [
            np.array([mid_x - half_iod, t[0, 1] + ident.eye_height]),
            np.array([mid_x + half_iod, t[1, 1] + ident.eye_height]),
        ]
        self.nose = np.array([t[2, 0], t[2, 1] + ident.nose_length])
        self.cx = 56.0
        self.eye_y = float(self.eyes[0][1] + self.eyes[1][1]) / 2.0

        # Face outline: super-elliptic cranium and jaw; jaw drop lowers the chin.
        self.half_w = 38.5 * ident.face_width
        self.mid_y = self.eye_y + 5.0
        self.top_y = -5.0
        mouth_y = (t[3, 1] + t[4, 1]) / 2.0 + ident.mouth_height
        self.jaw_drop = 7.5 * g("AU26_jaw_drop", 0.0) ** 1.4  # slow onset: a slight drop barely shows
        self.chin_y = mouth_y + 17.5 * ident.face_length
        self._mouth(mouth_y)
        self.outline = self._outline()

    # -- outline
    def _outline(self) -> np.ndarray:
        a, cx = self.half_w, self.cx
        upper = _superellipse_arc(cx, self.mid_y, a, self.mid_y - self.top_y, _CRANIUM_EXP, 17)
        n = self.id.jaw_roundness
        t_lo = _lin(math.pi, 2 * math.pi, 19)[1:-1]
        c, s = np.cos(t_lo), -np.sin(t_lo)
        x = cx + a * np.sign(c) * np.abs(c) ** (2.0 / n)
        y = self.mid_y + (self.chin_y - self.mid_y) * np.abs(s) ** (2.0 / n)
        # Jaw drop: lower face moves down and narrows slightly.
        w = np.clip((y - (self.mouth_y - 6.0)) / (self.chin_y - self.mouth_y + 6.0), 0.0, 1.0)
        y = y + self.jaw_drop * w
        x = cx + (x - cx) * (1.0 - 0.06 * (self.jaw_drop / 7.5) * w)
        return np.concatenate([upper, np.stack([x, y], 1)])

    # -- mouth
    def _mouth(self, mouth_y: float) -> None:
        g, ident, t = self.au.get, self.id, ARCFACE_TEMPLATE
        au12, au15, au20 = g("AU12_lip_corner_pull", 0.0), g("AU15_lip_corner_depress", 0.0), g("AU20_lip_stretch", 0.0)
        au24, au14, au17 = g("AU24_lip_press", 0.0), g("AU14_dimpler_unilateral", 0.0), g("AU17_chin_raise", 0.0)
        au10, au25, au26 = g("AU10_upper_lip_raise", 0.0), g("AU25_lips_part", 0.0), g("AU26_jaw_drop", 0.0)
        self.mouth_y = mouth_y
        half = (t[4, 0] - t[3, 0]) / 2.0 + ident.mouth_width / 2.0
        mx = (t[3, 0] + t[4, 0]) / 2.0
        out = 2.8 * au12 + 3.8 * au20 - 0.6 * au15 - 1.3 * au24 - 4.2 * au26
        lift = ident.mouth_curve + 4.2 * au12 - 3.8 * au15 - 0.9 * au20 + 0.6 * au10 - 0.4 * au26
        left = np.array([mx - half - out, mouth_y - lift + (t[3, 1] - t[4, 1]) / 2])
        right = np.array([mx + half + out + 3.6 * au14, mouth_y - lift - 4.2 * au14 - (t[3, 1] - t[4, 1]) / 2])
        self.corners = [left, right]

        n = 15
        s = _lin(-1.0, 1.0, n)
        x = left[0] + (s + 1) / 2 * (right[0] - left[0])
        # lip line: chin raise and upper-lip raise push the centre up (inverted U)
        mid = mouth_y + 0.5 * au12 - 1.5 * au17 - 0.8 * au10 + 0.3 * au15
        # each half bends from the centre towards its own corner: a one-sided pull is a smirk
        line = mid + (np.where(s < 0, left[1], right[1]) - mid) * s**2
        # opening: AU20/AU10 make it rectangular, jaw drop makes it oval
        p = 2.0 + 3.0 * au20 + 2.0 * au10
        shape = np.clip(1.0 - np.abs(s) ** p, 0.0, None) ** (0.8 - 0.3 * au26)
        up_open = 2.2 * au10 + 0.8 * au25 + 2.0 * au26
        down_open = ident.lips_apart + 2.4 * au25 + 1.4 * au20 * au25 + 8.0 * au26**1.4
        self.opening = up_open + down_open
        upper_in = line - up_open * shape
        lower_in = line + down_open * shape
        thin = 1.0 - 0.75 * au24 - 0.3 * au20 - 0.25 * au12 - 0.2 * au14
        tu = 3.0 * ident.lip_thickness * max(0.15, thin)
        tl = 3.9 * ident.lip_thickness * max(0.15, thin + 0.25 * au17 - 0.1 * au26)
        bow = 1.0 - 0.3 * np.exp(-((s / 0.13) ** 2))  # cupid's bow
        upper_out = upper_in - tu * np.clip(1 - s**2, 0, None) ** 0.55 * bow
        lower_out = lower_in + tl * np.clip(1 - s**2, 0, None) ** 0.5
        curves = {"upper_out": upper_out, "upper_in": upper_in, "lower_in": lower_in, "lower_out": lower_out}
        self.mouth = {k: np.stack([x, v], 1) for k, v in curves.items()}
        self.lower_lip_bottom = float(lower_out[n // 2])

    def landmarks(self) -> list[tuple[np.ndarray, float]]:
        """(canonical point, depth) for the five landmarks."""
        return [(self.eyes[0], 2.0), (self.eyes[1], 2.0), (self.nose, _NOSE_DEPTH),
                (self.corners[0], 1.0), (self.corners[1], 1.0)]


# ---------------------------------------------------------------------- drawing


def _wrinkle(p: _Painter, f: _Face, pts: np.ndarray, strength: float, width: float = 0.7) -> None:
    """Draw a skin crease whose darkness follows ``strength`` (0 = invisible)."""
    if strength > 0.04:
        p.line(pts, _mix(f.skin, f.crease, min(1.0, strength)), width)


def _background(side: int, nz: Nuisance, rng: np.random.Generator) -> np.ndarray:
    """Flat colour plus an optional low-frequency texture, made at 8x8 and upsampled."""
    cells = rng.random((8, 3)) - 0.5  # always drawn: the stream does not depend on the texture
    base = np.asarray(nz.bg_bgr, dtype=np.float64)
    amp = 2.0 * nz.bg_texture
    if nz.bg_kind == 1 and amp > 1.0:  # soft blotches
        small, interp = base + amp * cells.reshape(2, 4, 3), cv2.INTER_CUBIC
    elif nz.bg_kind == 2 and amp > 1.0:  # linear gradient
        ramp = _lin(-0.6, 0.6, 8)[:, None, None]
        small, interp = base + amp * ramp * (np.sign(cells[0]) + 0.5 * cells[1]), cv2.INTER_LINEAR
    elif nz.bg_kind == 3 and amp > 1.0:  # vertical blocks (shelves, curtains)
        small, interp = base + amp * cells.reshape(1, 8, 3), cv2.INTER_NEAREST
    else:
        return np.full((side, side, 3), nz.bg_bgr, dtype=np.uint8)
    small = np.clip(small, 0, 255).astype(np.uint8)
    return cv2.resize(small, (side, side), interpolation=interp)


def _draw_shoulders(p: _Painter, f: _Face) -> None:
    p.fill(_ellipse(f.cx, f.chin_y + 48, 2.1 * f.half_w, 34, n=28), f.id.shirt_bgr, flat=True)


def _draw_neck(p: _Painter, f: _Face) -> None:
    cx, a = f.cx, f.half_w
    neck = np.array([[cx - 0.5 * a, f.mid_y + 10], [cx + 0.5 * a, f.mid_y + 10],
                     [cx + 0.52 * a, f.chin_y + 22], [cx, f.chin_y + 30], [cx - 0.52 * a, f.chin_y + 22]])
    p.fill(neck, f.shadow, flat=True)


def _hairline(f: _Face) -> np.ndarray:
    """Hairline from the right temple over the forehead to the left temple."""
    a, cx = f.half_w, f.cx
    xs = cx + (a - 1.0) * _lin(1.0, -1.0, 21)
    u = (xs - cx) / (a - 1.0)
    temple = f.eye_y - 9.0
    if f.id.hair_style == "fringe":
        edge = f.eye_y - 17.5 + f.id.hairline * 0.5
        ys = edge + (temple - edge + 3) * np.abs(u) ** 4
        ys = ys + 1.6 * (np.arange(xs.size) % 2)  # jagged bangs
    else:
        top = f.eye_y - 29.0 + f.id.hairline
        ys = temple + (top - temple) * np.sqrt(np.clip(1 - u**2, 0, None)) ** 0.7
    return np.stack([xs, ys], 1)


def _hair_cap(f: _Face, grow: float) -> np.ndarray:
    cap = _superellipse_arc(f.cx, f.mid_y - 4.0, f.half_w + grow, f.mid_y - f.top_y + grow, _CRANIUM_EXP, 23)
    # extend a little below the arc ends so the cap tucks behind the temples
    return np.concatenate([[cap[0] + [0.0, 6.0]], cap, [cap[-1] + [0.0, 6.0]]])


def _draw_hair_back(p: _Painter, f: _Face) -> None:
    style, a, cx = f.id.hair_style, f.half_w, f.cx
    if style == "none":
        return
    if style == "long":
        # left half hangs from the temple past the chin, curls in; mirrored for the right
        x0, bottom = cx - a, f.chin_y
        fall = _bezier((x0 - 4, f.mid_y - 25), (x0 - 9, f.mid_y + 5), (x0 - 8, bottom + 14), 7)
        curl = _bezier((x0 - 8, bottom + 14), (x0 - 6, bottom + 24), (x0 + 6, bottom + 20), 5)[1:]
        left = np.concatenate([fall, curl, [[cx - 0.3 * a, bottom + 8]]])
        back = np.concatenate([left, (left * [-1, 1] + [2 * cx, 0])[::-1]])
        p.fill(back, _mix(f.id.hair_bgr, (0, 0, 0), 0.25), depth=-4.0)
    p.fill(_hair_cap(f, 3.5 if style != "short" else 2.0), f.id.hair_bgr, depth=-4.0)


def _draw_head(p: _Painter, f: _Face) -> None:
    a, cx = f.half_w, f.cx
    if f.id.hair_style != "long":  # long hair covers the ears
        for side in (-1, 1):
            ex = cx + side * (a - 0.5)
            p.fill(_ellipse(ex, f.eye_y + 9, 5.0, 10.0, -side * 8.0, n=16), f.shadow)
            start = -90.0 if side > 0 else 90.0
            helix = _ellipse(ex + side, f.eye_y + 9, 2.5, 6.5, -side * 8.0, n=10, start=start, stop=start + 180.0)
            p.line(helix, f.skin * 0.6, 0.6)
    p.fill(f.outline, f.shadow)
    # A slightly shrunken, lighter copy gives cheap two-tone shading (jaw vs neck).
    centre = np.array([f.cx, f.mid_y])
    p.fill((f.outline - centre) * [0.92, 0.95] + centre - [0.0, 2.0], f.skin, depth=2.0)


def _draw_hair_front(p: _Painter, f: _Face) -> None:
    if f.id.hair_style == "none":
        return
    cap = _hair_cap(f, 1.5)
    hl = _hairline(f)
    # cap runs right->left over the top, hairline runs right->left too: reverse it to close.
    cap = cap[cap[:, 1] < hl[0, 1] + 1.0]
    p.fill(np.concatenate([cap, hl[::-1]]), f.id.hair_bgr, depth=-1.0)
    if f.id.hair_style == "short":
        for side in (-1, 1):  # sideburns
            x0 = f.cx + side * (f.half_w - 1.0)
            burn = np.array([[x0, f.eye_y - 10], [x0 - side * 3.0, f.eye_y - 10], [x0 - side * 2.2, f.eye_y + 4],
                             [x0 + side * 0.5, f.eye_y + 4]])
            p.fill(burn, f.id.hair_bgr)


def _draw_forehead(p: _Painter, f: _Face) -> None:
    g = f.au.get
    au1, au2 = g("AU1_inner_brow_raise", 0.0), g("AU2_outer_brow_raise", 0.0)
    # AU1 alone creases only the middle of the forehead (arched up), AU2 the full width.
    span = 6.0 + 12.0 * au2 / (au1 + au2) if au1 + au2 > 0 else 16.0
    s = _lin(-1, 1, 9)
    for i in range(3):
        y0 = f.eye_y - 17.0 - 3.4 * i
        pts = np.stack([f.cx + span * s, y0 - (1.6 * au1 - 0.5 * au2) * (1 - s**2) + 0.4 * np.sin(3 * s + i)], 1)
        _wrinkle(p, f, pts, 0.75 * max(au1, au2) + 0.25 * f.id.age - 0.12 * i, 0.65)


def _brow_centreline(f: _Face, side: int) -> np.ndarray:
    """Inner->outer brow centreline for side -1 (image left) / +1 (image right)."""
    g, ident = f.au.get, f.id
    au1, au2, au4 = g("AU1_inner_brow_raise", 0.0), g("AU2_outer_brow_raise", 0.0), g("AU4_brow_lower", 0.0)
    au9 = g("AU9_nose_wrinkle", 0.0)
    ex, ey = f.eyes[0 if side < 0 else 1]
    t = _lin(0.0, 1.0, 9)
    lower = 3.2 * au4 + 1.2 * au9
    knit = 3.0 * au4 + 0.8 * au9
    x = ex - side * (7.5 - knit * (1 - t) ** 1.5) + side * 17.0 * t
    arch = 2.2 * np.sin(math.pi * t**0.75)
    y = (ey - 10.5 - ident.brow_height - arch + lower
         - (5.0 * au1 + ident.brow_tilt) * (1 - t) ** 1.6  # inner end: AU1 up, knitted AU4 down
         + (3.0 * au4 + 0.8 * au9) * (1 - t) ** 2
         - 4.5 * au2 * t ** 0.8 - 1.0 * au2)
    return np.stack([x, y], 1)


def _draw_brows(p: _Painter, f: _Face) -> None:
    th = f.id.brow_thickness
    colour = _mix(f.id.hair_bgr, (10, 10, 15), 0.35)
    polys = []
    for side in (-1, 1):
        c = _brow_centreline(f, side)
        t = _lin(0.0, 1.0, c.shape[0])
        offset = np.stack([np.zeros_like(t), th * (1.0 - 0.5 * t**1.5) / 2.0], 1)  # tapers outwards
        polys.append(np.concatenate([c - offset, (c + offset)[::-1]]))
    p.fills(polys, colour)
    au4 = f.au.get("AU4_brow_lower", 0.0)
    for side in (-1, 1):  # vertical frown lines between knitted brows
        x = f.cx + side * 2.0
        _wrinkle(p, f, np.array([[x, f.eye_y - 11.0], [x + side * 0.6, f.eye_y - 5.5]]), 0.9 * au4 - 0.1, 0.6)


def _draw_eye(p: _Painter, f: _Face, side: int, gaze: tuple[float, float]) -> None:
    g, ident = f.au.get, f.id
    au5, au6, au7, au41 = (g("AU5_upper_lid_raise", 0.0), g("AU6_cheek_raise", 0.0),
                           g("AU7_lid_tighten", 0.0), g("AU41_lid_droop", 0.0))
    ex, ey = f.eyes[0 if side < 0 else 1]
    size = ident.eye_size
    hw = 6.6 * size
    hu = 3.2 * size * ident.eye_openness * (1 + 0.8 * au5 - 0.45 * au7 - 0.3 * au6 - 0.5 * au41)
    hl = 2.0 * size * (1 + 0.2 * au5 - 0.55 * au7 - 0.55 * au6)
    hu, hl = max(0.35, hu), max(0.3, hl)
    s = _lin(-1.0, 1.0, 11)
    x = ex + s * hw
    tilt = -0.7 * s * side  # outer corners slightly higher
    prof_u = np.clip(1 - s**2, 0, None) ** 0.7 * (1 - 0.12 * s * side)
    prof_l = np.clip(1 - s**2, 0, None) ** 0.8 * (1 + 0.15 * s * side)
    upper = np.stack([x, ey + tilt - hu * prof_u], 1)
    lower = np.stack([x, ey + tilt + hl * prof_l], 1)

    ir = 3.15 * size
    ix, iy = ex + gaze[0] * 1.6 * size, ey - 0.2 + gaze[1] * 0.8 * size
    p.fill(np.concatenate([upper, lower[::-1]]), (228, 232, 236), depth=2.0)
    p.fill(_ellipse(ix, iy, ir, ir, n=18), _mix(ident.iris_bgr, (0, 0, 0), 0.45), depth=2.0)
    p.fill(_ellipse(ix, iy, ir * 0.8, ir * 0.8, n=16), ident.iris_bgr, depth=2.0)
    p.fill(_ellipse(ix, iy, ir * 0.38, ir * 0.38, n=12), (12, 12, 14), depth=2.0)
    p.fill(_ellipse(ix + 0.9 * size, iy - 1.0 * size, 0.55 * size, 0.55 * size, n=8), (250, 250, 250), depth=2.0)
    # Skin covers clip the iris to the lid aperture.
    top = np.minimum(upper[:, 1], ey - ir - 2.0) - 0.5
    bottom = np.maximum(lower[:, 1], ey + ir + 2.0) + 0.5
    p.fill(np.concatenate([upper, np.stack([x, top], 1)[::-1]]), f.skin, depth=2.0)
    p.fill(np.concatenate([lower, np.stack([x, bottom], 1)[::-1]]), f.skin, depth=2.0)
    # Lid crease (hidden when the lid retracts, AU5) and lash line.
    crease = upper.copy()
    crease[:, 1] -= (2.3 + 0.8 * au41) * np.clip(1 - s**2, 0, None) ** 0.5 * (1 - 0.7 * au5) + 0.3
    _wrinkle(p, f, crease[1:-1], 0.45 * (1 - au5) + 0.1, 0.5)
    flick = (upper[-1] if side > 0 else upper[0]) + [side * 1.2, -0.8]  # lashes run past the outer corner
    lash = np.vstack([upper, flick]) if side > 0 else np.vstack([flick, upper])
    p.line(lash, (20, 20, 25), 0.85, depth=2.0)
    p.line(lower[1:-1], _mix(f.skin, (30, 30, 40), 0.45), 0.45, depth=2.0)
    # Lower-lid bulge + crow's feet: the cheek raiser / lid tightener signature.
    bulge = lower[2:-2].copy()
    bulge[:, 1] += 1.9
    _wrinkle(p, f, bulge, 0.8 * au6 + 0.5 * au7 + 0.2 * ident.age, 0.5)
    ox = ex + side * (hw + 1.5)
    for k in (-1.3, 0.0, 1.3):
        _wrinkle(p, f, np.array([[ox, ey + k * 0.8], [ox + side * 4.0, ey + k * 2.2]]),
                 0.9 * au6 + 0.25 * ident.age * (abs(k) < 0.1) - 0.05, 0.5)


def _draw_cheeks(p: _Painter, f: _Face) -> None:
    au6 = f.au.get("AU6_cheek_raise", 0.0)
    au12 = f.au.get("AU12_lip_corner_pull", 0.0)
    lift = 2.5 * au6 + 1.0 * au12
    if lift < 0.1:
        return
    colour = _mix(f.skin, _mix(f.skin, (150, 150, 255), 0.35) + 12, min(1.0, 0.25 * au6 + 0.15 * au12))
    for side in (-1, 1):
        ex, ey = f.eyes[0 if side < 0 else 1]
        p.fill(_ellipse(ex + side * 2.0, ey + 14.5 - lift, 7.5, 4.6, n=16), colour, depth=2.0)


def _draw_nose(p: _Painter, f: _Face) -> None:
    g = f.au.get
    au9, au10 = g("AU9_nose_wrinkle", 0.0), g("AU10_upper_lip_raise", 0.0)
    nx, ny = f.nose
    nw = 4.6 * f.id.nose_width * (1 + 0.15 * au9)
    rise = 1.6 * au9 + 0.8 * au10
    dark = _mix(f.skin, (25, 20, 30), 0.45)
    # bridge shading on one side and a tip highlight
    p.line(np.array([[nx - 2.2, f.eye_y + 1.5], [nx - 2.8, ny - 5.0], [nx - nw + 0.5, ny - 1.5 - rise]]),
           _mix(f.skin, f.shadow, 0.7), 0.8, depth=6.0)
    p.fill(_ellipse(nx + 0.6, ny - 1.6, 1.6, 1.3, n=10), _mix(f.skin, (255, 255, 255), 0.18), depth=_NOSE_DEPTH)
    for side in (-1, 1):
        wing = _ellipse(nx + side * (nw - 2.2), ny + 0.4 - rise, 2.7, 2.6, n=9,
                        start=120 if side < 0 else -120, stop=300 if side < 0 else 60)
        p.line(wing, _mix(f.skin, f.crease, 0.85), 0.7, depth=6.0)
        p.fill(_ellipse(nx + side * 1.9, ny + 2.0 - rise * 0.8, 1.4, 0.75, side * 20.0, n=10), dark, depth=8.0)
    p.line(np.array([[nx - 1.8, ny + 3.0 - rise], [nx, ny + 3.5 - rise], [nx + 1.8, ny + 3.0 - rise]]),
           _mix(f.skin, f.crease, 0.6), 0.6, depth=8.0)
    # nose wrinkles (AU9): bunny lines fanning out from the bridge, plus a root crease
    for side in (-1, 1):
        for i in range(3):
            y = f.eye_y + 3.5 + 2.4 * i
            pts = np.array([[nx + side * 0.8, y + 0.6], [nx + side * 2.6, y], [nx + side * 4.6, y - 1.4]])
            _wrinkle(p, f, pts, 1.0 * au9 - 0.15 * i, 0.5)
    _wrinkle(p, f, np.array([[nx - 2.5, f.eye_y + 1.0], [nx, f.eye_y + 0.4], [nx + 2.5, f.eye_y + 1.0]]),
             0.7 * au9 + 0.2 * g("AU4_brow_lower", 0.0), 0.5)


def _draw_folds(p: _Painter, f: _Face) -> None:
    """Nasolabial folds, deepened by smiling (AU12/AU6) and disgust (AU9/AU10)."""
    g = f.au.get
    nx, ny = f.nose
    nw = 4.6 * f.id.nose_width
    base = (0.03 + 0.35 * f.id.age + 0.7 * g("AU12_lip_corner_pull", 0.0) + 0.8 * g("AU10_upper_lip_raise", 0.0)
            + 0.5 * g("AU9_nose_wrinkle", 0.0) + 0.3 * g("AU6_cheek_raise", 0.0) - 0.2 * g("AU26_jaw_drop", 0.0))
    for side, corner in ((-1, f.corners[0]), (1, f.corners[1])):
        strength = base + (0.6 * g("AU14_dimpler_unilateral", 0.0) if side > 0 else 0.0)
        start = (nx + side * (nw + 0.8), ny - 0.5 - 1.2 * g("AU9_nose_wrinkle", 0.0))
        end = (corner[0] + side * 3.0, corner[1] + 3.0)
        ctrl = (start[0] + side * 6.5, (start[1] + end[1]) / 2)
        # the fold fades towards the mouth: draw the deep upper part stronger
        curve = _bezier(start, ctrl, end, 9)
        _wrinkle(p, f, curve[:6], strength, 0.7)
        _wrinkle(p, f, curve[5:], 0.6 * strength, 0.6)


def _draw_mouth(p: _Painter, f: _Face) -> None:
    m, ident = f.mouth, f.id
    g = f.au.get
    lip = np.asarray(ident.lip_bgr, dtype=np.float64)
    p.fill(np.concatenate([m["upper_out"], m["lower_out"][::-1]]), lip, depth=1.0)
    # upper lip slightly darker than lower lip (light from above)
    p.fill(np.concatenate([m["upper_out"], m["upper_in"][::-1]]), lip * 0.85, depth=1.0)
    if f.opening > 0.5:
        p.fill(np.concatenate([m["upper_in"], m["lower_in"][::-1]]), (40, 30, 70), depth=1.0)
        sl = slice(2, -2)
        top = m["upper_in"][sl]
        gap = m["lower_in"][sl, 1] - top[:, 1]
        # teeth only show once the lips are clearly apart
        teeth_h = np.minimum(gap, 3.2) * np.clip((f.opening - 0.8) / 1.6, 0, 1) * (1 - 0.6 * g("AU26_jaw_drop", 0.0))
        if teeth_h.max() > 0.3:
            bottom = np.stack([top[:, 0], top[:, 1] + teeth_h], 1)
            p.fill(np.concatenate([top, bottom[::-1]]), (215, 228, 235), depth=1.0)
        if gap.max() > 5.0:  # tongue at the bottom of a wide-open mouth
            low = m["lower_in"][3:-3]
            rise = np.minimum(0.3 * gap[1:-1], 2.8) * (1 - np.abs(_lin(-1.0, 1.0, low.shape[0])) ** 2)
            p.fill(np.concatenate([low, (low - np.stack([0 * rise, rise], 1))[::-1]]), (80, 80, 170), depth=1.0)
    line_dark = _mix(lip, (20, 15, 30), 0.6 if f.opening < 1.0 else 0.3)
    p.line(m["upper_in"], line_dark, 0.7, depth=1.0)
    # chin boss crease (AU17) and one-sided dimple (AU14)
    cx = f.cx
    s = _lin(-1, 1, 7)
    y0 = f.lower_lip_bottom + 3.2
    _wrinkle(p, f, np.stack([cx + 5.0 * s, y0 - 1.2 * (1 - s**2)], 1),
             0.8 * g("AU17_chin_raise", 0.0) + 0.3 * g("AU15_lip_corner_depress", 0.0) + 0.15 * ident.age, 0.55)
    r = f.corners[1]
    _wrinkle(p, f, _bezier((r[0] + 1.2, r[1] - 2.5), (r[0] + 2.6, r[1]), (r[0] + 1.4, r[1] + 2.5), 5),
             1.0 * g("AU14_dimpler_unilateral", 0.0), 0.65)


def _draw_beard(p: _Painter, f: _Face) -> None:
    if f.id.beard <= 0.0:
        return
    colour = _mix(f.skin, f.id.hair_bgr, 0.35 + 0.6 * f.id.beard)
    nx, ny = f.nose
    lo = f.outline[17:]  # lower (jaw) part of the outline, left -> right
    lo = lo[lo[:, 1] > f.eye_y + 8.0]
    (lx, ly), (rx, ry) = f.corners
    inner = np.array([[rx + 7.0, ny - 1.0], [rx + 3.5, ry + 1.5], [f.cx + 5, f.lower_lip_bottom + 2.5],
                      [f.cx - 5, f.lower_lip_bottom + 2.5], [lx - 3.5, ly + 1.5], [lx - 7.0, ny - 1.0]])
    p.fill(np.concatenate([lo, inner]), colour)
    # moustache: a band above the upper lip that stops below the nostrils
    lip = f.mouth["upper_out"] - [0.0, 0.2]
    top = lip.copy()
    top[:, 1] = np.maximum(lip[:, 1] - 3.8 * f.id.beard - 1.0, ny + 3.2)
    top[:, 0] += np.sign(top[:, 0] - f.cx) * 1.0
    p.fill(np.concatenate([lip, top[::-1]]), colour)


def _draw_glasses(p: _Painter, f: _Face) -> None:
    frame = (25, 25, 30)
    rims = []
    for ex, ey in f.eyes:
        rims.append(_ellipse(ex, ey + 0.5, 10.0, 7.0, n=20))
        p.line(rims[-1], frame, 0.9, depth=6.0, closed=True)
    p.line(np.array([[f.eyes[0][0] + 9.0, f.eye_y - 1.5], [f.cx, f.eye_y - 2.5], [f.eyes[1][0] - 9.0, f.eye_y - 1.5]]),
           frame, 0.9, depth=8.0)
    for side, (ex, ey) in ((-1, f.eyes[0]), (1, f.eyes[1])):
        p.line(np.array([[ex + side * 10.0, ey - 1.0], [f.cx + side * f.half_w, ey - 2.0]]), frame, 0.9, depth=2.0)


def _draw_occluder(p: _Painter, f: _Face, occ: Occluder) -> None:
    cx, cy = occ.cx * 112.0, occ.cy * 112.0
    if occ.kind == "sunglasses":
        lenses = [_ellipse(ex, ey + 1.0, 10.5, 7.5, n=20) for ex, ey in f.eyes]
        p.fills(lenses, occ.bgr, depth=6.0)
        p.line(np.array([[f.eyes[0][0] + 9, f.eye_y - 2], [f.eyes[1][0] - 9, f.eye_y - 2]]), occ.bgr, 1.2, depth=8.0)
        return
    if occ.kind == "bar":
        p.fill(_rotated_rect(cx, cy, occ.w * 112.0, occ.h * 112.0, occ.angle_deg), occ.bgr, depth=30.0, flat=True)
        return
    if occ.kind == "ellipse":
        p.fill(_ellipse(cx, cy, occ.w * 112.0, occ.h * 112.0, occ.angle_deg, n=24), occ.bgr, depth=30.0, flat=True)
        return
    # hand: palm + four fingers pointing along angle (from below the frame upwards)
    r = occ.w * 112.0 / 2.0
    a = math.radians(occ.angle_deg - 90.0)
    ux, uy = math.cos(a), math.sin(a)  # finger direction
    vx, vy = -uy, ux
    p.fill(_ellipse(cx, cy, r * 0.9, r * 1.1, occ.angle_deg, n=20), occ.bgr, flat=True)
    p.fill(np.array([[cx + vx * r * 0.8, cy + vy * r * 0.8], [cx - vx * r * 0.8, cy - vy * r * 0.8],
                     [cx - vx * r * 0.9 - ux * 60, cy - vy * r * 0.9 - uy * 60],
                     [cx + vx * r * 0.9 - ux * 60, cy + vy * r * 0.9 - uy * 60]]), occ.bgr, flat=True)
    dark = _mix(occ.bgr, (0, 0, 0), 0.35)
    for i, length in enumerate((1.5, 1.8, 1.7, 1.35)):
        o = (i - 1.5) * r * 0.47
        b = (cx + vx * o + ux * r * 0.5, cy + vy * o + uy * r * 0.5)
        tip = np.array([[b[0], b[1]], [b[0] + ux * r * length, b[1] + uy * r * length]])
        p.line(tip, dark, r * 0.47, closed=False)
        p.line(tip, occ.bgr, r * 0.36, closed=False)


def _rotated_rect(cx: float, cy: float, w: float, h: float, angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    return corners @ np.array([[c, s], [-s, c]]) + [cx, cy]


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
    face = _Face(identity, au)
    p = _Painter(size, ss, nuisance)

    _draw_shoulders(p, face)
    _draw_hair_back(p, face)
    _draw_neck(p, face)
    _draw_head(p, face)
    _draw_cheeks(p, face)
    _draw_forehead(p, face)
    _draw_folds(p, face)
    _draw_nose(p, face)
    for side in (-1, 1):
        _draw_eye(p, face, side, nuisance.gaze)
    _draw_brows(p, face)
    _draw_beard(p, face)
    _draw_mouth(p, face)
    _draw_hair_front(p, face)
    if identity.glasses:
        _draw_glasses(p, face)
    if nuisance.occluder is not None:
        _draw_occluder(p, face, nuisance.occluder)
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
