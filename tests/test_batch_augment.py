"""The batched training augmentation (data/batch_augment.py) against torchvision's
per-image transforms, and its per-sample seeding through FaceShardDataset."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate
from torchvision.transforms.v2 import functional as TF

from fer_pipeline.common.labels import ClassSet
from fer_pipeline.data.batch_augment import (BRIGHTNESS, CONTRAST, RATIO, SATURATION, BatchAugment, FaceAugment,
                                             GeneratorDraws, RawFace, SeededDraws, augment_batch)
from fer_pipeline.data.datasets import (MEAN, STD, EpochSampler, FaceShardDataset, build_transform, collate_faces,
                                        seeded_cpu_rng)
from fer_pipeline.data.prep.shards import ShardWriter
from fer_pipeline.methods.upsampling import UpsampledDataset, upsample_plan

AUGMENT = {"hflip": True, "crop_scale": [0.8, 1.0], "color_jitter": 0.2}
LEVEL = 1 / 255  # one uint8 step, in [0, 1] pixels


def _faces(n: int, size: int = 40, seed: int = 0) -> list[torch.Tensor]:
    """Smooth random uint8 images (noise blurred: neighbouring pixels related, as in a face)."""
    gen = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        noise = gen.integers(0, 256, (size, size, 3), dtype=np.uint8)
        out.append(torch.from_numpy(cv2.GaussianBlur(noise, (5, 5), 1.5)).permute(2, 0, 1).contiguous())
    return out


def _params(top, left, height, width, size=24, flip=False, order=(), factors=(1.0, 1.0, 1.0)) -> FaceAugment:
    return FaceAugment(top, left, height, width, flip, tuple(order), tuple(factors), size)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return TF.normalize(x, list(MEAN), list(STD))


def test_identity_parameters_give_the_eval_transform():
    images = _faces(3)
    out = _normalise(augment_batch(images, [_params(0, 0, 40, 40) for _ in images]))
    eval_tf = build_transform(24, None)
    for k, image in enumerate(images):
        # The eval transform on float pixels: the same resize, to float32 precision.
        assert torch.allclose(out[k], eval_tf(image.float() / 255), atol=1e-5)
        # On the uint8 face it rounds once, after its resize: within one level.
        assert (out[k] - eval_tf(image)).abs().max() <= LEVEL / min(STD) + 1e-5


def test_flip_mask_flips_exactly_those_samples():
    images = _faces(4)
    flips = [True, False, True, False]
    plain = augment_batch(images, [_params(2, 3, 30, 34) for _ in images])
    flipped = augment_batch(images, [_params(2, 3, 30, 34, flip=f) for f in flips])
    for k, f in enumerate(flips):
        expected = plain[k].flip(-1) if f else plain[k]
        assert torch.allclose(flipped[k], expected, atol=1e-6), k
    assert not torch.allclose(flipped[0], plain[0])  # the faces are not symmetric: a flip shows


@pytest.mark.parametrize("size", [24, 56])  # shrinking (antialiased) and enlarging
def test_each_crop_box_matches_torchvision_resized_crop(size):
    boxes = [(0, 0, 40, 40), (5, 7, 33, 29), (0, 10, 40, 30), (12, 0, 20, 40), (30, 31, 10, 9), (1, 2, 38, 17)]
    images = _faces(len(boxes), seed=1)
    out = augment_batch(images, [_params(*box, size=size) for box in boxes])  # every box in one call
    for k, (image, (top, left, h, w)) in enumerate(zip(images, boxes)):
        reference = TF.resized_crop(image.float() / 255, top, left, h, w, [size, size], antialias=True)
        assert torch.allclose(out[k], reference, atol=1e-5), (k, (out[k] - reference).abs().max())
        on_uint8 = TF.resized_crop(image, top, left, h, w, [size, size], antialias=True).float() / 255
        assert (out[k] - on_uint8).abs().max() <= LEVEL + 1e-6  # the per-image path's rounding


def test_color_jitter_matches_torchvision_adjust_per_sample():
    images = _faces(6, seed=2)
    ops = {BRIGHTNESS: TF.adjust_brightness, CONTRAST: TF.adjust_contrast, SATURATION: TF.adjust_saturation}
    # One op per sample, factors on both sides of 1 (and big enough to clip).
    cases = [(BRIGHTNESS, 0.7), (BRIGHTNESS, 1.6), (CONTRAST, 0.5), (CONTRAST, 1.4), (SATURATION, 0.3),
             (SATURATION, 1.8)]
    params = []
    for op, f in cases:
        factors = [1.0, 1.0, 1.0]
        factors[op] = f
        params.append(_params(0, 0, 40, 40, size=40, order=(op,), factors=factors))
    out = augment_batch(images, params)
    for k, (op, f) in enumerate(cases):
        assert torch.allclose(out[k], ops[op](images[k].float() / 255, f), atol=1e-6), (op, f)
    # All three ops, each sample in its own order: the same as torchvision's ops in that order.
    orders = [(0, 1, 2), (2, 1, 0), (1, 0, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1)]
    factors = (1.3, 0.6, 1.5)
    out = augment_batch(images, [_params(0, 0, 40, 40, size=40, order=o, factors=factors) for o in orders])
    for k, order in enumerate(orders):
        expected = images[k].float() / 255
        for op in order:
            expected = ops[op](expected, factors[op])
        assert torch.allclose(out[k], expected, atol=1e-6), order
    # The blends commute but for the clipping: where brightness clips first, the order shows.
    clipping = (1.8, 0.4, 1.5)
    one, other = augment_batch(images[:1] * 2, [_params(0, 0, 40, 40, size=40, order=o, factors=clipping)
                                                for o in ((0, 1, 2), (1, 2, 0))])
    assert not torch.allclose(one, other, atol=1e-3)


def test_batched_pixels_are_build_transform_pixels_for_the_same_seed():
    """The draws are torchvision's: for one sample seed, the batched result equals
    build_transform's augmented pipeline on the float face, and its uint8 run up to
    the rounding after each of its ops."""
    images = _faces(8, size=64, seed=3)
    per_image = build_transform(32, AUGMENT)
    recipe = BatchAugment.from_config(32, AUGMENT)
    seeds = [1000 + 7 * k for k in range(len(images))]
    params = [recipe.draw(64, 64, torch.Generator().manual_seed(s)) for s in seeds]
    out = _normalise(augment_batch(images, params))
    for k, (image, seed) in enumerate(zip(images, seeds)):
        with seeded_cpu_rng(seed):
            on_float = per_image(image.float() / 255)
        with seeded_cpu_rng(seed):
            on_uint8 = per_image(image)
        assert torch.allclose(out[k], on_float, atol=1e-4), k
        # uint8: a rounding after the resize and a truncation after each jitter op, each a
        # level at most, scaled by the later factors (<= 1.2) and the normalisation (1 / std).
        assert (out[k] - on_uint8).abs().max() <= 6 * LEVEL / min(STD), k
    assert len({(p.top, p.left, p.height, p.width) for p in params}) > 1  # the seeds draw different boxes


def test_differently_sized_faces_are_padded_without_changing_pixels():
    small, big = _faces(1, size=30, seed=4)[0], _faces(1, size=44, seed=5)[0]
    ps, pb = _params(3, 4, 25, 22, flip=True), _params(0, 6, 44, 36, order=(2, 0, 1), factors=(1.1, 0.9, 1.2))
    together = augment_batch([small, big], [ps, pb])
    assert torch.allclose(together[0], augment_batch([small], [ps])[0], atol=1e-6)
    assert torch.allclose(together[1], augment_batch([big], [pb])[0], atol=1e-6)
    with pytest.raises(ValueError, match="output sizes"):
        augment_batch([small, big], [ps, _params(0, 0, 44, 44, size=32)])


def test_parameters_stay_in_their_ranges():
    recipe = BatchAugment(48, (0.5, 0.9), hflip=True, color_jitter=0.3)
    draws = [recipe.draw(112, 100, torch.Generator().manual_seed(s)) for s in range(1500)]
    for p in draws:
        assert 0 <= p.top and p.top + p.height <= 112 and 0 <= p.left and p.left + p.width <= 100
        area = p.height * p.width / (112 * 100)
        # Rounded box sides: a pixel of slack on each side around torchvision's share and ratio.
        assert 0.5 - 0.03 <= area <= 0.9 + 0.03, area
        assert RATIO[0] * 0.95 <= p.width / p.height <= RATIO[1] * 1.05
        assert sorted(p.order) == [BRIGHTNESS, CONTRAST, SATURATION]
        assert all(0.7 <= f <= 1.3 for f in p.factors)
        assert p.size == 48
    flips = sum(p.flip for p in draws) / len(draws)
    assert 0.45 < flips < 0.55
    assert len({p.order for p in draws}) == 6  # every order of the three ops occurs
    factors = np.array([p.factors for p in draws])
    assert factors.min() < 0.72 and factors.max() > 1.28  # the range is used, not a part of it
    # No flip, no jitter when the recipe says so; c = 1: brightness etc. from 0 (never negative).
    quiet = BatchAugment(48, (0.8, 1.0), hflip=False, color_jitter=0.0)
    assert all(not p.flip and p.order == () and p.factors == (1.0, 1.0, 1.0)
               for p in (quiet.draw(112, 112, torch.Generator().manual_seed(s)) for s in range(50)))
    wide = BatchAugment(48, (0.8, 1.0), hflip=True, color_jitter=1.0)
    assert all(0.0 <= f <= 2.0 for s in range(50) for f in wide.draw(64, 64, torch.Generator().manual_seed(s)).factors)


SEEDS = list(range(1500)) + [2**40 + 7 * k for k in range(300)] + [2**63 - 1 - k for k in range(50)]


def test_seeded_draws_are_torchs_generator_draws():
    """SeededDraws repeats torch's CPU generator number for number: uniforms over ranges
    that straddle 0, integers, permutations, for small and 64-bit seeds."""
    ranges = [(0.0, 1.0), (0.8, 1.0), (-0.2876821, 0.2876821), (0.7, 1.3), (0.08, 1.0), (-3.5, 2.25)]
    for seed in SEEDS[::10]:
        fast, reference = SeededDraws(seed), GeneratorDraws(torch.Generator().manual_seed(seed))
        for k in range(4):  # 4 x (1 + 1 + 3 + 1) = 24 numbers, of the 32 a sample may draw
            lo, hi = ranges[(seed + k) % len(ranges)]
            assert fast.uniform(lo, hi) == reference.uniform(lo, hi), (seed, k, lo, hi)
            high = 1 + (seed + 13 * k) % 113
            assert fast.randint(0, high) == reference.randint(0, high), (seed, k, high)
            assert fast.randperm(4) == reference.randperm(4), (seed, k)
            assert fast.randint(3, 9) == reference.randint(3, 9), (seed, k)


@pytest.mark.parametrize("recipe, shape", [
    (BatchAugment(48, (0.8, 1.0), True, 0.2), (112, 112)),   # the demo's recipe
    (BatchAugment(48, (0.08, 1.0), True, 0.4), (112, 90)),   # torchvision's default scale: tries fail often
    (BatchAugment(32, (0.9, 1.0), False, 0.0), (112, 40)),   # every try fails: the fallback box
])
def test_a_seed_draws_what_a_generator_seeded_with_it_draws(recipe, shape):
    for seed in SEEDS:
        assert recipe.draw(*shape, seed) == recipe.draw(*shape, torch.Generator().manual_seed(seed)), seed


# ---- through FaceShardDataset and the DataLoader -------------------------------------

@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("batchaug") / "prepared"
    out.mkdir()
    writer = ShardWriter(out, rows_per_shard=100, row_group_size=8)
    labels = ["happiness"] * 6 + ["fear"] * 4 + ["neutral"] * 2  # unequal: up-sampling makes copies
    for k, image in enumerate(_faces(12, size=48, seed=6)):
        ok, jpeg = cv2.imencode(".jpg", image.permute(1, 2, 0).numpy()[:, :, ::-1])
        assert ok
        writer.add({"image": jpeg.tobytes(), "label": labels[k], "identity": None,
                    "split": "train", "source": f"img{k}.jpg", "landmarks5": None, "video": None, "frame": None})
    writer.close()
    return out


def _dataset(shards, augment=AUGMENT, seed=3) -> FaceShardDataset:
    return FaceShardDataset(shards, "train", ClassSet.named("basic7"), 32, augment, seed)


def test_a_samples_pixels_depend_on_seed_epoch_index_not_on_its_batch(shards):
    data = _dataset(shards)
    assert isinstance(data[0][0], RawFace)  # augmented per batch, in the collate
    alone = collate_faces([data[5, 2]])[0][0]
    among = collate_faces([data[i, 2] for i in (9, 1, 5, 0)])
    assert torch.equal(among[0][2], alone)
    assert among[1].tolist() == [int(data.targets[i]) for i in (9, 1, 5, 0)]
    data.set_epoch(2)
    assert torch.equal(collate_faces([data[5], data[3]])[0][0], alone)  # set_epoch = naming the epoch
    assert not torch.equal(collate_faces([data[5, 3]])[0][0], alone)  # another epoch, other pixels
    assert not torch.equal(collate_faces([_dataset(shards, seed=4)[5, 2]])[0][0], alone)  # another seed


def test_dataloader_workers_give_the_same_batches(shards):
    data = _dataset(shards)
    sampler = EpochSampler(data.targets, seed=1, balanced=False)

    def batches(workers):
        loader = DataLoader(data, batch_size=5, sampler=sampler, num_workers=workers, collate_fn=collate_faces)
        sampler.set_epoch(1)
        data.set_epoch(1)
        return list(loader)

    in_process, in_workers = batches(0), batches(2)
    assert len(in_process) == math.ceil(len(data) / 5)
    for (a, ta), (b, tb) in zip(in_process, in_workers):
        assert torch.equal(a, b) and torch.equal(ta, tb)
    assert in_process[0][0].shape[1:] == (3, 32, 32) and in_process[0][0].dtype == torch.float32


def test_switch_off_is_the_per_image_path_and_the_default_collate_refuses_raw_faces(shards):
    per_image = _dataset(shards, {**AUGMENT, "batched": False})
    batched = _dataset(shards, {**AUGMENT, "batched": True})
    assert per_image.recipe is None and isinstance(per_image[4][0], torch.Tensor)
    difference = (collate_faces([batched[4, 1]])[0][0] - per_image[4, 1][0]).abs()
    assert difference.max() <= 6 * LEVEL / min(STD)  # the same draws; uint8 rounding only
    with pytest.raises(TypeError):
        default_collate([batched[4]])


def test_collate_keeps_ready_tensors_in_place(shards):
    data = _dataset(shards)
    ready = torch.full((3, 32, 32), 7.0)
    images, targets = collate_faces([data[0, 0], (ready, 5), data[1, 0]])
    assert torch.equal(images[1], ready) and targets.tolist() == [int(data.targets[0]), 5, int(data.targets[1])]
    assert torch.equal(images[2], collate_faces([data[1, 0]])[0][0])


def test_upsampled_copies_draw_the_per_image_parameters(shards):
    """RandAugment first, then the base's draws from the same generator: as the per-image
    path, up to its uint8 rounding."""
    batched, per_image = _dataset(shards), _dataset(shards, {**AUGMENT, "batched": False})
    plan = upsample_plan(batched.targets.numpy(), seed=0)
    entries = [(batched.sources[row], copy) for row, copy in plan]
    up_b, up_p = UpsampledDataset(batched, entries), UpsampledDataset(per_image, entries)
    assert any(copy > 0 for _, copy in entries)
    for k in range(len(entries)):
        difference = (collate_faces([up_b[k, 1]])[0][0] - up_p[k, 1][0]).abs()
        assert difference.max() <= 6 * LEVEL / min(STD), k
