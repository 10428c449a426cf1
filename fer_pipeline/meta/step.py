"""One Face2Exp meta-training step (Algorithm 1), with fused teacher forward.

    teacher forward once over cat(x_FER, weak x_FR, strong x_FR)
    pseudo labels   y_hat = argmax B(weak x_FR)                         (B -> A)
    student step    L_u = CE(y_hat, A(strong x_FR)), feedback f (Eq. 6)  (A -> B)
    teacher step    L_B = w_s L_s + w_c L_c + w_f L_f with
                    L_s = CE(y_FER, B(x_FER))
                    L_c = CE(softmax B(weak x_FR) [detached], B(strong x_FR))
                    L_f = f * CE(y_hat, B(weak x_FR))

The teacher's parameters do not change during the student step, so the one
forward serves pseudo labels and all three teacher losses.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fer_pipeline.meta.feedback import student_step_with_feedback


@dataclass(frozen=True)
class MetaLossConfig:
    weight_s: float = 1.0
    weight_c: float = 1.0
    weight_f: float = 1.0
    feedback: str = "first_order"
    threshold: float = 0.0          # paper: every pseudo label is used (0 disables the mask)
    label_smoothing: float = 0.0    # on L_s; paper: none
    uda_warmup_steps: int = 0       # ramps w_c from 0 over these steps; paper: none


def soft_cross_entropy(target_probs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """CE between a (detached) distribution and logits: L_c's consistency term."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


class PhaseTimer:
    """Accumulates wall time per phase of a step (for bench/meta_step.py)."""

    def __init__(self, sync=None):
        self.seconds: dict[str, float] = {}
        self._sync = sync or (lambda: None)

    @contextlib.contextmanager
    def __call__(self, phase: str):
        self._sync()
        t0 = time.perf_counter()
        yield
        self._sync()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0


def _no_timer(phase: str):
    return contextlib.nullcontext()


def meta_step(teacher: torch.nn.Module, student: torch.nn.Module, teacher_opt: torch.optim.Optimizer,
              student_opt: torch.optim.Optimizer, x_fer: torch.Tensor, y_fer: torch.Tensor,
              x_fr_weak: torch.Tensor, x_fr_strong: torch.Tensor, cfg: MetaLossConfig, step: int = 0,
              autocast=contextlib.nullcontext, timer=_no_timer, reduce_feedback=float) -> dict:
    """`reduce_feedback` averages f over DDP ranks, so every rank applies the same L_f."""
    n_l, n_u = len(x_fer), len(x_fr_weak)
    with timer("teacher_forward"), autocast():
        logits = teacher(torch.cat([x_fer, x_fr_weak, x_fr_strong])).float()
    t_fer, t_weak, t_strong = logits.split([n_l, n_u, n_u])
    probs_weak = t_weak.detach().softmax(dim=1)
    confidence, pseudo = probs_weak.max(dim=1)
    mask = (confidence >= cfg.threshold).float() if cfg.threshold > 0 else None

    # Without L_f (an ablation) the feedback is never used: skip its two student forwards.
    mode = cfg.feedback if cfg.weight_f != 0 else "none"
    with timer("student_step_and_feedback"):
        student_out = student_step_with_feedback(student, student_opt, x_fr_strong, pseudo, x_fer, y_fer,
                                                 mode, mask, autocast)
    f = reduce_feedback(student_out.feedback)

    loss_s = F.cross_entropy(t_fer, y_fer, label_smoothing=cfg.label_smoothing)
    loss_c = soft_cross_entropy(probs_weak, t_strong)
    loss_f = f * F.cross_entropy(t_weak, pseudo)
    ramp = min(1.0, (step + 1) / cfg.uda_warmup_steps) if cfg.uda_warmup_steps > 0 else 1.0
    loss = cfg.weight_s * loss_s + cfg.weight_c * ramp * loss_c + cfg.weight_f * loss_f
    with timer("teacher_backward_and_step"):
        teacher_opt.zero_grad(set_to_none=True)
        loss.backward()
        teacher_opt.step()
    return {
        "loss_teacher": loss.item(),
        "loss_s": loss_s.item(),
        "loss_c": loss_c.item(),
        "loss_f": loss_f.item(),
        "loss_u": student_out.loss_u,
        "feedback": f,
        **({} if student_out.loss_fer_after is None else {"student_loss_fer_after": student_out.loss_fer_after}),
        "mask_rate": 1.0 if mask is None else mask.mean().item(),
        "pseudo_labels": pseudo.detach().cpu(),
    }
