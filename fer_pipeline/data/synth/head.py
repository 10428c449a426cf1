"""FaceSynth's head parts: body, neck, ears and head shape, hair (behind and in front of
the face), glasses and occluders."""

from __future__ import annotations

import math

import numpy as np

from fer_pipeline.data.synth.face import CRANIUM_EXP, Face
from fer_pipeline.data.synth.painter import Painter, bezier, ellipse, lin, mix, rotated_rect, superellipse_arc
from fer_pipeline.data.synth.scene import Occluder


def draw_shoulders(p: Painter, f: Face) -> None:
    p.fill(ellipse(f.cx, f.chin_y + 48, 2.1 * f.half_w, 34, n=28), f.id.shirt_bgr, flat=True)


def draw_neck(p: Painter, f: Face) -> None:
    cx, a = f.cx, f.half_w
    neck = np.array([[cx - 0.5 * a, f.mid_y + 10], [cx + 0.5 * a, f.mid_y + 10],
                     [cx + 0.52 * a, f.chin_y + 22], [cx, f.chin_y + 30], [cx - 0.52 * a, f.chin_y + 22]])
    p.fill(neck, f.shadow, flat=True)


def _hairline(f: Face) -> np.ndarray:
    """Hairline from the right temple over the forehead to the left temple."""
    a, cx = f.half_w, f.cx
    xs = cx + (a - 1.0) * lin(1.0, -1.0, 21)
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


def _hair_cap(f: Face, grow: float) -> np.ndarray:
    cap = superellipse_arc(f.cx, f.mid_y - 4.0, f.half_w + grow, f.mid_y - f.top_y + grow, CRANIUM_EXP, 23)
    # extend a little below the arc ends so the cap tucks behind the temples
    return np.concatenate([[cap[0] + [0.0, 6.0]], cap, [cap[-1] + [0.0, 6.0]]])


def draw_hair_back(p: Painter, f: Face) -> None:
    style, a, cx = f.id.hair_style, f.half_w, f.cx
    if style == "none":
        return
    if style == "long":
        # left half hangs from the temple past the chin, curls in; mirrored for the right
        x0, bottom = cx - a, f.chin_y
        fall = bezier((x0 - 4, f.mid_y - 25), (x0 - 9, f.mid_y + 5), (x0 - 8, bottom + 14), 7)
        curl = bezier((x0 - 8, bottom + 14), (x0 - 6, bottom + 24), (x0 + 6, bottom + 20), 5)[1:]
        left = np.concatenate([fall, curl, [[cx - 0.3 * a, bottom + 8]]])
        back = np.concatenate([left, (left * [-1, 1] + [2 * cx, 0])[::-1]])
        p.fill(back, mix(f.id.hair_bgr, (0, 0, 0), 0.25), depth=-4.0)
    p.fill(_hair_cap(f, 3.5 if style != "short" else 2.0), f.id.hair_bgr, depth=-4.0)


def draw_head(p: Painter, f: Face) -> None:
    a, cx = f.half_w, f.cx
    if f.id.hair_style != "long":  # long hair covers the ears
        for side in (-1, 1):
            ex = cx + side * (a - 0.5)
            p.fill(ellipse(ex, f.eye_y + 9, 5.0, 10.0, -side * 8.0, n=16), f.shadow)
            start = -90.0 if side > 0 else 90.0
            helix = ellipse(ex + side, f.eye_y + 9, 2.5, 6.5, -side * 8.0, n=10, start=start, stop=start + 180.0)
            p.line(helix, f.skin * 0.6, 0.6)
    p.fill(f.outline, f.shadow)
    # A slightly shrunken, lighter copy gives cheap two-tone shading (jaw vs neck).
    centre = np.array([f.cx, f.mid_y])
    p.fill((f.outline - centre) * [0.92, 0.95] + centre - [0.0, 2.0], f.skin, depth=2.0)


def draw_hair_front(p: Painter, f: Face) -> None:
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


def draw_glasses(p: Painter, f: Face) -> None:
    frame = (25, 25, 30)
    rims = []
    for ex, ey in f.eyes:
        rims.append(ellipse(ex, ey + 0.5, 10.0, 7.0, n=20))
        p.line(rims[-1], frame, 0.9, depth=6.0, closed=True)
    p.line(np.array([[f.eyes[0][0] + 9.0, f.eye_y - 1.5], [f.cx, f.eye_y - 2.5], [f.eyes[1][0] - 9.0, f.eye_y - 1.5]]),
           frame, 0.9, depth=8.0)
    for side, (ex, ey) in ((-1, f.eyes[0]), (1, f.eyes[1])):
        p.line(np.array([[ex + side * 10.0, ey - 1.0], [f.cx + side * f.half_w, ey - 2.0]]), frame, 0.9, depth=2.0)


def draw_occluder(p: Painter, f: Face, occ: Occluder) -> None:
    cx, cy = occ.cx * 112.0, occ.cy * 112.0
    if occ.kind == "sunglasses":
        lenses = [ellipse(ex, ey + 1.0, 10.5, 7.5, n=20) for ex, ey in f.eyes]
        p.fills(lenses, occ.bgr, depth=6.0)
        p.line(np.array([[f.eyes[0][0] + 9, f.eye_y - 2], [f.eyes[1][0] - 9, f.eye_y - 2]]), occ.bgr, 1.2, depth=8.0)
        return
    if occ.kind == "bar":
        p.fill(rotated_rect(cx, cy, occ.w * 112.0, occ.h * 112.0, occ.angle_deg), occ.bgr, depth=30.0, flat=True)
        return
    if occ.kind == "ellipse":
        p.fill(ellipse(cx, cy, occ.w * 112.0, occ.h * 112.0, occ.angle_deg, n=24), occ.bgr, depth=30.0, flat=True)
        return
    # hand: palm + four fingers pointing along angle (from below the frame upwards)
    r = occ.w * 112.0 / 2.0
    a = math.radians(occ.angle_deg - 90.0)
    ux, uy = math.cos(a), math.sin(a)  # finger direction
    vx, vy = -uy, ux
    p.fill(ellipse(cx, cy, r * 0.9, r * 1.1, occ.angle_deg, n=20), occ.bgr, flat=True)
    p.fill(np.array([[cx + vx * r * 0.8, cy + vy * r * 0.8], [cx - vx * r * 0.8, cy - vy * r * 0.8],
                     [cx - vx * r * 0.9 - ux * 60, cy - vy * r * 0.9 - uy * 60],
                     [cx + vx * r * 0.9 - ux * 60, cy + vy * r * 0.9 - uy * 60]]), occ.bgr, flat=True)
    dark = mix(occ.bgr, (0, 0, 0), 0.35)
    for i, length in enumerate((1.5, 1.8, 1.7, 1.35)):
        o = (i - 1.5) * r * 0.47
        b = (cx + vx * o + ux * r * 0.5, cy + vy * o + uy * r * 0.5)
        tip = np.array([[b[0], b[1]], [b[0] + ux * r * length, b[1] + uy * r * length]])
        p.line(tip, dark, r * 0.47, closed=False)
        p.line(tip, occ.bgr, r * 0.36, closed=False)
