"""Face2Exp's feedback coefficient and meta step on tiny models."""

import copy

import pytest
import torch

from fer_pipeline.meta.feedback import frozen_bn_stats, student_step_with_feedback
from fer_pipeline.meta.step import MetaLossConfig, meta_step


def tiny_net(seed=0, classes=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                               torch.nn.Linear(16, classes)).double()


def data(seed=1, n=32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    return x, y


def _f(net, mode, eta, x_fr, pseudo, x_fer, y_fer):
    net = copy.deepcopy(net)
    opt = torch.optim.SGD(net.parameters(), lr=eta)
    return student_step_with_feedback(net, opt, x_fr, pseudo, x_fer, y_fer, mode).feedback


@pytest.mark.parametrize("eta", [1e-3, 1e-4])
def test_exact_and_first_order_agree_as_eta_goes_to_zero(eta):
    net = tiny_net()
    x_fer, y_fer = data(1)
    x_fr, _ = data(2)
    pseudo = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(3))
    exact = _f(net, "exact", eta, x_fr, pseudo, x_fer, y_fer)
    first = _f(net, "first_order", eta, x_fr, pseudo, x_fer, y_fer)
    assert exact != 0
    assert abs(exact - first) / abs(exact) < 20 * eta  # the gap is O(eta^2) against f = O(eta)


def test_feedback_sign():
    net = tiny_net()
    x, y = data(1)
    # Pseudo labels equal to the true labels on the same images: the step helps -> f > 0.
    assert _f(net, "exact", 1e-2, x, y, x, y) > 0
    assert _f(net, "first_order", 1e-2, x, y, x, y) > 0
    # Systematically wrong pseudo labels: the step hurts the labelled loss -> f < 0.
    wrong = (y + 1) % 3
    assert _f(net, "exact", 1e-2, x, wrong, x, y) < 0
    assert _f(net, "first_order", 1e-2, x, wrong, x, y) < 0


def test_measuring_does_not_move_batchnorm_statistics():
    net = tiny_net()
    net.train()
    x, _ = data(1)
    before = net[1].running_mean.clone()
    with torch.no_grad(), frozen_bn_stats(net):
        net(x)
    assert torch.equal(before, net[1].running_mean)
    assert net[1].momentum == 0.1


def test_unknown_mode_is_refused():
    net = tiny_net()
    x, y = data(1)
    with pytest.raises(ValueError, match="feedback mode"):
        _f(net, "second_order", 1e-2, x, y, x, y)


class CountingNet(torch.nn.Module):
    def __init__(self, seed):
        super().__init__()
        self.net = tiny_net(seed)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


@pytest.mark.parametrize("mode", ["exact", "first_order"])
def test_meta_step_fuses_teacher_forward_and_learns(mode):
    teacher, student = CountingNet(0), CountingNet(1)
    t_opt = torch.optim.SGD(teacher.parameters(), lr=0.1, momentum=0.9)
    s_opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    x_fer, y_fer = data(1)
    x_fr, _ = data(4, n=64)
    cfg = MetaLossConfig(feedback=mode)
    first = meta_step(teacher, student, t_opt, s_opt, x_fer, y_fer, x_fr, x_fr + 0.05, cfg)
    assert teacher.calls == 1, "one teacher forward per step"
    # L_u step, then the labelled loss after it (exact: with its gradient) or before and after it (first order)
    assert student.calls == (2 if mode == "exact" else 3)
    assert set(first) >= {"loss_s", "loss_c", "loss_f", "loss_u", "feedback", "pseudo_labels"}
    for step in range(1, 60):
        last = meta_step(teacher, student, t_opt, s_opt, x_fer, y_fer, x_fr, x_fr + 0.05, cfg, step)
    assert last["loss_s"] < 0.7 * first["loss_s"], "the teacher learns the labelled data"
    assert all(torch.isfinite(torch.tensor(v)) for k, v in last.items() if k != "pseudo_labels")


def test_confidence_threshold_masks_pseudo_labels():
    teacher, student = tiny_net(0), tiny_net(1)
    t_opt = torch.optim.SGD(teacher.parameters(), lr=0.1)
    s_opt = torch.optim.SGD(student.parameters(), lr=0.05)
    x_fer, y_fer = data(1)
    x_fr, _ = data(4)
    out = meta_step(teacher, student, t_opt, s_opt, x_fer, y_fer, x_fr, x_fr, MetaLossConfig(threshold=0.99))
    assert 0.0 <= out["mask_rate"] < 1.0
