"""Expression prototypes expressed as FACS-style action-unit (AU) activations.

The renderer (``render.py``) only understands action units; this module maps
the canonical expression labels onto them.  Prototypes follow the usual
EMFACS-style descriptions, deliberately keeping the overlaps that make real
facial-expression recognition hard: fear contains most of surprise, disgust
shares the brow lowerer with anger, and sadness differs from neutral only by
comparatively subtle brow / lip-corner / lid cues.
"""

from __future__ import annotations

import math

ACTION_UNITS: tuple[str, ...] = (
    "AU1_inner_brow_raise",
    "AU2_outer_brow_raise",
    "AU4_brow_lower",
    "AU5_upper_lid_raise",
    "AU6_cheek_raise",
    "AU7_lid_tighten",
    "AU9_nose_wrinkle",
    "AU10_upper_lip_raise",
    "AU12_lip_corner_pull",
    "AU14_dimpler_unilateral",  # one-sided corner pull + dimple (contempt)
    "AU15_lip_corner_depress",
    "AU17_chin_raise",
    "AU20_lip_stretch",
    "AU24_lip_press",
    "AU25_lips_part",
    "AU26_jaw_drop",
    "AU41_lid_droop",
)

EXPRESSIONS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "sadness",
    "surprise",
    "fear",
    "anger",
    "disgust",
    "contempt",
    "other",
)

PROTOTYPES: dict[str, dict[str, float]] = {
    "neutral": {},
    # Duchenne smile: cheek raise + lip-corner pull; lips part to show teeth.
    "happiness": {
        "AU6_cheek_raise": 0.9,
        "AU12_lip_corner_pull": 1.0,
        "AU25_lips_part": 0.7,
    },
    # Oblique brows, drooping lids, down-turned corners, pushed-up chin.
    "sadness": {
        "AU1_inner_brow_raise": 1.0,
        "AU4_brow_lower": 0.6,
        "AU15_lip_corner_depress": 1.0,
        "AU17_chin_raise": 0.4,
        "AU41_lid_droop": 0.5,
    },
    "surprise": {
        "AU1_inner_brow_raise": 1.0,
        "AU2_outer_brow_raise": 1.0,
        "AU5_upper_lid_raise": 0.8,
        "AU25_lips_part": 0.3,
        "AU26_jaw_drop": 1.0,
    },
    # Surprise's units (weaker jaw drop) plus knitted brows and stretched lips.
    "fear": {
        "AU1_inner_brow_raise": 1.0,
        "AU2_outer_brow_raise": 0.7,
        "AU4_brow_lower": 0.6,
        "AU5_upper_lid_raise": 1.0,
        "AU20_lip_stretch": 0.9,
        "AU25_lips_part": 0.6,
        "AU26_jaw_drop": 0.35,
    },
    "anger": {
        "AU4_brow_lower": 1.0,
        "AU5_upper_lid_raise": 0.2,
        "AU7_lid_tighten": 0.9,
        "AU17_chin_raise": 0.3,
        "AU24_lip_press": 1.0,
    },
    # Brow lowering + lid tightening keep it confusable with anger.
    "disgust": {
        "AU4_brow_lower": 0.5,
        "AU7_lid_tighten": 0.3,
        "AU9_nose_wrinkle": 1.0,
        "AU10_upper_lip_raise": 0.9,
        "AU17_chin_raise": 0.3,
    },
    "contempt": {
        "AU14_dimpler_unilateral": 1.0,
    },
    # "Other" = a fixed skeptical/doubtful mix that is none of the basic
    # emotions: outer brows raised while knitted, pushed-up pressed lips.
    # It intentionally borrows units from anger and sadness.
    "other": {
        "AU2_outer_brow_raise": 0.6,
        "AU4_brow_lower": 0.4,
        "AU17_chin_raise": 0.8,
        "AU24_lip_press": 0.5,
    },
}


def _scaled_prototype(expression: str, intensity: float) -> dict[str, float]:
    if expression not in PROTOTYPES:
        raise ValueError(
            f"unknown expression {expression!r}; expected one of {sorted(PROTOTYPES)}"
        )
    return {au: w * intensity for au, w in PROTOTYPES[expression].items()}


def expression_aus(
    expression: str,
    intensity: float,
    blend: tuple[str, float] | None = None,
) -> dict[str, float]:
    """AU activations in [0, 1] for ``expression`` at ``intensity``.

    With ``blend=(other, w)`` the result is ``(1-w)*A + w*B`` where A and B are
    the two prototypes scaled by the same intensity.  Units that end up at
    zero are omitted.
    """
    if not math.isfinite(intensity) or intensity < 0.0:
        raise ValueError(f"intensity must be a finite value >= 0, got {intensity!r}")
    aus = _scaled_prototype(expression, intensity)
    if blend is not None:
        other, w = blend
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"blend weight must lie in [0, 1], got {w!r}")
        other_aus = _scaled_prototype(other, intensity)
        aus = {
            au: (1.0 - w) * aus.get(au, 0.0) + w * other_aus.get(au, 0.0)
            for au in set(aus) | set(other_aus)
        }
    return {au: min(1.0, v) for au, v in sorted(aus.items()) if v > 0.0}
