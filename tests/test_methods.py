"""The other seeds' imbalance and data methods (fer_pipeline/methods/): each loss against
a hand computation, the subset profile, the up-sampling index, deviation, ensemble,
distillation and `fer subset`. Tiny tensors; seconds in all."""

from __future__ import annotations

import copy
import hashlib
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from fer_pipeline import cli
from fer_pipeline.common.labels import ClassSet
from fer_pipeline.data.datasets import FaceShardDataset
from fer_pipeline.data.prep.shards import ShardWriter, shard_paths
from fer_pipeline.meta.smp import read_index
from fer_pipeline.methods.cam import MapsAndLogits, class_activation_maps
from fer_pipeline.methods.class_weights import (
    class_weights,
    effective_number_weights,
    given_or_counted,
    inverse_frequency_weights,
)
from fer_pipeline.methods.deviation import DeviationNet
from fer_pipeline.methods.distillation import DistillConfig, distill, initial_images, outer_loss
from fer_pipeline.methods.ensemble import SoftmaxEnsemble, average_probabilities
from fer_pipeline.methods.imbalance_subset import imbalanced_subset, realised_factor, target_counts
from fer_pipeline.methods.lnsu import LNSUConfig, lnsu_loss
from fer_pipeline.methods.rac import rac_consistency
from fer_pipeline.methods.rsl import rsl_loss, rsl_targets
from fer_pipeline.methods.upsampling import (
    FaceRandAugment,
    UpsampledDataset,
    read_upsample_index,
    upsample_plan,
    write_upsample_index,
)
from fer_pipeline.methods.weighted_ce import weighted_smoothed_ce
from fer_pipeline.models.factory import build_model

# ---- class weights ---------------------------------------------------------------

def test_effective_number_weights_by_hand():
    # beta = 0.5, counts 1, 2, 3: (1 - b)/(1 - b^n) = 1, 2/3, 4/7 -> x 21: 21, 14, 12 (sum 47); normalised to sum 3.
    w = effective_number_weights([1, 2, 3], beta=0.5)
    assert torch.allclose(w, torch.tensor([63 / 47, 42 / 47, 36 / 47]))
    raw = effective_number_weights([1, 2, 3], beta=0.5, normalise=False)
    assert torch.allclose(raw, torch.tensor([1.0, 2 / 3, 4 / 7]))
    # The paper's beta: a balanced set gets equal weights, a rarer class a larger one.
    assert torch.allclose(class_weights([50, 50, 50]), torch.ones(3))
    w = class_weights([1000, 100, 10])
    assert w[0] < w[1] < w[2] and math.isclose(float(w.sum()), 3, rel_tol=1e-6)


def test_inverse_frequency_weights_by_hand_and_errors():
    assert torch.allclose(inverse_frequency_weights([1, 2, 3]), torch.tensor([2.0, 1.0, 2 / 3]))
    assert torch.allclose(class_weights([1, 2, 3], "inverse"), torch.tensor([2.0, 1.0, 2 / 3]))
    with pytest.raises(ValueError, match=r"classes \[1\]"):
        effective_number_weights([5, 0, 3])
    with pytest.raises(ValueError, match="scheme"):
        class_weights([1, 2], "sqrt")
    assert given_or_counted(3, given=[1, 3, 5]).tolist() == [1.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="3 positive numbers"):
        given_or_counted(3, given=[1, 3])


# ---- RSL ---------------------------------------------------------------------------

def test_rsl_official_targets_by_hand():
    t = rsl_targets(torch.tensor([0, 2]), torch.tensor([1.0, 2.0, 3.0]), smoothing=0.3)
    # label 0: the others (weights 2, 3) share 0.3 as 2/5 and 3/5; label 2: the others (1, 2) as 1/3, 2/3.
    assert torch.allclose(t, torch.tensor([[0.7, 0.12, 0.18], [0.1, 0.2, 0.7]]))
    assert torch.allclose(t.sum(dim=1), torch.ones(2))


