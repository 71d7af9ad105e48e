"""The poly + linear warm-up schedule and the weight-decay parameter groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nrdseg.config.run import OptimConfig
from nrdseg.engine.optim import PolySchedule, build_optimizer, parameter_groups


def expected_lr(step, *, lr, iters, power, min_lr, warmup_iters, warmup_ratio):
    """mmseg's PolyLrUpdaterHook with linear warm-up, written out."""
    regular = (lr - min_lr) * (1 - step / iters) ** power + min_lr
    if step >= warmup_iters:
        return regular
    k = (1 - step / warmup_iters) * (1 - warmup_ratio)
    return regular * (1 - k)


@pytest.mark.parametrize("step", [0, 1, 1999, 3999, 4000, 4001, 42000, 83999, 84000])
def test_official_schedule_matches_the_formula(step):
    settings = dict(
        lr=0.01, iters=84000, power=0.9, min_lr=1e-4, warmup_iters=4000, warmup_ratio=0.01
    )
    assert PolySchedule(**settings)(step) == pytest.approx(expected_lr(step, **settings), rel=1e-12)


def test_schedule_landmarks():
    schedule = PolySchedule(
        lr=0.01, iters=100, power=1.0, min_lr=0.0, warmup_iters=10, warmup_ratio=0.1
    )
    assert schedule(0) == pytest.approx(0.01 * 0.1)  # warm-up starts at ratio x rate
    assert schedule(10) == pytest.approx(0.01 * 0.9)  # warm-up over: plain linear decay
    assert schedule(100) == 0.0
    rates = [schedule(i) for i in range(100)]
    assert rates.index(max(rates)) == 10


def test_apply_sets_every_group():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    optimizer = build_optimizer(model, OptimConfig(decay_norm_and_bias=False))
    schedule = PolySchedule(lr=0.01, iters=10, warmup_iters=0)
    rate = schedule.apply(optimizer, 5)
    assert [g["lr"] for g in optimizer.param_groups] == [rate, rate]


def test_norm_and_bias_exemption():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.Linear(4, 2))
    decayed, exempt = parameter_groups(model, weight_decay=0.1, decay_norm_and_bias=False)
    conv, norm, linear = model
    assert {id(p) for p in decayed["params"]} == {id(conv.weight), id(linear.weight)}
    assert {id(p) for p in exempt["params"]} == {
        id(conv.bias),
        id(norm.weight),
        id(norm.bias),
        id(linear.bias),
    }
    assert (decayed["weight_decay"], exempt["weight_decay"]) == (0.1, 0.0)
    (everything,) = parameter_groups(model, weight_decay=0.1, decay_norm_and_bias=True)
    assert len(everything["params"]) == len(list(model.parameters()))


def test_sgd_and_adamw():
    model = nn.Linear(2, 2)
    sgd = build_optimizer(model, OptimConfig(type="sgd", momentum=0.8))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.8
    adamw = build_optimizer(model, OptimConfig(type="adamw", betas=(0.8, 0.9), weight_decay=0.05))
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.param_groups[0]["betas"] == (0.8, 0.9)
    assert adamw.param_groups[0]["weight_decay"] == 0.05
