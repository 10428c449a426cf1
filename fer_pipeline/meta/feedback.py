"""The feedback coefficient f of Face2Exp (Eq. 6) and the student step it measures.

f tells the teacher whether the student's step on the teacher's pseudo labels
helped the student on balanced labelled data:

* ``exact``: f = eta_A * grad CE_FER(theta')^T . grad CE_FR(theta), the gradient dot
  product of Eq. 6 (theta' = the student after its step). It needs the FR gradient
  (kept as one flat vector, not a model copy) and a backward pass at theta';
* ``first_order``: f = CE_FER(theta) - CE_FER(theta'), its first-order Taylor
  equivalent (for a plain SGD step theta' = theta - eta g_FR the two agree as
  eta -> 0). Positive when the step lowered the student's labelled loss: the
  teacher is pushed along its pseudo labels; negative pushes it the other way.

Both labelled-loss measurements run in train mode (batch statistics, as in the
step itself) with BatchNorm running statistics frozen, so measuring does not
change the model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MODES = ("exact", "first_order", "none")  # none: the student step only (an ablation without L_f)


@contextlib.contextmanager
def frozen_bn_stats(model: torch.nn.Module):
    """Forward in train mode without touching BatchNorm running statistics
    (momentum 0 keeps running = 1 * running + 0 * batch)."""
    saved = []
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            saved.append((module, module.momentum))
            module.momentum = 0.0
    try:
        yield
    finally:
        for module, momentum in saved:
            module.momentum = momentum


def _params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


@dataclass
class StudentStepResult:
    loss_u: float            # the student's loss on pseudo-labelled FR data (before its step)
    feedback: float          # f
    loss_fer_before: float | None
    loss_fer_after: float | None  # None in mode "none" (nothing measured)


def student_step_with_feedback(student: torch.nn.Module, optimizer: torch.optim.Optimizer,
                               x_fr: torch.Tensor, pseudo: torch.Tensor, x_fer: torch.Tensor,
                               y_fer: torch.Tensor, mode: str, mask: torch.Tensor | None = None,
                               autocast=contextlib.nullcontext) -> StudentStepResult:
    """One student update on (x_fr, pseudo) and the feedback f it earns (Eq. 6).

    `mask` (optional) keeps only confident pseudo labels in L_u. The learning rate
    in the exact mode is the optimizer's current rate (eta_A of Eq. 6)."""
    if mode not in MODES:
        raise ValueError(f"feedback mode {mode!r}; choose one of {MODES}")
    # Under DDP the step goes through the wrapper (gradients averaged over ranks); the
    # labelled-loss measurements use the bare network (local, no gradient sync) and f
    # is averaged over ranks by the caller.
    plain = getattr(student, "module", student)
    params = _params(plain)
    loss_before = None
    if mode == "first_order":
        with torch.no_grad(), frozen_bn_stats(plain), autocast():
            loss_before = F.cross_entropy(plain(x_fer).float(), y_fer).item()

    with autocast():
        logits = student(x_fr).float()
    per_sample = F.cross_entropy(logits, pseudo, reduction="none")
    loss_u = per_sample.mean() if mask is None else (per_sample * mask).sum() / mask.sum().clamp(min=1)
    optimizer.zero_grad(set_to_none=True)
    loss_u.backward()
    g_fr = None
    if mode == "exact":
        g_fr = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        eta = optimizer.param_groups[0]["lr"]
    optimizer.step()
    if mode == "none":
        return StudentStepResult(loss_u.item(), 0.0, None, None)

    with frozen_bn_stats(plain):
        if mode == "first_order":
            with torch.no_grad(), autocast():
                loss_after = F.cross_entropy(plain(x_fer).float(), y_fer)
            feedback = loss_before - loss_after.item()
        else:
            with autocast():
                loss_after = F.cross_entropy(plain(x_fer).float(), y_fer)
            g_fer = torch.autograd.grad(loss_after, params, allow_unused=True)
            g_fer = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                               for g, p in zip(g_fer, params)])
            feedback = eta * torch.dot(g_fer.float(), g_fr.float()).item()
    return StudentStepResult(loss_u.item(), float(feedback), loss_before, loss_after.item())