def test_rsl_paper_targets_by_hand():
    w = torch.tensor([63 / 47, 42 / 47, 36 / 47])  # sums to L = 3
    t = rsl_targets(torch.tensor([0]), w, form="paper")  # alpha = 0.1: (1 - a)[l = y] + a B_l / L
    assert torch.allclose(t, torch.tensor([[0.9 + 63 / 1410, 42 / 1410, 36 / 1410]]))
    # Unnormalised weights are rescaled first, so the row still sums to 1.
    assert torch.allclose(rsl_targets(torch.tensor([1]), w * 5, form="paper").sum(), torch.tensor(1.0))


def test_rsl_loss_by_hand():
    logits = torch.log(torch.tensor([[1.0, 2.0, 3.0]]))  # softmax 1/6, 2/6, 3/6
    loss = rsl_loss(logits, torch.tensor([0]), torch.tensor([1.0, 2.0, 3.0]), smoothing=0.3)
    expected = -(0.7 * math.log(1 / 6) + 0.12 * math.log(2 / 6) + 0.18 * math.log(3 / 6))
    assert math.isclose(float(loss), expected, rel_tol=1e-6)


# ---- RAC ---------------------------------------------------------------------------

def test_cams_by_hand():
    features = torch.tensor([5.0, 7.0]).reshape(1, 2, 1, 1)
    weight = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert class_activation_maps(features, weight).flatten().tolist() == [19.0, 43.0]


def test_rac_flip_back_identity():
    gen = torch.Generator().manual_seed(0)
    w = torch.tensor([0.5, 1.0, 2.0])
    half = torch.randn(2, 3, 4, 3, generator=gen)
    symmetric = torch.cat([half, torch.flip(half, dims=(-1,))], dim=-1)
    # A horizontally symmetric map is its own flip: zero loss whichever way it is weighted.
    assert float(rac_consistency(symmetric, symmetric, w)) == 0.0
    assert float(rac_consistency(symmetric, symmetric, w, on="maps")) == 0.0
    # Any map whose flipped image's map is its mirror image is consistent too.
    maps = torch.randn(2, 3, 4, 6, generator=gen)
    assert float(rac_consistency(maps, torch.flip(maps, dims=(-1,)), w)) == 0.0
    assert float(rac_consistency(maps, maps, w)) > 0


def test_rac_weighted_by_hand():
    a = torch.tensor([[[[1.0, 3.0]], [[2.0, 2.0]]]])  # 1 image, 2 classes, 1 x 2 maps
    w = torch.tensor([0.5, 1.5])
    # Class 0: flip([1, 3]) = [3, 1], squared error mean 4; class 1 symmetric: 0.
    assert math.isclose(float(rac_consistency(a, a, w)), (0.5 * 4 + 0) / 2)
    assert math.isclose(float(rac_consistency(a, a, w, on="maps")), (0.25 * 4 + 0) / 2)  # Eq. 3: B_l^2


@pytest.mark.parametrize("arch", ["small_cnn", "resnet18"])
def test_maps_and_logits_match_the_backbone(arch):
    torch.manual_seed(0)
    model = build_model(arch, 4).eval()
    net = MapsAndLogits(model).eval()
    x = torch.randn(2, 3, 32, 32)
    maps, logits = net(x)
    assert maps.ndim == 4 and maps.shape[1] == model.fc.in_features
    assert torch.allclose(logits, model(x), atol=1e-5)


def test_lnsu_loss_without_rac_and_rsl_is_the_two_views_cross_entropy():
    torch.manual_seed(0)
    net = MapsAndLogits(build_model("small_cnn", 3)).eval()
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 1])
    w = class_weights([30, 10, 5])
    loss, parts = lnsu_loss(net, x, y, w, LNSUConfig(consistency_weight=0.0, rsl_smoothing=0.0))
    expected = F.cross_entropy(net(x)[1], y) + F.cross_entropy(net(torch.flip(x, dims=(-1,)))[1], y)
    assert torch.allclose(loss, expected, atol=1e-5)
    full, parts = lnsu_loss(net, x, y, w)
    full.backward()
    assert parts["cons"] > 0 and net.fc.weight.grad is not None


