"""Dataset distillation (Wang et al., 2018) as the omni-supervised FER baseline uses it
to compress its mined auxiliary samples: "Omni-supervised Facial Expression
Recognition: A Simple Baseline", section 3.4, Algorithm 1.

n synthetic images x~ (one per class by default, with fixed labels) and a step size
eta are learned so that a network started from *any* initial weights theta_0 ~ p(theta)
and trained on x~ with step eta does well on the real data:
    theta_1 = theta_0 - eta * grad_theta0 l(x~, theta_0)          (Algorithm 1, line 6)
    L = l(x_t, theta_1), x_t a batch of real images               (line 7)
    x~ <- x~ - alpha grad_x~ sum_j L^j,  eta <- eta - alpha grad_eta sum_j L^j   (line 9)
l is the cross-entropy. p(theta) is the network's own initialisation: `make_model` is
called with torch's generator seeded per draw.

Departures: eta is learned as log(eta) so it stays positive (a plain step on eta can
cross zero and turn the inner step into gradient ascent); `inner_steps` > 1 repeats line
6 with the same eta (Wang et al.'s multi-step variant; Algorithm 1 has one step);
`optimizer: adam` replaces line 9's plain step by Adam steps of size alpha (what Wang et
al.'s released code uses): after one inner step from a random network, the gradient on a
pixel is ~1e-4, so a plain step of a usable alpha leaves the images where they started.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

from fer_pipeline.common.atomic import write_bytes


@dataclass(frozen=True)
class DistillConfig:
    images_per_class: int = 1
    steps: int = 200              # T, outer iterations
    inits_per_step: int = 4       # sampled theta_0 per outer iteration
    inner_steps: int = 1
    batch_size: int = 64          # M, real images per outer iteration
    lr: float = 0.01              # alpha, the outer step size
    eta0: float = 0.02            # initial inner step size
    seed: int = 0
    optimizer: str = "sgd"        # line 9: sgd (Algorithm 1's plain step) | adam (Wang et al.'s code)


@dataclass
class DistilledSet:
    images: torch.Tensor
    labels: torch.Tensor
    eta: float
    history: list[float] = field(default_factory=list)  # mean outer loss per iteration

    def save(self, path: str | Path) -> None:
        buffer = io.BytesIO()
        torch.save({"images": self.images, "labels": self.labels, "eta": self.eta, "history": self.history}, buffer)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, buffer.getvalue())


def sample_initial(make_model: Callable[[], torch.nn.Module], seed: int) -> tuple[torch.nn.Module, dict]:
    """A network drawn from p(theta) with `seed`, and its parameters as leaf tensors."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make_model()
    params = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    return model, params


def adapt(model: torch.nn.Module, params: dict, images: torch.Tensor, labels: torch.Tensor, eta: torch.Tensor,
          steps: int = 1, create_graph: bool = True) -> dict:
    """Line 6: `steps` gradient steps of size eta on the distilled images."""
    for _ in range(steps):
        loss = F.cross_entropy(functional_call(model, params, (images,)), labels)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph, allow_unused=True)
        params = {k: p if g is None else p - eta * g for (k, p), g in zip(params.items(), grads)}
    return params


def outer_loss(make_model, images: torch.Tensor, labels: torch.Tensor, eta: float, real_images: torch.Tensor,
               real_labels: torch.Tensor, seeds: Sequence[int], inner_steps: int = 1) -> float:
    """Mean over initialisations `seeds` of the real-data loss after training on
    (images, labels): what distillation minimises, for evaluation."""
    total = 0.0
    eta_t = torch.tensor(eta)
    for seed in seeds:
        model, params = sample_initial(make_model, seed)
        adapted = adapt(model, params, images, labels, eta_t, inner_steps, create_graph=False)
        with torch.no_grad():
            total += float(F.cross_entropy(functional_call(model, adapted, (real_images,)), real_labels))
    return total / len(seeds)


def initial_images(real_images: torch.Tensor, num_classes: int, cfg: DistillConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Random-noise images (Wang et al.'s initialisation) and their fixed labels."""
    generator = torch.Generator().manual_seed(cfg.seed)
    n = num_classes * cfg.images_per_class
    images = torch.randn((n, *real_images.shape[1:]), generator=generator)
    return images, torch.arange(num_classes).repeat_interleave(cfg.images_per_class)


def distill(make_model: Callable[[], torch.nn.Module], real_images: torch.Tensor, real_labels: torch.Tensor,
            num_classes: int, cfg: DistillConfig = DistillConfig()) -> DistilledSet:
    """Algorithm 1 on an in-memory labelled set (real_images: N x ...; real_labels: N)."""
    if len(real_images) != len(real_labels) or len(real_images) == 0:
        raise ValueError(f"{len(real_images)} images but {len(real_labels)} labels")
    if cfg.eta0 <= 0:
        raise ValueError(f"eta0 must be positive, got {cfg.eta0}")
    if cfg.optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be sgd or adam, got {cfg.optimizer!r}")
    images, labels = initial_images(real_images, num_classes, cfg)
    images.requires_grad_(True)
    log_eta = torch.tensor(math.log(cfg.eta0), requires_grad=True)
    step = (torch.optim.SGD if cfg.optimizer == "sgd" else torch.optim.Adam)([images, log_eta], lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    history = []
    for t in range(cfg.steps):
        batch = torch.randint(len(real_images), (min(cfg.batch_size, len(real_images)),), generator=generator)
        x_t, y_t = real_images[batch], real_labels[batch]
        total = 0.0
        for j in range(cfg.inits_per_step):
            model, params = sample_initial(make_model, cfg.seed * 1_000_003 + t * cfg.inits_per_step + j)
            adapted = adapt(model, params, images, labels, log_eta.exp(), cfg.inner_steps)
            total = total + F.cross_entropy(functional_call(model, adapted, (x_t,)), y_t)
        images.grad, log_eta.grad = torch.autograd.grad(total, [images, log_eta])
        step.step()  # sgd: x~ -= alpha * grad, log(eta) -= alpha * grad (line 9)
        history.append(total.item() / cfg.inits_per_step)
    return DistilledSet(images.detach(), labels, math.exp(log_eta.item()), history)
