"""FaceSynth's facial parts, the ones expressions move: forehead, brows, eyes, cheeks,
nose, nasolabial folds, mouth (and the beard around it). Creases are drawn by ``wrinkle``
with a darkness that follows their action units."""

from __future__ import annotations

import math

import numpy as np

from fer_pipeline.data.synth.face import NOSE_DEPTH, Face
from fer_pipeline.data.synth.painter import Painter, bezier, ellipse, lin, mix


def wrinkle(p: Painter, f: Face, pts: np.ndarray, strength: float, width: float = 0.7) -> None:
    """Draw a skin crease whose darkness follows ``strength`` (0 = invisible)."""
    if strength > 0.04:
        p.line(pts, mix(f.skin, f.crease, min(1.0, strength)), width)


def draw_forehead(p: Painter, f: Face) -> None:
    g = f.au.get
    au1, au2 = g("AU1_inner_brow_raise", 0.0), g("AU2_outer_brow_raise", 0.0)
    # AU1 alone creases only the middle of the forehead (arched up), AU2 the full width.
    span = 6.0 + 12.0 * au2 / (au1 + au2) if au1 + au2 > 0 else 16.0
    s = lin(-1, 1, 9)
    for i in range(3):
        y0 = f.eye_y - 17.0 - 3.4 * i
        pts = np.stack([f.cx + span * s, y0 - (1.6 * au1 - 0.5 * au2) * (1 - s**2) + 0.4 * np.sin(3 * s + i)], 1)
        wrinkle(p, f, pts, 0.75 * max(au1, au2) + 0.25 * f.id.age - 0.12 * i, 0.65)


def _brow_centreline(f: Face, side: int) -> np.ndarray:
    """Inner->outer brow centreline for side -1 (image left) / +1 (image right)."""
    g, ident = f.au.get, f.id
    au1, au2, au4 = g("AU1_inner_brow_raise", 0.0), g("AU2_outer_brow_raise", 0.0), g("AU4_brow_lower", 0.0)
    au9 = g("AU9_nose_wrinkle", 0.0)
    ex, ey = f.eyes[0 if side < 0 else 1]
    t = lin(0.0, 1.0, 9)
    lower = 3.2 * au4 + 1.2 * au9
    knit = 3.0 * au4 + 0.8 * au9
    x = ex - side * (7.5 - knit * (1 - t) ** 1.5) + side * 17.0 * t
    arch = 2.2 * np.sin(math.pi * t**0.75)
    y = (ey - 10.5 - ident.brow_height - arch + lower
         - (5.0 * au1 + ident.brow_tilt) * (1 - t) ** 1.6  # inner end: AU1 up, knitted AU4 down
         + (3.0 * au4 + 0.8 * au9) * (1 - t) ** 2
         - 4.5 * au2 * t ** 0.8 - 1.0 * au2)
    return np.stack([x, y], 1)


def draw_brows(p: Painter, f: Face) -> None:
    th = f.id.brow_thickness
    colour = mix(f.id.hair_bgr, (10, 10, 15), 0.35)
    polys = []
    for side in (-1, 1):
        c = _brow_centreline(f, side)
        t = lin(0.0, 1.0, c.shape[0])
        offset = np.stack([np.zeros_like(t), th * (1.0 - 0.5 * t**1.5) / 2.0], 1)  # tapers outwards
        polys.append(np.concatenate([c - offset, (c + offset)[::-1]]))
    p.fills(polys, colour)
    au4 = f.au.get("AU4_brow_lower", 0.0)
    for side in (-1, 1):  # vertical frown lines between knitted brows
        x = f.cx + side * 2.0
        wrinkle(p, f, np.array([[x, f.eye_y - 11.0], [x + side * 0.6, f.eye_y - 5.5]]), 0.9 * au4 - 0.1, 0.6)


