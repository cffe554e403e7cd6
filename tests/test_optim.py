"""Optimizers, lr schedules (against torch's schedulers and the formulas), penalties, clipping."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from torch import nn

from nntune.errors import ConfigError
from nntune.optim import (
    OPTIMIZERS,
    SCHEDULES,
    Horizon,
    Schedule,
    build_optimizer,
    build_schedule,
    clip_gradients,
    decayed_parameters,
    grad_norm,
    needs_closure,
    parameter_groups,
    penalty,
)

# --- optimizers -----------------------------------------------------------------------------


def options(name: str, **values: Any) -> Any:
    return OPTIMIZERS.get(name).parse_options(values, "optimizer")


def least_squares_run(name: str, steps: int = 50, **values: Any) -> tuple[float, float]:
    """(initial, final) mean squared error of a linear fit trained with ``name``."""
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    y = x @ torch.randn(5, 1) + 0.5
    model = nn.Linear(5, 1)
    optimizer = build_optimizer(name, options(name, **values), model)

    def loss() -> torch.Tensor:
        return (model(x) - y).pow(2).mean()

    initial = float(loss().detach())
    if needs_closure(optimizer):  # L-BFGS, Newton: step(closure), see StepClosure
        names = {id(p): n for n, p in model.named_parameters()}
        order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]

        class Closure:
            def __call__(self) -> torch.Tensor:
                optimizer.zero_grad()
                value = loss()
                value.backward()
                return value.detach()

            def loss_of(self, params: Any) -> torch.Tensor:
                out = torch.func.functional_call(model, dict(zip(order, params, strict=True)), x)
                return (out - y).pow(2).mean()

        for _ in range(steps):
            optimizer.step(Closure())
        return initial, float(loss().detach())
    for _ in range(steps):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    return initial, float(loss().detach())


@pytest.mark.parametrize("name", OPTIMIZERS.list())
def test_optimizer_reduces_a_least_squares_loss(name: str) -> None:
    initial, final = least_squares_run(name)
    assert math.isfinite(final)
    assert final < initial
    initial, final = least_squares_run(name, lr=0.05)
    assert final < 0.5 * initial


@pytest.mark.parametrize("name", OPTIMIZERS.list())
def test_optimizers_leave_weight_decay_to_the_engine(name: str) -> None:
    # the engine decays weights (not biases or norms) itself: see tests/test_tricks.py
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    optimizer = build_optimizer(name, options(name, weight_decay=0.1), model)
    for group in optimizer.param_groups:
        assert group.get("weight_decay", 0.0) == 0.0


def test_decayed_parameters_are_weights_not_biases_or_norms() -> None:
    model = nn.Sequential(
        nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.Flatten(), nn.Linear(8, 3), nn.LayerNorm(3)
    )
    assert {id(p) for p in decayed_parameters(model)} == {
        id(model[0].weight),
        id(model[3].weight),
    }
    groups = parameter_groups(model)
    assert len(groups) == 1
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.parameters()}


def test_parameter_groups_skip_frozen_and_empty() -> None:
    model = nn.Linear(3, 2, bias=False)
    assert len(parameter_groups(model)) == 1
    model.weight.requires_grad_(False)
    assert parameter_groups(model) == []
    with pytest.raises(ConfigError, match="no trainable parameters"):
        build_optimizer("sgd", options("sgd"), model)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sgd", {"momentum": 0.0, "nesterov": False, "lr": 0.01}),
        ("momentum", {"momentum": 0.9, "nesterov": False}),
        ("nesterov", {"momentum": 0.9, "nesterov": True}),
    ],
)
def test_optimizer_defaults_follow_the_contract(name: str, expected: dict[str, Any]) -> None:
    optimizer = build_optimizer(name, options(name), nn.Linear(2, 2))
    group = optimizer.param_groups[0]
    for key, value in expected.items():
        assert group[key] == value, key


def test_weight_decay_defaults() -> None:
    adamw = options("adamw")
    assert (adamw.weight_decay, adamw.decay) == (0.01, "decoupled")
    for name in ("sgd", "adam"):
        assert (options(name).weight_decay, options(name).decay) == (0.0, "coupled")


def test_nesterov_momentum_option() -> None:
    optimizer = build_optimizer("nesterov", options("nesterov", momentum=0.5), nn.Linear(2, 2))
    assert optimizer.param_groups[0]["momentum"] == 0.5
    assert optimizer.param_groups[0]["nesterov"] is True


def test_gd_is_full_batch() -> None:
    assert "full_batch" in OPTIMIZERS.get("gd").tags
    assert "full_batch" not in OPTIMIZERS.get("sgd").tags


# --- schedules ------------------------------------------------------------------------------

TOTAL, PER_EPOCH = 120, 10
HORIZON = Horizon(total_steps=TOTAL, steps_per_epoch=PER_EPOCH)


def schedule(name: str, horizon: Horizon = HORIZON, **values: Any) -> Schedule:
    opts = SCHEDULES.get(name).parse_options(values, "schedule")
    return build_schedule(name, opts, horizon)


def factors(s: Schedule, steps: int = TOTAL) -> list[float]:
    return [s.factor(t) for t in range(steps)]


@pytest.mark.parametrize("name", SCHEDULES.list())
def test_schedule_factor_is_finite_and_not_negative(name: str) -> None:
    values = factors(schedule(name))
    assert all(math.isfinite(v) and v >= 0.0 for v in values)
    assert max(values) > 0.0


@pytest.mark.parametrize("shape", ["linear", "cosine"])
@pytest.mark.parametrize("name", SCHEDULES.list())
def test_warmup_ramps_up_to_the_schedule(name: str, shape: str) -> None:
    warmup = 20
    warmed = schedule(name, warmup=warmup, warmup_shape=shape)
    # the schedule proper runs over the steps after the warmup
    plain = schedule(name, Horizon(TOTAL - warmup, PER_EPOCH))
    ramp = [warmed.factor(t) for t in range(warmup)]
    target = plain.factor(0)
    assert ramp[0] <= 0.1 * target
    assert all(b >= a for a, b in itertools.pairwise(ramp))
    assert all(v <= target + 1e-12 for v in ramp)
    for t in range(TOTAL - warmup):
        assert warmed.factor(warmup + t) == pytest.approx(plain.factor(t), rel=1e-12, abs=1e-15)


def test_warmup_as_a_fraction_of_the_run() -> None:
    s = schedule("constant", warmup=0.25)
    assert s.warmup_steps == TOTAL // 4
    assert s.factor(TOTAL // 4 - 1) < 1.0
    assert s.factor(TOTAL // 4) == 1.0


def test_warmup_longer_than_the_run() -> None:
    with pytest.raises(ConfigError, match="warmup"):
        schedule("cosine", warmup=TOTAL)


def torch_lrs(make: Any, steps: int = TOTAL, lr: float = 0.1, **opt: Any) -> list[float]:
    """The lr a torch scheduler gives at each step (stepped once per step)."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr, **opt)
    scheduler = make(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_one_cycle_equals_torch() -> None:
    s = schedule("one_cycle", pct_start=0.25, div_factor=10.0, final_div_factor=100.0)
    expected = torch_lrs(
        lambda opt: torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=0.1,
            total_steps=TOTAL,
            pct_start=0.25,
            div_factor=10.0,
            final_div_factor=100.0,
            cycle_momentum=False,
        )
    )
    ours = [0.1 * f for f in factors(s)]
    assert ours == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_one_cycle_default_and_momentum_equal_torch() -> None:
    s = schedule("one_cycle", cycle_momentum=True)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=TOTAL)
    for t in range(TOTAL):
        group = optimizer.param_groups[0]
        assert 0.1 * s.factor(t) == pytest.approx(group["lr"], rel=1e-12), t
        assert s.momentum(t) == pytest.approx(group["momentum"], rel=1e-12), t
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize("min_factor", [0.0, 0.1])
def test_cosine_equals_torch(min_factor: float) -> None:
    s = schedule("cosine", min_factor=min_factor)
    closed_form = [
        min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t / TOTAL))
        for t in range(TOTAL)
    ]
    assert factors(s) == pytest.approx(closed_form, rel=1e-12, abs=1e-15)
    expected = torch_lrs(
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=TOTAL, eta_min=0.1 * min_factor
        )
    )
    assert [0.1 * f for f in factors(s)] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_cosine_restarts_equals_torch() -> None:
    s = schedule("cosine_restarts", period=2, mult=2.0)
    expected = torch_lrs(
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            opt, T_0=2 * PER_EPOCH, T_mult=2
        )
    )
    assert [0.1 * f for f in factors(s)] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_step_formula() -> None:
    s = schedule("step", step_size=3, gamma=0.5)
    assert factors(s) == [0.5 ** ((t // PER_EPOCH) // 3) for t in range(TOTAL)]


def test_multistep_formula() -> None:
    s = schedule("multistep", milestones=[2, 5, 9], gamma=0.3)
    expected = [0.3 ** sum(t / PER_EPOCH >= m for m in (2, 5, 9)) for t in range(TOTAL)]
    assert factors(s) == pytest.approx(expected, rel=1e-12)


def test_multistep_factors() -> None:
    s = schedule("multistep", milestones=[3, 6], factors=[1.0, 0.2, 0.05])
    expected = [1.0 if t < 30 else 0.2 if t < 60 else 0.05 for t in range(TOTAL)]
    assert factors(s) == expected
    with pytest.raises(ConfigError, match="factors"):
        schedule("multistep", milestones=[3, 6], factors=[1.0, 0.2])


def test_exponential_formula() -> None:
    s = schedule("exponential", gamma=0.8)
    assert factors(s) == pytest.approx([0.8 ** (t / PER_EPOCH) for t in range(TOTAL)], rel=1e-12)


def test_inverse_time_formula() -> None:
    s = schedule("inverse_time", k=0.7)
    expected = [1.0 / (1.0 + 0.7 * t / PER_EPOCH) for t in range(TOTAL)]
    assert factors(s) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("power", "end"), [(1.0, 0.0), (2.0, 0.1), (0.5, 0.0)])
def test_polynomial_formula(power: float, end: float) -> None:
    s = schedule("polynomial", power=power, end_factor=end)
    expected = [end + (1 - end) * (1 - t / TOTAL) ** power for t in range(TOTAL)]
    assert factors(s) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_cyclic_formula() -> None:
    # Smith 2017, triangular: x = |t/half - 2 cycle + 1|, cycle = floor(1 + t / (2 half))
    base, half = 0.2, 1.5 * PER_EPOCH
    s = schedule("cyclic", base_factor=base, half_period=1.5)
    expected = []
    for t in range(TOTAL):
        cycle = math.floor(1 + t / (2 * half))
        x = abs(t / half - 2 * cycle + 1)
        expected.append(base + (1 - base) * max(0.0, 1 - x))
    assert factors(s) == pytest.approx(expected, rel=1e-12)
    ours = [0.1 * f for f in factors(s)]
    reference = torch_lrs(
        lambda opt: torch.optim.lr_scheduler.CyclicLR(
            opt, base_lr=0.1 * base, max_lr=0.1, step_size_up=int(half), cycle_momentum=False
        )
    )
    assert ours == pytest.approx(reference, rel=1e-9)


@pytest.mark.parametrize("name", ["exponential", "cosine", "inverse_time", "polynomial"])
def test_epoch_interval_holds_the_factor_within_an_epoch(name: str) -> None:
    per_step = schedule(name)
    per_epoch = schedule(name, interval="epoch")
    for t in range(TOTAL):
        start = (t // PER_EPOCH) * PER_EPOCH
        assert per_epoch.factor(t) == per_epoch.factor(start)
        assert per_epoch.factor(t) == per_step.factor(start)
    assert per_epoch.factor(PER_EPOCH) < per_epoch.factor(PER_EPOCH - 1)


# --- plateau --------------------------------------------------------------------------------


def test_plateau_reduces_after_patience_epochs() -> None:
    s = schedule("plateau", patience=2, factor=0.5, min_delta=0.0)
    seen = []
    for value in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8, 0.9, 0.9, 0.9]:
        s.observe({"val_loss": value})
        seen.append(s.factor(0))
    # best 0.9 at epoch 2; the third epoch without improvement reduces; 0.8 improves again
    assert seen == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25]


@pytest.mark.parametrize(
    ("monitor", "mode", "values"),
    [
        ("val_loss", "min", [1.0, 0.9, 0.9, 0.91, 0.85, 0.86, 0.86, 0.86, 0.86, 0.7, 0.8, 0.8]),
        ("val_accuracy", "max", [0.5, 0.6, 0.6, 0.55, 0.7, 0.69, 0.69, 0.7, 0.71, 0.7, 0.7, 0.7]),
    ],
)
@pytest.mark.parametrize("cooldown", [0, 1, 2])
def test_plateau_equals_torch(monitor: str, mode: str, values: list[float], cooldown: int) -> None:
    s = schedule(
        "plateau", monitor=monitor, patience=1, factor=0.5, min_delta=0.01, cooldown=cooldown
    )
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode=mode,
        factor=0.5,
        patience=1,
        threshold=0.01,
        threshold_mode="abs",
        cooldown=cooldown,
    )
    for value in values:
        s.observe({monitor: value})
        reference.step(value)
        assert s.factor(0) == pytest.approx(optimizer.param_groups[0]["lr"]), value


