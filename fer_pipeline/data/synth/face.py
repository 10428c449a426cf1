"""FaceSynth's face geometry: one face's canonical-frame landmarks, outline and mouth
shape from its identity and action units, computed once before drawing."""

from __future__ import annotations

import math

import numpy as np

from fer_pipeline.data.prep.align import ARCFACE_TEMPLATE  # the canonical frame's five landmarks
from fer_pipeline.data.synth.painter import lin, superellipse_arc
from fer_pipeline.data.synth.scene import Identity

NOSE_DEPTH = 11.0
CRANIUM_EXP = 2.5  # super-ellipse exponent of the skull top (2 would look egg-shaped)


class Face:
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
        upper = superellipse_arc(cx, self.mid_y, a, self.mid_y - self.top_y, CRANIUM_EXP, 17)
        n = self.id.jaw_roundness
        t_lo = lin(math.pi, 2 * math.pi, 19)[1:-1]
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
        s = lin(-1.0, 1.0, n)
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
        return [(self.eyes[0], 2.0), (self.eyes[1], 2.0), (self.nose, NOSE_DEPTH),
                (self.corners[0], 1.0), (self.corners[1], 1.0)]