def draw_eye(p: Painter, f: Face, side: int, gaze: tuple[float, float]) -> None:
    g, ident = f.au.get, f.id
    au5, au6, au7, au41 = (g("AU5_upper_lid_raise", 0.0), g("AU6_cheek_raise", 0.0),
                           g("AU7_lid_tighten", 0.0), g("AU41_lid_droop", 0.0))
    ex, ey = f.eyes[0 if side < 0 else 1]
    size = ident.eye_size
    hw = 6.6 * size
    hu = 3.2 * size * ident.eye_openness * (1 + 0.8 * au5 - 0.45 * au7 - 0.3 * au6 - 0.5 * au41)
    hl = 2.0 * size * (1 + 0.2 * au5 - 0.55 * au7 - 0.55 * au6)
    hu, hl = max(0.35, hu), max(0.3, hl)
    s = lin(-1.0, 1.0, 11)
    x = ex + s * hw
    tilt = -0.7 * s * side  # outer corners slightly higher
    prof_u = np.clip(1 - s**2, 0, None) ** 0.7 * (1 - 0.12 * s * side)
    prof_l = np.clip(1 - s**2, 0, None) ** 0.8 * (1 + 0.15 * s * side)
    upper = np.stack([x, ey + tilt - hu * prof_u], 1)
    lower = np.stack([x, ey + tilt + hl * prof_l], 1)

    ir = 3.15 * size
    ix, iy = ex + gaze[0] * 1.6 * size, ey - 0.2 + gaze[1] * 0.8 * size
    p.fill(np.concatenate([upper, lower[::-1]]), (228, 232, 236), depth=2.0)
    p.fill(ellipse(ix, iy, ir, ir, n=18), mix(ident.iris_bgr, (0, 0, 0), 0.45), depth=2.0)
    p.fill(ellipse(ix, iy, ir * 0.8, ir * 0.8, n=16), ident.iris_bgr, depth=2.0)
    p.fill(ellipse(ix, iy, ir * 0.38, ir * 0.38, n=12), (12, 12, 14), depth=2.0)
    p.fill(ellipse(ix + 0.9 * size, iy - 1.0 * size, 0.55 * size, 0.55 * size, n=8), (250, 250, 250), depth=2.0)
    # Skin covers clip the iris to the lid aperture.
    top = np.minimum(upper[:, 1], ey - ir - 2.0) - 0.5
    bottom = np.maximum(lower[:, 1], ey + ir + 2.0) + 0.5
    p.fill(np.concatenate([upper, np.stack([x, top], 1)[::-1]]), f.skin, depth=2.0)
    p.fill(np.concatenate([lower, np.stack([x, bottom], 1)[::-1]]), f.skin, depth=2.0)
    # Lid crease (hidden when the lid retracts, AU5) and lash line.
    crease = upper.copy()
    crease[:, 1] -= (2.3 + 0.8 * au41) * np.clip(1 - s**2, 0, None) ** 0.5 * (1 - 0.7 * au5) + 0.3
    wrinkle(p, f, crease[1:-1], 0.45 * (1 - au5) + 0.1, 0.5)
    flick = (upper[-1] if side > 0 else upper[0]) + [side * 1.2, -0.8]  # lashes run past the outer corner
    lash = np.vstack([upper, flick]) if side > 0 else np.vstack([flick, upper])
    p.line(lash, (20, 20, 25), 0.85, depth=2.0)
    p.line(lower[1:-1], mix(f.skin, (30, 30, 40), 0.45), 0.45, depth=2.0)
    # Lower-lid bulge + crow's feet: the cheek raiser / lid tightener signature.
    bulge = lower[2:-2].copy()
    bulge[:, 1] += 1.9
    wrinkle(p, f, bulge, 0.8 * au6 + 0.5 * au7 + 0.2 * ident.age, 0.5)
    ox = ex + side * (hw + 1.5)
    for k in (-1.3, 0.0, 1.3):
        wrinkle(p, f, np.array([[ox, ey + k * 0.8], [ox + side * 4.0, ey + k * 2.2]]),
                 0.9 * au6 + 0.25 * ident.age * (abs(k) < 0.1) - 0.05, 0.5)


def draw_cheeks(p: Painter, f: Face) -> None:
    au6 = f.au.get("AU6_cheek_raise", 0.0)
    au12 = f.au.get("AU12_lip_corner_pull", 0.0)
    lift = 2.5 * au6 + 1.0 * au12
    if lift < 0.1:
        return
    colour = mix(f.skin, mix(f.skin, (150, 150, 255), 0.35) + 12, min(1.0, 0.25 * au6 + 0.15 * au12))
    for side in (-1, 1):
        ex, ey = f.eyes[0 if side < 0 else 1]
        p.fill(ellipse(ex + side * 2.0, ey + 14.5 - lift, 7.5, 4.6, n=16), colour, depth=2.0)


