"""FaceSynth's videos: expressions that unfold over time, as Aff-Wild2's do.

A track is neutral rest with expression episodes: onset (intensity rises),
apex (holds), offset (falls back). A frame's annotated label is the episode's
expression once its intensity is visible, neutral otherwise; "other" episodes
are drawn as a blend of two expressions (ABAW's catch-all class). Capture
conditions vary over time too (`video_nuisances`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fer_pipeline.data.synth.scene import Nuisance, sample_nuisance, sample_occluder
from fer_pipeline.data.synth.world import AFFWILD2_EPISODE_PRIOR

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


# ---- capture conditions over time ------------------------------------------------
# A video keeps one camera, light and background; the head moves smoothly; and
# transient events (motion-blur bursts, a hand or object passing in front of the
# face) hide the expression for a run of frames. Single frames are then ambiguous
# while the expression persists: the case a temporal model is meant for.
BLUR_EVENT_RATE = 0.03       # per frame, at nuisance strength 1
OCCLUSION_EVENT_RATE = 0.02
BLUR_FRAMES = (3, 12)
OCCLUSION_FRAMES = (6, 25)


def _smooth_walk(rng: np.random.Generator, n: int, amplitude: float, smoothness: int) -> np.ndarray:
    """A slowly varying signal in about [-amplitude, amplitude]: white noise low-passed
    by a moving average of `smoothness` frames, rescaled."""
    noise = rng.standard_normal(n + smoothness)
    walk = np.convolve(noise, np.ones(smoothness) / smoothness, mode="valid")[:n]
    return amplitude * walk / max(1e-6, float(np.abs(walk).max()))


def _event_mask(rng: np.random.Generator, n: int, rate: float, length: tuple[int, int]) -> list[int]:
    """Per frame, the id of the event covering it (-1: none); events start at `rate` per frame."""
    events, frame, event = [-1] * n, 0, 0
    while frame < n:
        if rng.random() < rate:
            span = int(rng.integers(*length))
            events[frame:frame + span] = [event] * len(events[frame:frame + span])
            frame, event = frame + span, event + 1
        else:
            frame += 1
    return events


def video_nuisances(rng: np.random.Generator, n_frames: int, strength: float) -> tuple[list[Nuisance], list[str]]:
    """Capture conditions of each frame of one video (see the comment above), and each
    frame's condition for audits: "clean", "blur" (a burst) or "occluded"."""
    s = float(strength)
    base = sample_nuisance(rng, s)
    yaw = _smooth_walk(rng, n_frames, 25.0 * s, 20) + rng.normal(0, 1.5 * s, n_frames)
    pitch = _smooth_walk(rng, n_frames, 12.0 * s, 20) + rng.normal(0, 1.0 * s, n_frames)
    roll = _smooth_walk(rng, n_frames, 10.0 * s, 25) + rng.normal(0, 1.0 * s, n_frames)
    blur_events = _event_mask(rng, n_frames, BLUR_EVENT_RATE * s, BLUR_FRAMES)
    occlusion_events = _event_mask(rng, n_frames, OCCLUSION_EVENT_RATE * s, OCCLUSION_FRAMES)
    occluders = [sample_occluder(rng) for _ in range(max(occlusion_events) + 1)]
    burst_sigma = rng.uniform(1.5, 3.5, max(blur_events) + 1) * max(s, 0.3)
    frames, conditions = [], []
    for i in range(n_frames):
        conditions.append("occluded" if occlusion_events[i] >= 0 else "blur" if blur_events[i] >= 0 else "clean")
        blur = burst_sigma[blur_events[i]] if blur_events[i] >= 0 else 0.3 * base.blur_sigma
        frames.append(replace(
            base,
            yaw_deg=float(yaw[i]), pitch_deg=float(pitch[i]), roll_deg=float(roll[i]),
            blur_sigma=float(blur),
            occluder=occluders[occlusion_events[i]] if occlusion_events[i] >= 0 else None,
            noise_sigma=float(base.noise_sigma * rng.uniform(0.5, 1.5)),
            jpeg_quality=int(np.clip(base.jpeg_quality + rng.integers(-5, 6), 30, 95)),
            seed=int(rng.integers(2**31 - 1)),
        ))
    return frames, conditions
