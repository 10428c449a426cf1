"""FaceSynth's videos: expressions that unfold over time, as Aff-Wild2's do.

A track is neutral rest with expression episodes: onset (intensity rises),
apex (holds), offset (falls back). A frame's annotated label is the episode's
expression once its intensity is visible, neutral otherwise; "other" episodes
are drawn as a blend of two expressions (ABAW's catch-all class).
"""

from __future__ import annotations

import numpy as np

from fer_pipeline.synth.world import AFFWILD2_EPISODE_PRIOR

VISIBLE_INTENSITY = 0.25  # below this the annotators see a neutral face
BLEND_PAIRS = (("happiness", "surprise"), ("sadness", "anger"), ("fear", "surprise"), ("disgust", "anger"))


def episode_track(rng: np.random.Generator, n_frames: int, gap=(4, 20), onset=(3, 10), apex=(5, 25),
                  offset=(3, 12)) -> list[tuple[str, float, tuple[str, float] | None]]:
    """(expression, intensity, blend) per frame."""
    names = list(AFFWILD2_EPISODE_PRIOR)
    p = np.array([AFFWILD2_EPISODE_PRIOR[n] for n in names])
    track: list[tuple[str, float, tuple[str, float] | None]] = []
    while len(track) < n_frames:
        track += [("neutral", 0.0, None)] * int(rng.integers(*gap))
        expression = names[int(rng.choice(len(names), p=p / p.sum()))]
        peak = float(rng.uniform(0.5, 1.0))
        blend = None
        if expression == "other":
            first, second = BLEND_PAIRS[int(rng.integers(len(BLEND_PAIRS)))]
            expression, blend = first, (second, float(rng.uniform(0.4, 0.6)))
        ramp_up = np.linspace(0.0, peak, int(rng.integers(*onset)) + 1)[1:]
        hold = np.full(int(rng.integers(*apex)), peak)
        ramp_down = np.linspace(peak, 0.0, int(rng.integers(*offset)) + 1)[1:]
        # A blend shows only once visible: FaceSynth draws blends at half strength or more.
        track += [(expression, float(i), blend if i >= VISIBLE_INTENSITY else None)
                  for i in np.concatenate([ramp_up, hold, ramp_down])]
    return track[:n_frames]


def frame_label(expression: str, intensity: float, blend) -> str:
    if expression == "neutral" or intensity < VISIBLE_INTENSITY:
        return "neutral"
    return "other" if blend is not None else expression
