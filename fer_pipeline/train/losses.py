"""The supervised trainer's objective and network, chosen by params (issue 16):
`train.supervised.loss` (ce | weighted_ce | label_smoothing | lnsu, with their options),
`train.supervised.upsampling` and `train.supervised.deviation`. One code path for the
baseline and every row of the imbalance study; the methods themselves live in methods/
and are only wired here. The defaults (kind ce, no up-sampling, no deviation) are the
trainer's loss before the switch existed: torch's cross-entropy with
`train.supervised.label_smoothing`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from fer_pipeline.methods.cam import MapsAndLogits
from fer_pipeline.methods.class_weights import class_weights, given_or_counted
from fer_pipeline.methods.deviation import DeviationNet
from fer_pipeline.methods.lnsu import LNSUConfig, lnsu_loss
from fer_pipeline.methods.rac import flip_misalignment
from fer_pipeline.methods.weighted_ce import weighted_smoothed_ce

log = logging.getLogger(__name__)

KINDS = ("ce", "weighted_ce", "label_smoothing", "lnsu")
UPSAMPLING = ("none", "randaugment")
# params name -> methods/class_weights.py's scheme name
WEIGHT_SCHEMES = {"effective_number": "effective", "inverse_frequency": "inverse"}
DEFAULT_LOSS = {"kind": "ce", "weights": "effective_number", "beta": 0.9999, "smoothing": 0.2,
                "rac": True, "rsl": True, "rsl_form": "official", "rsl_smoothing": None,
                "consistency_weight": 2.0}


def loss_config(cfg: dict) -> dict:
    """train.supervised.loss with its defaults filled in (configs built in code, such as
    the finetune's, may leave the block out: plain CE)."""
    loss = {**DEFAULT_LOSS, **(cfg.get("loss") or {})}
    if loss["kind"] not in KINDS:
        raise ValueError(f"train.supervised.loss.kind is {loss['kind']!r}; choose one of {KINDS}")
    return loss


def upsampling(cfg: dict) -> str:
    value = cfg.get("upsampling", "none")
    if value not in UPSAMPLING:
        raise ValueError(f"train.supervised.upsampling is {value!r}; choose one of {UPSAMPLING}")
    return value


def deviation(cfg: dict) -> bool:
    return bool(cfg.get("deviation", False))


def weight_vector(loss: dict, num_classes: int, counts: Sequence[int] | None) -> torch.Tensor:
    """The class weights of weighted_ce and lnsu: a list from params, else from the
    training images' class counts (train.supervised.loss.weights, .beta)."""
    given = loss["weights"]
    try:
        if isinstance(given, (list, tuple)):
            return given_or_counted(num_classes, given=given)
        if given not in WEIGHT_SCHEMES:
            raise ValueError(f"choose one of {sorted(WEIGHT_SCHEMES)} or a list, one weight per class")
        if counts is None:
            raise ValueError("weights from class counts, but the trainer was given no counts")
        return class_weights(counts, WEIGHT_SCHEMES[given], loss["beta"])
    except ValueError as exc:
        raise ValueError(f"train.supervised.loss.weights ({given!r}): {exc}") from None


class Objective:
    """`objective(model, images, targets) -> (loss, logits of `images`)` for one batch."""

    def __init__(self, loss: dict, label_smoothing: float, weights: torch.Tensor | None):
        self.loss, self.weights = loss, weights
        self.ce = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self._net: MapsAndLogits | None = None  # lnsu: the network seen through its feature maps

    def __call__(self, model: torch.nn.Module, images: torch.Tensor,
                 targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kind = self.loss["kind"]
        if kind == "lnsu":
            return self._lnsu(model, images, targets)
        logits = model(images)
        if kind == "ce":
            return self.ce(logits.float(), targets), logits
        if kind == "weighted_ce":
            return weighted_smoothed_ce(logits.float(), targets, self.weights, smoothing=0.0), logits
        return weighted_smoothed_ce(logits.float(), targets, None, smoothing=self.loss["smoothing"]), logits

    def _lnsu(self, model, images, targets):
        # The wrapper shares the network's modules: the optimiser, the checkpoint and the
        # bundle see the network itself.
        if self._net is None or self._net.fc is not model.fc:
            self._net = MapsAndLogits(model)
            if self.loss["rac"]:
                warn_if_flip_misaligned(model, images.shape[-1])
        net = self._net
        seen = _KeepLogits(net)
        cfg = LNSUConfig(consistency_weight=self.loss["consistency_weight"] if self.loss["rac"] else 0.0,
                         rsl_smoothing=self.loss["rsl_smoothing"] if self.loss["rsl"] else 0.0,  # off: plain CE
                         rsl_form=self.loss["rsl_form"])
        total, _ = lnsu_loss(seen, images, targets, self.weights, cfg)
        return total, seen.logits[:len(images)]


def warn_if_flip_misaligned(model: torch.nn.Module, input_size: int) -> None:
    """RAC at an input size where flip-back cannot line up (methods/rac.py) is said once."""
    mismatch = flip_misalignment(model, input_size)
    if mismatch > 1e-3:
        log.warning("RAC at %d px: this network's flipped-back maps sit %.0f %% (relative) from the image's even "
                    "with mirror-symmetric kernels, so the consistency cannot be met; ResNets line up at 32k + 1 px "
                    "(33, 65, 225)", input_size, 100 * mismatch)


class _KeepLogits:
    """Hands lnsu_loss the network and keeps the logits of its one forward (the image's
    half gives the training accuracy without a second forward)."""

    def __init__(self, net: MapsAndLogits):
        self.net, self.fc, self.logits = net, net.fc, None

    def __call__(self, x: torch.Tensor):
        maps, self.logits = self.net(x)
        return maps, self.logits


def build_objective(cfg: dict, num_classes: int, class_counts: Sequence[int] | None = None) -> Objective:
    """The objective train.supervised names, with class weights from `class_counts` (the
    training images, before any up-sampling) when its kind uses them."""
    loss = loss_config(cfg)
    weights = weight_vector(loss, num_classes, class_counts) if loss["kind"] in ("weighted_ce", "lnsu") else None
    if loss["kind"] == "lnsu" and deviation(cfg):
        raise ValueError("train.supervised.loss.kind lnsu reads the backbone's feature maps, which "
                         "train.supervised.deviation: true hides behind the deviation module: use one of them")
    return Objective(loss, cfg.get("label_smoothing", 0.0), weights)


def wrap_network(cfg: dict, model: torch.nn.Module, num_classes: int,
                 init_weights: str | None) -> torch.nn.Module:
    """The network the trainer optimises: the backbone, or with train.supervised.deviation
    the deviation module around it (a frozen copy of the given init minus a trained copy)."""
    if not deviation(cfg):
        return model
    if not init_weights:
        raise ValueError("train.supervised.deviation: true fine-tunes from given weights, but none were given "
                         "(train.supervised.init is scratch): set it to fr_pretrained or a state_dict file")
    return DeviationNet(model, num_classes)
