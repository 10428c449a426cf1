"""FaceSynth's painter: canonical-frame shapes posed on an ellipsoidal head and rasterised
anti-aliased (OpenCV polygons, sub-pixel fixed point), plus the shape helpers the face
parts are drawn with."""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from fer_pipeline.data.synth.scene import Nuisance

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_FIX = float(1 << _SHIFT)
_AA = cv2.LINE_AA

# Head ellipsoid (canonical units) used for the yaw/pitch approximation.
_HEAD_C = (56.0, 60.0)
_HEAD_R = (48.0, 64.0, 40.0)  # x, y, depth


class Painter:
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


def mix(a, b, t: float) -> np.ndarray:
    """Colour between a (t=0) and b (t=1)."""
    return np.asarray(a, dtype=np.float64) * (1.0 - t) + np.asarray(b, dtype=np.float64) * t


@lru_cache(maxsize=None)
def lin(a: float, b: float, n: int) -> np.ndarray:
    """Cached read-only linspace: the same few samplings are used for every face."""
    out = np.linspace(a, b, n)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=None)
def _cos_sin(n: int, start: float, stop: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.radians(np.linspace(start, stop, n, endpoint=stop - start < 360.0))
    return np.cos(t), np.sin(t)


def ellipse(cx: float, cy: float, ax: float, ay: float, angle_deg: float = 0.0, n: int = 20,
             start: float = 0.0, stop: float = 360.0) -> np.ndarray:
    cos_t, sin_t = _cos_sin(n, float(start), float(stop))
    a = math.radians(angle_deg)
    x, y = ax * cos_t, ay * sin_t
    return np.stack([cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a)], axis=1)


def superellipse_arc(cx: float, cy: float, a: float, b: float, exp: float, n: int) -> np.ndarray:
    """Upper half (right -> left) of a super-ellipse; exp > 2 is boxier than an ellipse."""
    t = lin(0.0, math.pi, n)
    c, s = np.cos(t), np.sin(t)
    return np.stack([cx + a * np.sign(c) * np.abs(c) ** (2.0 / exp), cy - b * s ** (2.0 / exp)], 1)


def bezier(p0, p1, p2, n: int = 8) -> np.ndarray:
    t = lin(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)


def rotated_rect(cx: float, cy: float, w: float, h: float, angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    return corners @ np.array([[c, s], [-s, c]]) + [cx, cy]