def test_plateau_min_factor_and_state_round_trip() -> None:
    s = schedule("plateau", patience=0, factor=0.1, min_factor=0.05)
    for value in [1.0, 1.0, 1.0]:
        s.observe({"val_loss": value})
    assert s.factor(0) == pytest.approx(0.05)
    s2 = schedule("plateau", patience=3, factor=0.5)
    for value in [1.0, 0.5, 0.7]:
        s2.observe({"val_loss": value})
    state = s2.state_dict()
    restored = schedule("plateau", patience=3, factor=0.5)
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    for value in [0.7, 0.7, 0.7, 0.4, 0.6]:
        s2.observe({"val_loss": value})
        restored.observe({"val_loss": value})
        assert restored.factor(5) == s2.factor(5)
        assert restored.state_dict() == s2.state_dict()
    assert s2.factor(0) == 0.5


def test_plateau_unknown_monitor() -> None:
    s = schedule("plateau", monitor="val_acc")
    with pytest.raises(ConfigError, match="val_acc"):
        s.observe({"val_loss": 1.0, "val_accuracy": 0.5})


def test_plateau_ignores_non_finite_values() -> None:
    s = schedule("plateau", patience=0)
    s.observe({"val_loss": 1.0})
    s.observe({"val_loss": float("nan")})
    assert s.factor(0) == 1.0


