"""The supervised trainer's switches (train/losses.py): the default block is plain CE, each
imbalance-study row builds its method's objective (against methods/ on tiny tensors), the
errors name their params keys, and a deviation network survives its bundle."""

import copy

import pytest
import torch
import torch.nn.functional as F

from fer_pipeline.common import params as params_mod
from fer_pipeline.common.labels import ClassSet
from fer_pipeline.methods.cam import MapsAndLogits
from fer_pipeline.methods.class_weights import class_weights
from fer_pipeline.methods.deviation import DeviationNet
from fer_pipeline.methods.rac import rac_loss
from fer_pipeline.methods.rsl import rsl_loss
from fer_pipeline.models.bundle import load_bundle, save_bundle
from fer_pipeline.models.factory import build_model
from fer_pipeline.studies.imbalance import ROWS, SeedStudy, StudyRun
from fer_pipeline.train.losses import build_objective, loss_config, wrap_network

COUNTS = [6, 4, 2]


def _batch():
    torch.manual_seed(0)
    # eval: BatchNorm normalises each image alone, so one forward over image + flip equals two.
    model = build_model("small_cnn", 3).eval()
    return model, torch.randn(5, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1])


def _flip(x):
    return torch.flip(x, dims=(-1,))


def test_the_default_loss_block_is_plain_cross_entropy(params):
    sup = params["train"]["supervised"]
    assert loss_config(sup)["kind"] == "ce" and sup["upsampling"] == "none" and sup["deviation"] is False
    model, x, y = _batch()
    without_block = {k: v for k, v in sup.items() if k not in ("loss", "upsampling", "deviation")}
    for cfg in (sup, without_block):  # the finetune's config, built in code, may leave it out
        loss, logits = build_objective(cfg, 3, COUNTS)(model, x, y)
        assert torch.equal(logits, model(x))
        assert torch.equal(loss, F.cross_entropy(model(x), y))
        assert wrap_network(cfg, model, 3, "init.pt") is model


@pytest.mark.parametrize("row", list(ROWS))
def test_each_study_row_builds_its_method_objective(params, row, tmp_path):
    run = StudyRun("r", 10, row, "small_cnn", ROWS[row], 1)
    cfg = SeedStudy(params, 0, "unused", tmp_path, tmp_path).train_cfg(run)
    assert cfg["upsampling"] == ("randaugment" if row == "upsampling" else "none") and cfg["deviation"] is False
    model, x, y = _batch()
    loss, logits = build_objective(cfg, 3, COUNTS)(model, x, y)
    out, flipped = model(x), model(_flip(x))
    assert torch.allclose(logits, out, atol=1e-6), "the logits of the images, not of their flips"
    w = class_weights(COUNTS, "effective", 0.9999)  # train.supervised.loss's defaults: effective_number, 0.9999
    net = MapsAndLogits(model)
    rac = 2.0 * rac_loss(net.maps(x), net.maps(_flip(x)), model.fc.weight, w)  # lambda 2
    rsl = rsl_loss(out, y, w) + rsl_loss(flipped, y, w)  # Eq. 1 sums the two views
    expected = {
        "ce": F.cross_entropy(out, y),
        "upsampling": F.cross_entropy(out, y),
        "weighted_ce": (w[y] * F.cross_entropy(out, y, reduction="none")).sum() / w[y].sum(),
        "label_smoothing": F.cross_entropy(out, y, label_smoothing=0.2),
        "ce_flip": F.cross_entropy(out, y) + F.cross_entropy(flipped, y),  # both views, neither module
        "rsl": rsl,
        "rac": F.cross_entropy(out, y) + F.cross_entropy(flipped, y) + rac,
        "rac_rsl": rsl + rac,
    }[row]
    assert torch.allclose(loss, expected, atol=1e-5)


def test_lnsu_without_rac_and_rsl_is_the_cross_entropy_of_image_and_flip(params):
    cfg = copy.deepcopy(params["train"]["supervised"])
    cfg["loss"].update(kind="lnsu", rac=False, rsl=False)
    model, x, y = _batch()
    loss, _ = build_objective(cfg, 3, COUNTS)(model, x, y)
    assert torch.allclose(loss, F.cross_entropy(model(x), y) + F.cross_entropy(model(_flip(x)), y), atol=1e-5)


def test_class_weights_follow_the_params(params):
    cfg = copy.deepcopy(params["train"]["supervised"])
    cfg["loss"].update(kind="weighted_ce", weights="inverse_frequency")
    assert torch.allclose(build_objective(cfg, 3, COUNTS).weights, torch.tensor([2 / 3, 1.0, 2.0]))  # N / (C n)
    cfg["loss"]["weights"] = [1, 3, 5]  # ABAW4-LSD's hand-set weights
    assert build_objective(cfg, 3, COUNTS).weights.tolist() == [1.0, 3.0, 5.0]
    cfg["loss"]["weights"] = [1, 3]
    with pytest.raises(ValueError, match=r"train\.supervised\.loss\.weights .*3 positive numbers"):
        build_objective(cfg, 3, COUNTS)
    cfg["loss"]["weights"] = "effective_number"
    with pytest.raises(ValueError, match=r"train\.supervised\.loss\.weights .*classes \[2\] have none"):
        build_objective(cfg, 3, [6, 4, 0])
    cfg["loss"]["kind"] = "ce"
    assert build_objective(cfg, 3, [6, 4, 0]).weights is None, "plain CE never computes weights"


def test_switch_errors_name_their_params_keys(params):
    cfg = copy.deepcopy(params["train"]["supervised"])
    cfg["loss"]["kind"] = "focal"
    with pytest.raises(ValueError, match=r"train\.supervised\.loss\.kind is 'focal'"):
        build_objective(cfg, 3, COUNTS)
    cfg["loss"]["kind"], cfg["deviation"] = "lnsu", True
    with pytest.raises(ValueError, match=r"train\.supervised\.deviation"):
        build_objective(cfg, 3, COUNTS)
    with pytest.raises(ValueError, match=r"train\.supervised\.init"):
        wrap_network(cfg, build_model("small_cnn", 3), 3, None)
    assert isinstance(wrap_network(cfg, build_model("small_cnn", 3), 3, "init.pt"), DeviationNet)
    # In params.yaml the switch is refused: the control's finetune and train.meta read the baseline.
    bad = copy.deepcopy(params)
    bad["train"]["supervised"]["deviation"] = True
    with pytest.raises(params_mod.ParamsError, match=r"key 'train\.supervised\.deviation' is true"):
        params_mod.validate(bad)


def test_a_deviation_network_survives_its_bundle(tmp_path):
    torch.manual_seed(1)
    net = DeviationNet(build_model("small_cnn", 3), 3).eval()
    with torch.no_grad():
        for p in net.trainable.parameters():
            p.add_(0.01)  # moved away from the frozen copy, as fine-tuning does
    class_set = ClassSet("three", ("a", "b", "c"))
    save_bundle(net, "small_cnn", class_set, 16, tmp_path / "model.pt")
    loaded, bundle = load_bundle(tmp_path)
    assert bundle["deviation"] is True and isinstance(loaded, DeviationNet)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(loaded.eval()(x), net(x))
    save_bundle(build_model("small_cnn", 3), "small_cnn", class_set, 16, tmp_path / "plain.pt")
    assert "deviation" not in load_bundle(tmp_path, "plain.pt")[1], "other bundles keep their bytes"