def draw_nose(p: Painter, f: Face) -> None:
    g = f.au.get
    au9, au10 = g("AU9_nose_wrinkle", 0.0), g("AU10_upper_lip_raise", 0.0)
    nx, ny = f.nose
    nw = 4.6 * f.id.nose_width * (1 + 0.15 * au9)
    rise = 1.6 * au9 + 0.8 * au10
    dark = mix(f.skin, (25, 20, 30), 0.45)
    # bridge shading on one side and a tip highlight
    p.line(np.array([[nx - 2.2, f.eye_y + 1.5], [nx - 2.8, ny - 5.0], [nx - nw + 0.5, ny - 1.5 - rise]]),
           mix(f.skin, f.shadow, 0.7), 0.8, depth=6.0)
    p.fill(ellipse(nx + 0.6, ny - 1.6, 1.6, 1.3, n=10), mix(f.skin, (255, 255, 255), 0.18), depth=NOSE_DEPTH)
    for side in (-1, 1):
        wing = ellipse(nx + side * (nw - 2.2), ny + 0.4 - rise, 2.7, 2.6, n=9,
                        start=120 if side < 0 else -120, stop=300 if side < 0 else 60)
        p.line(wing, mix(f.skin, f.crease, 0.85), 0.7, depth=6.0)
        p.fill(ellipse(nx + side * 1.9, ny + 2.0 - rise * 0.8, 1.4, 0.75, side * 20.0, n=10), dark, depth=8.0)
    p.line(np.array([[nx - 1.8, ny + 3.0 - rise], [nx, ny + 3.5 - rise], [nx + 1.8, ny + 3.0 - rise]]),
           mix(f.skin, f.crease, 0.6), 0.6, depth=8.0)
    # nose wrinkles (AU9): bunny lines fanning out from the bridge, plus a root crease
    for side in (-1, 1):
        for i in range(3):
            y = f.eye_y + 3.5 + 2.4 * i
            pts = np.array([[nx + side * 0.8, y + 0.6], [nx + side * 2.6, y], [nx + side * 4.6, y - 1.4]])
            wrinkle(p, f, pts, 1.0 * au9 - 0.15 * i, 0.5)
    wrinkle(p, f, np.array([[nx - 2.5, f.eye_y + 1.0], [nx, f.eye_y + 0.4], [nx + 2.5, f.eye_y + 1.0]]),
             0.7 * au9 + 0.2 * g("AU4_brow_lower", 0.0), 0.5)


def draw_folds(p: Painter, f: Face) -> None:
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
        curve = bezier(start, ctrl, end, 9)
        wrinkle(p, f, curve[:6], strength, 0.7)
        wrinkle(p, f, curve[5:], 0.6 * strength, 0.6)


def draw_mouth(p: Painter, f: Face) -> None:
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
            rise = np.minimum(0.3 * gap[1:-1], 2.8) * (1 - np.abs(lin(-1.0, 1.0, low.shape[0])) ** 2)
            p.fill(np.concatenate([low, (low - np.stack([0 * rise, rise], 1))[::-1]]), (80, 80, 170), depth=1.0)
    line_dark = mix(lip, (20, 15, 30), 0.6 if f.opening < 1.0 else 0.3)
    p.line(m["upper_in"], line_dark, 0.7, depth=1.0)
    # chin boss crease (AU17) and one-sided dimple (AU14)
    cx = f.cx
    s = lin(-1, 1, 7)
    y0 = f.lower_lip_bottom + 3.2
    wrinkle(p, f, np.stack([cx + 5.0 * s, y0 - 1.2 * (1 - s**2)], 1),
             0.8 * g("AU17_chin_raise", 0.0) + 0.3 * g("AU15_lip_corner_depress", 0.0) + 0.15 * ident.age, 0.55)
    r = f.corners[1]
    wrinkle(p, f, bezier((r[0] + 1.2, r[1] - 2.5), (r[0] + 2.6, r[1]), (r[0] + 1.4, r[1] + 2.5), 5),
             1.0 * g("AU14_dimpler_unilateral", 0.0), 0.65)


def draw_beard(p: Painter, f: Face) -> None:
    if f.id.beard <= 0.0:
        return
    colour = mix(f.skin, f.id.hair_bgr, 0.35 + 0.6 * f.id.beard)
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
