"""FaceSynth renderer and expression prototypes."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from fer_pipeline.data.synth.expressions import ACTION_UNITS, EXPRESSIONS, PROTOTYPES, expression_aus
from fer_pipeline.data.synth.render import (
    ARCFACE_TEMPLATE,
    Identity,
    Nuisance,
    encode_jpeg,
    render_face,
    sample_identity,
    sample_nuisance,
)


def _scene(seed: int, strength: float = 1.0) -> tuple[Identity, Nuisance, np.random.Generator]:
    rng = np.random.default_rng(seed)
    return sample_identity(rng), sample_nuisance(rng, strength), rng


def _render(seed: int, expression: str = "neutral", intensity: float = 1.0, strength: float = 1.0,
            size: int = 112) -> tuple[np.ndarray, np.ndarray]:
    ident, nz, rng = _scene(seed, strength)
    return render_face(ident, expression_aus(expression, intensity), nz, size=size, rng=rng)


# ------------------------------------------------------------------ expressions


def test_prototypes_cover_the_canonical_expressions_with_known_units():
    assert set(PROTOTYPES) == set(EXPRESSIONS) == {
        "neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust", "contempt", "other"}
    assert PROTOTYPES["neutral"] == {}
    for proto in PROTOTYPES.values():
        assert set(proto) <= set(ACTION_UNITS)
        assert all(0.0 < w <= 1.0 for w in proto.values())


def test_designed_confusions_share_units():
    shared = set(PROTOTYPES["fear"]) & set(PROTOTYPES["surprise"])
    assert {"AU1_inner_brow_raise", "AU2_outer_brow_raise", "AU5_upper_lid_raise", "AU26_jaw_drop"} <= shared
    assert "AU4_brow_lower" in PROTOTYPES["disgust"] and "AU4_brow_lower" in PROTOTYPES["anger"]


def test_expression_aus_scales_by_intensity():
    aus = expression_aus("happiness", 0.5)
    assert aus == pytest.approx({k: 0.5 * v for k, v in PROTOTYPES["happiness"].items()})
    assert expression_aus("surprise", 0.0) == {}
    assert all(0.0 <= v <= 1.0 for v in expression_aus("fear", 1.0).values())


def test_blend_interpolates_units():
    w = 0.25
    mixed = expression_aus("happiness", 0.8, blend=("sadness", w))
    a, b = expression_aus("happiness", 0.8), expression_aus("sadness", 0.8)
    for au in set(a) | set(b):
        assert mixed[au] == pytest.approx((1 - w) * a.get(au, 0.0) + w * b.get(au, 0.0))
    assert expression_aus("anger", 1.0, blend=("disgust", 0.0)) == expression_aus("anger", 1.0)
    assert expression_aus("anger", 1.0, blend=("disgust", 1.0)) == pytest.approx(expression_aus("disgust", 1.0))


def test_unknown_expression_raises():
    with pytest.raises(ValueError, match="joy"):
        expression_aus("joy", 1.0)
    with pytest.raises(ValueError, match="joy"):
        expression_aus("happiness", 1.0, blend=("joy", 0.5))


# ---------------------------------------------------------------------- sampling


def test_nuisance_strength_zero_is_clean_and_frontal():
    for seed in range(20):
        nz = sample_nuisance(np.random.default_rng(seed), strength=0.0)
        assert nz.occluder is None
        assert nz.roll_deg == 0.0 and nz.yaw_deg == 0.0 and nz.pitch_deg == 0.0
        assert nz.scale == 1.0 and nz.dx == 0.0 and nz.dy == 0.0
        assert nz.blur_sigma == 0.0 and nz.noise_sigma == 0.0 and nz.light_strength == 0.0


def test_nuisance_default_ranges():
    nzs = [sample_nuisance(np.random.default_rng(seed)) for seed in range(300)]
    assert all(abs(n.roll_deg) <= 15.0 + 1e-9 for n in nzs)
    assert all(0.85 - 1e-9 <= n.scale <= 1.15 + 1e-9 for n in nzs)
    assert all(0.0 <= n.blur_sigma <= 1.2 and 0.0 <= n.noise_sigma <= 8.0 for n in nzs)
    assert all(40 <= n.jpeg_quality <= 95 for n in nzs)
    occluded = sum(n.occluder is not None for n in nzs) / len(nzs)
    assert 0.07 < occluded < 0.25


# ---------------------------------------------------------------------- rendering


def test_render_is_deterministic_given_the_generator():
    img1, lm1 = _render(7, "fear")
    img2, lm2 = _render(7, "fear")
    assert np.array_equal(img1, img2) and np.array_equal(lm1, lm2)
    img3, lm3 = _render(8, "fear")
    assert not np.array_equal(img1, img3) and not np.array_equal(lm1, lm3)


def test_render_without_rng_is_deterministic():
    ident, nz, _ = _scene(3)
    a = render_face(ident, {}, nz)
    b = render_face(ident, {}, nz)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("size", [112, 64])
def test_output_shape_and_dtype(size):
    img, lm = _render(1, "happiness", size=size)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    assert lm.shape == (5, 2) and lm.dtype == np.float32


@pytest.mark.parametrize("size", [112, 64])
def test_landmarks_inside_image(size):
    for seed in range(25):
        _, lm = _render(seed, EXPRESSIONS[seed % len(EXPRESSIONS)], size=size)
        assert np.all(lm >= 0) and np.all(lm <= size - 1), (seed, lm)


@pytest.mark.parametrize("size", [112, 64])
def test_landmarks_near_arcface_template_at_strength_zero(size):
    template = ARCFACE_TEMPLATE * size / 112.0
    errors = []
    for seed in range(15):
        _, lm = _render(seed, "neutral", strength=0.0, size=size)
        errors.append(np.abs(lm - template).max() * 112.0 / size)
    assert max(errors) < 4.0  # identity spacing moves them by a few pixels only
    assert np.mean(errors) < 2.5


def test_landmarks_follow_the_geometric_nuisance():
    """Render with a strong roll; the drawn eyes (dark lash lines) must sit at the
    returned eye landmarks, i.e. landmarks are in the final image frame."""
    ident, nz, rng = _scene(11, 0.0)
    nz = dataclasses.replace(nz, roll_deg=25.0, scale=0.9, dx=0.05, dy=-0.04, yaw_deg=15.0)
    img, lm = render_face(ident, {}, nz, rng=rng)
    _, lm0 = render_face(ident, {}, dataclasses.replace(nz, roll_deg=0.0, yaw_deg=0.0, dx=0.0, dy=0.0, scale=1.0))
    eye_vec = lm[1] - lm[0]
    assert np.degrees(np.arctan2(eye_vec[1], eye_vec[0])) == pytest.approx(25.0, abs=3.0)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(float)
    for x, y in lm[:2]:  # an eye: dark iris/lashes within a few pixels of the landmark
        patch = gray[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4]
        assert patch.min() < gray.mean() - 40


def test_every_prototype_changes_the_image():
    for seed, strength in ((0, 0.0), (1, 0.0), (2, 0.0), (1, 1.0)):
        neutral, _ = _render(seed, "neutral", strength=strength)
        for expr in EXPRESSIONS:
            if expr == "neutral":
                continue
            img, _ = _render(seed, expr, 1.0, strength=strength)
            changed = (np.abs(img.astype(int) - neutral.astype(int)).max(axis=2) > 12).sum()
            assert changed > 30, (seed, expr, changed)


def test_intensity_zero_equals_neutral():
    neutral, lm_n = _render(5, "neutral")
    for expr in EXPRESSIONS:
        img, lm = _render(5, expr, 0.0)
        assert np.array_equal(img, neutral) and np.array_equal(lm, lm_n)


def test_weak_expressions_are_subtler_than_strong_ones():
    neutral, _ = _render(9, "neutral", strength=0.0)
    for expr in ("happiness", "sadness", "anger", "surprise"):
        weak = np.abs(_render(9, expr, 0.15, strength=0.0)[0].astype(int) - neutral).mean()
        strong = np.abs(_render(9, expr, 1.0, strength=0.0)[0].astype(int) - neutral).mean()
        assert weak < 0.35 * strong, (expr, weak, strong)


def test_smile_lifts_and_frown_lowers_mouth_corners():
    _, neutral = _render(2, "neutral", strength=0.0)
    _, happy = _render(2, "happiness", 1.0, strength=0.0)
    _, sad = _render(2, "sadness", 1.0, strength=0.0)
    assert np.all(happy[3:, 1] < neutral[3:, 1] - 2)
    assert np.all(sad[3:, 1] > neutral[3:, 1] + 2)
    _, smirk = _render(2, "contempt", 1.0, strength=0.0)
    assert smirk[4, 1] < neutral[4, 1] - 1 and abs(smirk[3, 1] - neutral[3, 1]) < 0.5


def test_unknown_action_unit_raises():
    ident, nz, _ = _scene(0)
    with pytest.raises(ValueError, match="AU99"):
        render_face(ident, {"AU99_wiggle_ears": 0.5}, nz)


def test_encode_jpeg_roundtrip():
    img, _ = _render(4, "surprise")
    data = encode_jpeg(img, 60)
    assert data[:2] == b"\xff\xd8"
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == img.shape
    assert np.abs(decoded.astype(int) - img).mean() < 12
    assert len(encode_jpeg(img, 95)) > len(encode_jpeg(img, 40))