# ---- ABAW4: smoothed weighted cross-entropy -----------------------------------------

def test_weighted_smoothed_ce_by_hand():
    logits = torch.log(torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]))
    labels = torch.tensor([2, 0])
    a = 0.2
    ce0 = -((a / 3) * math.log(1 / 6) + (a / 3) * math.log(2 / 6) + (1 - a + a / 3) * math.log(3 / 6))
    ce1 = math.log(3)
    loss = weighted_smoothed_ce(logits, labels, torch.tensor([1.0, 3.0, 5.0]), a)
    assert math.isclose(float(loss), (5 * ce0 + 1 * ce1) / 6, rel_tol=1e-6)
    # Unweighted, it is torch's label-smoothed cross-entropy.
    assert torch.allclose(weighted_smoothed_ce(logits, labels, None, a), F.cross_entropy(logits, labels, label_smoothing=a))


# ---- imbalance-factor subsets ------------------------------------------------------

def test_imbalance_profile_by_hand():
    # Ranks by count: 200 (class 1), 120, 80, 50, 30; IF 10 over 4 steps: mu = 10^(-1/4).
    # 200, floor(112.47) = 112, floor(63.25) = 63, floor(35.57) = 35, 200 / 10 = 20.
    assert target_counts([50, 200, 120, 80, 30], 10).tolist() == [35, 200, 112, 63, 20]
    # Capped by availability: the third class has 30 < 200 / 2 = 100.
    assert target_counts([200, 190, 30], 2).tolist() == [200, 141, 30]
    assert realised_factor([200, 141, 30]) == 200 / 30
    assert target_counts([4, 0, 4], 1).tolist() == [4, 0, 4]  # absent classes stay absent
    with pytest.raises(ValueError, match=">= 1"):
        target_counts([3, 2], 0.5)


def test_imbalanced_subset_draws_the_profile_deterministically():
    targets = np.repeat(np.arange(5), [50, 200, 120, 80, 30])
    np.random.default_rng(0).shuffle(targets)
    a = imbalanced_subset(targets, 10, seed=1, num_classes=5)
    assert np.bincount(targets[a], minlength=5).tolist() == [35, 200, 112, 63, 20]
    assert len(set(a.tolist())) == len(a) and (np.diff(a) > 0).all()
    assert np.array_equal(a, imbalanced_subset(targets, 10, seed=1, num_classes=5))
    assert not np.array_equal(a, imbalanced_subset(targets, 10, seed=2, num_classes=5))


LABELS = {"happiness": 80, "neutral": 60, "sadness": 40, "surprise": 30, "anger": 20, "fear": 12, "disgust": 10}


@pytest.fixture
def labelled_dataset(tmp_path):
    """A prepared dataset (placeholder image bytes: a subset never decodes) with the
    counts above in its train split, a test split and one contempt row outside basic7."""
    out = tmp_path / "prepared" / "rafdb"
    out.mkdir(parents=True)
    writer = ShardWriter(out, rows_per_shard=200, row_group_size=64)
    rows = [(label, "train") for label, n in LABELS.items() for _ in range(n)]
    rows += [("contempt", "train")] + [(label, "test") for label in LABELS for _ in range(2)]
    order = np.random.default_rng(0).permutation(len(rows))
    for k in order:
        label, split = rows[k]
        writer.add({"image": b"jpeg", "label": label, "identity": None, "split": split,
                    "source": f"{split}/{label}_{k:04d}.jpg", "landmarks5": None, "video": None, "frame": None})
    writer.close()
    return out


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in shard_paths(folder)}