# --- penalties and clipping -----------------------------------------------------------------


def test_penalty_formula() -> None:
    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(3, 4)), nn.Parameter(torch.randn(5))]
    l1, l2 = 0.03, 0.2
    expected = sum(l1 * p.detach().abs().sum() + l2 * (p.detach() ** 2).sum() for p in params)
    value = penalty(params, l1, l2)
    assert value is not None
    torch.testing.assert_close(value.detach(), expected)
    value.backward()
    for p in params:  # d/dw = l1 sign(w) + 2 l2 w
        torch.testing.assert_close(p.grad, l1 * torch.sign(p.detach()) + 2 * l2 * p.detach())
    assert penalty(params, 0.0, 0.0) is None
    only_l1 = penalty(params, 0.5, 0.0)
    assert only_l1 is not None
    torch.testing.assert_close(only_l1.detach(), 0.5 * sum(p.detach().abs().sum() for p in params))


def with_grads(seed: int = 0, scale: float = 10.0) -> list[nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    params = [nn.Parameter(torch.zeros(4, 3)), nn.Parameter(torch.zeros(7))]
    for p in params:
        p.grad = scale * torch.randn(p.shape, generator=g)
    return params


def global_norm(params: list[nn.Parameter]) -> float:
    return math.sqrt(sum(float((p.grad**2).sum()) for p in params))


def test_grad_norm() -> None:
    params = with_grads()
    assert float(grad_norm(params)) == pytest.approx(global_norm(params), rel=1e-6)
    assert float(grad_norm([nn.Parameter(torch.zeros(2))])) == 0.0


@pytest.mark.parametrize("max_norm", [0.5, 3.0, 1e6])
def test_clip_by_norm(max_norm: float) -> None:
    params = with_grads()
    before = global_norm(params)
    directions = [p.grad.clone() / before for p in params]
    returned = clip_gradients(params, norm=max_norm, value=None)
    assert returned is not None
    assert float(returned) == pytest.approx(before, rel=1e-6)
    after = global_norm(params)
    assert after <= max_norm * (1 + 1e-5)
    assert after == pytest.approx(min(before, max_norm), rel=1e-4)
    for p, direction in zip(params, directions, strict=True):  # only the length changes
        torch.testing.assert_close(p.grad / after, direction, rtol=1e-4, atol=1e-6)


def test_clip_by_value() -> None:
    params = with_grads()
    originals = [p.grad.clone() for p in params]
    assert clip_gradients(params, norm=None, value=0.7) is None
    for p, original in zip(params, originals, strict=True):
        torch.testing.assert_close(p.grad, original.clamp(-0.7, 0.7))
