"""Smp balanced subsets, the Face2Exp augmentations and per-sample seeding."""

from collections import Counter

import numpy as np
import pytest
import torch

from fer_pipeline.meta.augment import REGIONS, WeakStrongViews, cover, region_box
from fer_pipeline.meta.smp import balanced_subset, finetune_subset, labelled_subset, read_index, write_index
from fer_pipeline.data.prep.align import template_landmarks
from fer_pipeline.data.datasets import seeded_cpu_rng


def test_balanced_subset_is_balanced_capped_and_deterministic():
    targets = np.array([0] * 500 + [1] * 300 + [2] * 40)
    idx = balanced_subset(targets, 0.10, seed=1, num_classes=3)
    assert Counter(targets[idx].tolist()) == {0: 28, 1: 28, 2: 28}  # 10 % of 840 = 84, split 3 ways
    assert np.array_equal(idx, balanced_subset(targets, 0.10, seed=1, num_classes=3))
    assert not np.array_equal(idx, balanced_subset(targets, 0.10, seed=2, num_classes=3))
    full = balanced_subset(targets, 1.0, seed=1, num_classes=3)
    assert Counter(targets[full].tolist()) == {0: 40, 1: 40, 2: 40}  # the rarest class caps the rest
    assert len(set(full.tolist())) == len(full)
    with pytest.raises(ValueError, match="fraction"):
        balanced_subset(targets, 0.0, seed=1, num_classes=3)


@pytest.mark.parametrize("meta_balanced", [False, True])
def test_finetune_subset_stays_inside_the_meta_runs_labels(meta_balanced):
    targets = np.random.default_rng(0).permutation([0] * 300 + [1] * 120 + [2] * 30)
    meta = {"labeled_fraction": 0.5, "balanced": meta_balanced, "seed": 4}
    seen = labelled_subset(targets, meta, 3)
    balanced = finetune_subset(targets, meta, {"balanced": True}, 3)
    assert set(balanced.tolist()) <= set(seen.tolist())  # never a label the meta run did not have
    counts = Counter(targets[balanced].tolist())
    assert set(counts) == {0, 1, 2} and len(set(counts.values())) == 1
    assert counts[2] == Counter(targets[seen].tolist())[2]  # the rarest class of the meta subset caps all
    assert np.array_equal(balanced, finetune_subset(targets, meta, {"balanced": True}, 3))
    assert np.array_equal(finetune_subset(targets, meta, {"balanced": False}, 3), seen)


def test_index_file_round_trip(tmp_path):
    sources = [f"img{i}.jpg" for i in range(10)]
    write_index(tmp_path / "smp.json", sources, np.array([1, 4]), {"fraction": 0.2, "seed": 3})
    assert read_index(tmp_path / "smp.json") == {"img1.jpg", "img4.jpg"}


@pytest.mark.parametrize("size", [112, 224])
def test_cover_boxes_sit_on_the_landmarks(size):
    lm = template_landmarks(size)
    x0, y0, x1, y1 = region_box("mouth", lm, size)
    mouth = lm[3:].mean(axis=0)
    assert x0 < mouth[0] < x1 and y0 < mouth[1] < y1
    assert (x1 - x0) == pytest.approx(50 * size / 224, abs=1.5)
    fx0, fy0, fx1, fy1 = region_box("forehead", lm, size)
    assert (fx0, fx1) == (0, size) and fy1 <= lm[0][1]  # the whole width, above the eyes
    ex0, ey0, ex1, ey1 = region_box("left_eye", lm, size)
    assert ex0 < lm[0][0] < ex1 and ey0 < lm[0][1] < ey1


def test_cover_greys_exactly_one_region():
    img = torch.zeros(3, 112, 112, dtype=torch.uint8)
    out = cover(img, template_landmarks(112), "nose")
    x0, y0, x1, y1 = region_box("nose", template_landmarks(112), 112)
    assert (out[:, y0:y1, x0:x1] == 128).all()
    assert int((out != 0).sum()) == 3 * (y1 - y0) * (x1 - x0)
    assert (img == 0).all(), "the input is not modified"


def test_weak_strong_views_shapes_and_difference():
    torch.manual_seed(0)
    views = WeakStrongViews(48)
    img = torch.randint(0, 255, (3, 112, 112), dtype=torch.uint8)
    weak, strong = views(img, template_landmarks(112))
    assert weak.shape == strong.shape == (3, 48, 48) and weak.dtype == torch.float32
    assert not torch.allclose(weak, strong)
    assert len(REGIONS) == 5


def test_cover_grid_has_one_tile_per_region():
    from fer_pipeline.meta.augment import cover_grid

    img = torch.zeros(3, 112, 112, dtype=torch.uint8)
    grid = cover_grid([img, img], [template_landmarks(112)] * 2)
    assert grid.shape == (224, 112 * (1 + len(REGIONS)), 3)
    assert (grid[:112, :112] == 0).all() and (grid[:112, 112:] == 128).any()


def test_seeded_cpu_rng_draws_like_manual_seed_and_restores_the_outer_stream():
    torch.manual_seed(123)
    expected_outer = torch.rand(3)
    torch.manual_seed(7)
    reference = torch.rand(4)

    torch.manual_seed(123)
    with seeded_cpu_rng(7):
        inside = torch.rand(4)
    outer = torch.rand(3)
    assert torch.equal(inside, reference), "same draws as torch.manual_seed(7)"
    assert torch.equal(outer, expected_outer), "the surrounding stream continues as if untouched"
    with seeded_cpu_rng(8):
        other = torch.rand(4)
    assert not torch.equal(other, reference)