def test_fer_subset_writes_an_index_smp_read_index_reads(labelled_dataset, params, tmp_path):
    params["prepare"]["out_dir"] = str(labelled_dataset.parent)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    before = _digest(labelled_dataset)
    out = tmp_path / "subsets" / "rafdb_if8.json"
    argv = ["subset", "--params", str(tmp_path / "params.yaml"), "--dataset", "rafdb", "--imbalance-factor", "8",
            "--seed", "3", "--out", str(out)]
    assert cli.main(argv) == 0
    sources = read_index(out)
    assert all(s.startswith("train/") for s in sources)  # the test split is not drawn from ...
    assert _digest(labelled_dataset) == before  # ... nor is anything in the dataset rewritten
    train = FaceShardDataset(labelled_dataset, "train", ClassSet.named("basic7"), 32)
    train.restrict_to(sources, str(out))
    counts = dict(zip(train.class_set.classes, train.class_counts().tolist()))
    # n_max 80, IF 8 over 6 steps (mu = 8^(-1/6)): 80, 56, 40, 28, 20, 14 -> 12 and 10 (capped).
    assert counts == {"happiness": 80, "neutral": 56, "sadness": 40, "surprise": 28, "anger": 20, "fear": 12,
                      "disgust": 10}
    assert FaceShardDataset(labelled_dataset, "test", ClassSet.named("basic7"), 32).class_counts().sum() == 14
    first = out.read_text()
    assert cli.main(argv) == 0 and out.read_text() == first  # same seed, same file
    argv[argv.index("--seed") + 1] = "4"
    assert cli.main(argv) == 0 and read_index(out) != sources


def test_fer_subset_names_an_unknown_dataset(params, tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["subset", "--params", str(tmp_path / "params.yaml"), "--dataset", "nope",
                     "--imbalance-factor", "8"]) == 1


# ---- RandAugment up-sampling -------------------------------------------------------

def test_upsample_plan_brings_every_class_to_the_majority():
    targets = np.array([0] * 7 + [1] * 3 + [2] * 1 + [3] * 7)
    np.random.default_rng(1).shuffle(targets)
    plan = upsample_plan(targets, seed=5)
    assert np.bincount([targets[row] for row, _ in plan]).tolist() == [7, 7, 7, 7]
    assert sorted(row for row, copy in plan if copy == 0) == list(range(len(targets)))  # every image once as itself
    for c in range(4):
        uses = np.bincount([row for row, _ in plan if targets[row] == c], minlength=len(targets))
        uses = uses[targets == c]
        assert uses.max() - uses.min() <= 1  # repeated as evenly as possible
    assert plan == upsample_plan(targets, seed=5)
    assert len(plan) == len(set(plan))  # each (row, copy) once: copies are numbered


def test_face_randaugment_excludes_solarize_and_equalize():
    ops = set(FaceRandAugment._AUGMENTATION_SPACE)
    assert len(ops) == 12 and not ops & {"Solarize", "Equalize"}


