"""FaceSynth's world: who is photographed, with which expression, how strongly.

Sampling is separate from drawing (render.py, scene.py) and from on-disk formats
(writers.py): a writer asks the world for samples and only decides file layout.
Each sample draws from its own generator seeded by (seed, dataset, index), so
growing a dataset keeps every earlier image identical.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from fer_pipeline.data.synth.expressions import expression_aus
from fer_pipeline.data.synth.render import render_face
from fer_pipeline.data.synth.scene import Identity, Nuisance, sample_identity, sample_nuisance

# Class priors of the real datasets FaceSynth imitates (RAF-DB basic train counts
# 1290/281/717/4772/1982/705/2524 over surprise..neutral).
RAFDB_PRIOR = {
    "happiness": 4772,
    "neutral": 2524,
    "sadness": 1982,
    "surprise": 1290,
    "disgust": 717,
    "anger": 705,
    "fear": 281,
}
# A face-recognition pool: mostly neutral and smiling celebrities.
FR_POOL_PRIOR = {
    "neutral": 0.55,
    "happiness": 0.30,
    "sadness": 0.04,
    "surprise": 0.04,
    "anger": 0.03,
    "disgust": 0.02,
    "fear": 0.01,
    "contempt": 0.01,
}


@dataclass(frozen=True)
class Sample:
    index: int
    identity: int
    expression: str                  # the true expression
    intensity: float
    blend: tuple[str, float] | None  # second expression and its weight
    label: str                       # the label a (noisy) annotator wrote


def _rng(seed: int, dataset: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(dataset.encode()), index])


def _draw(rng: np.random.Generator, prior: dict[str, float]) -> str:
    names = list(prior)
    p = np.array([prior[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


class World:
    def __init__(self, seed: int, render_size: int, nuisance_strength: float, intensity: tuple[float, float]):
        self.seed = seed
        self.render_size = render_size
        self.nuisance_strength = nuisance_strength
        self.intensity = intensity
        self._identities: dict[tuple[str, int], Identity] = {}

    def identity(self, population: str, idx: int) -> Identity:
        key = (population, idx)
        if key not in self._identities:
            self._identities[key] = sample_identity(_rng(self.seed, f"identity/{population}", idx))
        return self._identities[key]

    def sample(self, dataset: str, index: int, identities: range, prior: dict[str, float],
               label_noise: float = 0.0, blend_fraction: float = 0.0) -> Sample:
        rng = _rng(self.seed, dataset, index)
        identity = int(rng.integers(identities.start, identities.stop))
        expression = _draw(rng, prior)
        low, high = self.intensity
        intensity = 0.0 if expression == "neutral" else float(rng.uniform(low, high))
        blend = None
        if rng.random() < blend_fraction:
            other = _draw(rng, {k: v for k, v in prior.items() if k != expression})
            blend = (other, float(rng.uniform(0.3, 0.7)))
        label = expression
        if rng.random() < label_noise:
            label = str(rng.choice(sorted(prior)))  # annotator error: any class of the set
        return Sample(index, identity, expression, intensity, blend, label)

    def render(self, population: str, dataset: str, sample: Sample,
               nuisance: Nuisance | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """(BGR image, 5 landmarks, JPEG quality) of a sample; capture conditions are drawn
        at random unless given (a video's frames share theirs, see videos.py)."""
        rng = _rng(self.seed, f"render/{dataset}", sample.index)
        if nuisance is None:
            nuisance = sample_nuisance(rng, self.nuisance_strength)
        if sample.expression == "neutral" and sample.blend is None:
            aus = expression_aus("neutral", 0.0)
        else:
            # Blends mix the two prototypes at full strength, then scale as a whole.
            aus = expression_aus(sample.expression, max(sample.intensity, 0.5) if sample.blend else sample.intensity,
                                 sample.blend)
        image, landmarks = render_face(self.identity(population, sample.identity), aus, nuisance,
                                       size=self.render_size, rng=rng)
        return image, landmarks, nuisance.jpeg_quality
# AffectNet's training priors (Manually_Annotated, 8 expressions).
AFFECTNET_PRIOR = {
    "happiness": 0.47,
    "neutral": 0.26,
    "sadness": 0.09,
    "anger": 0.09,
    "surprise": 0.05,
    "fear": 0.02,
    "disgust": 0.014,
    "contempt": 0.013,
}
# Expressions of Aff-Wild2 episodes (between them the face rests at neutral);
# "other" is drawn as a blend of two expressions.
AFFWILD2_EPISODE_PRIOR = {
    "happiness": 0.30,
    "sadness": 0.15,
    "anger": 0.12,
    "surprise": 0.10,
    "other": 0.15,
    "fear": 0.06,
    "disgust": 0.06,
    "neutral": 0.06,
}