def test_upsampled_dataset_gives_fresh_augmentation(tmp_path):
    out = tmp_path / "prepared"
    out.mkdir()
    writer = ShardWriter(out, rows_per_shard=100, row_group_size=16)
    gen = np.random.default_rng(0)
    for k, label in enumerate(["happiness"] * 3 + ["fear"]):
        ok, jpeg = cv2.imencode(".jpg", gen.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        assert ok
        writer.add({"image": jpeg.tobytes(), "label": label, "identity": None, "split": "train",
                    "source": f"img{k}.jpg", "landmarks5": None, "video": None, "frame": None})
    writer.close()
    base = FaceShardDataset(out, "train", ClassSet.named("basic7"), 32)
    plan = upsample_plan(base.targets.numpy(), seed=0)
    write_upsample_index(tmp_path / "up.json", base.sources, plan, {"seed": 0})
    data = UpsampledDataset(base, read_upsample_index(tmp_path / "up.json"))
    assert len(data) == 6
    assert torch.bincount(data.targets, minlength=7)[[1, 4]].tolist() == [3, 3]  # happiness, fear
    fear = [i for i in range(len(data)) if data.targets[i] == 4]
    originals = [i for i in fear if data.copies[i] == 0]
    extras = [i for i in fear if data.copies[i] > 0]
    assert len(originals) == 1 and len(extras) == 2
    assert torch.equal(data[originals[0]][0], base[data.rows[originals[0]]][0])  # copy 0 is the image itself
    views = [data[extras[0], epoch][0] for epoch in range(4)] + [data[extras[1], 0][0]]
    assert torch.equal(data[extras[0], 0][0], views[0])  # reproducible per (entry, epoch)
    assert any(not torch.equal(views[0], v) for v in views[1:])  # but fresh across epochs and copies


# ---- deviation fine-tuning ---------------------------------------------------------

def test_deviation_features_are_zero_at_initialisation_and_only_the_copy_trains():
    torch.manual_seed(0)
    net = DeviationNet(build_model("small_cnn", 3), num_classes=3, eps=0.0)
    x = torch.randn(4, 3, 16, 16)
    for mode in (False, True):  # eval first: a training forward moves the trainable copy's BN statistics
        net.train(mode)
        assert torch.equal(net.features(x), torch.zeros(4, 256))
    frozen_before = copy.deepcopy(net.frozen.state_dict())
    net.train()
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    F.cross_entropy(net(x), torch.tensor([0, 1, 2, 0])).backward()
    assert all(p.grad is None for p in net.frozen.parameters())
    optimizer.step()
    net(x)  # another training forward: the frozen copy's BatchNorm statistics must not move
    after = net.frozen.state_dict()
    assert all(torch.equal(frozen_before[k], after[k]) for k in after if "num_batches" not in k)
    assert net.features(x).abs().max() > 0
    eps_net = DeviationNet(build_model("small_cnn", 3), num_classes=3)  # paper's eps = 1e-6
    assert torch.allclose(eps_net.eval().features(x), torch.full((4, 256), 1e-6))


# ---- ensemble ----------------------------------------------------------------------

def test_ensemble_of_identical_models_is_the_model():
    torch.manual_seed(0)
    model = build_model("small_cnn", 5).eval()
    x = torch.randn(3, 3, 16, 16)
    one = model(x).softmax(dim=1)
    assert torch.allclose(SoftmaxEnsemble([model, copy.deepcopy(model)]).eval()(x), one, atol=1e-6)
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    mixed = average_probabilities([a, b])
    assert torch.allclose(mixed, (a.softmax(1) + b.softmax(1)) / 2) and torch.allclose(mixed.sum(1), torch.ones(3))
    with pytest.raises(ValueError, match="shape"):
        average_probabilities([a, torch.randn(3, 4)])


# ---- dataset distillation ----------------------------------------------------------

def test_distillation_lowers_its_outer_loss_on_a_tiny_problem(tmp_path):
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=gen) * 3
    labels = torch.arange(3).repeat_interleave(40)
    images = centres[labels] + torch.randn(120, 8, generator=gen)

    def make_model():
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    cfg = DistillConfig(steps=20, inits_per_step=2, batch_size=32, lr=0.3, eta0=0.05, seed=0)
    held_out = range(1000, 1008)  # initialisations never seen while distilling
    start, start_labels = initial_images(images, 3, cfg)
    before = outer_loss(make_model, start, start_labels, cfg.eta0, images, labels, held_out)
    result = distill(make_model, images, labels, 3, cfg)
    after = outer_loss(make_model, result.images, result.labels, result.eta, images, labels, held_out)
    assert result.images.shape == (3, 8) and result.labels.tolist() == [0, 1, 2] and result.eta > 0
    assert after < 0.8 * before, (before, after)
    result.save(tmp_path / "distilled.pt")
    assert torch.equal(torch.load(tmp_path / "distilled.pt", weights_only=True)["images"], result.images)


@pytest.mark.parametrize("arch,size,exact", [("resnet18", 48, False), ("resnet18", 224, False),
                                             ("resnet18", 33, True), ("resnet18", 65, True),
                                             ("small_cnn", 48, True), ("small_cnn", 40, False)])
def test_flip_back_is_exact_only_where_the_layers_sample_symmetrically(arch, size, exact):
    from fer_pipeline.methods.rac import flip_misalignment
    from fer_pipeline.models.factory import build_model

    torch.manual_seed(0)
    mismatch = flip_misalignment(build_model(arch, 7), size)
    # ResNets halve five times: columns line up at 32k + 1 px; small_cnn's 2x2 pools at multiples of 16.
    assert (mismatch < 1e-5) == exact, mismatch
