"""Every optimizer against an independent reference written from its textbook formula.

The references below use plain tensor arithmetic (no torch.optim, no pytorch_optimizer) on the
flattened parameter vector; each optimizer of the registry runs on the same small problem, a
quadratic ½θᵀAθ − bᵀθ with a non-diagonal A over two parameter tensors (a matrix, which weight
decay reaches, and a vector, which it does not), in float64, and its first updates must match.
Also: the engine's weight decay against torch's own, L-BFGS against torch driven directly,
Newton's exact step and convergence, Lookahead's options and state handling, and a state_dict
round trip for every optimizer.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from torch import nn

from nntune.errors import ConfigError
from nntune.optim import OPTIMIZERS, WeightDecay, build_optimizer, decayed_parameters
from nntune.optim.optimizers import needs_closure

DTYPE = torch.float64
STEPS = 10  # every formula is checked over 10 updates (RAdam rectifies only from step 6 on)

Update = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (θ, g) → new θ, keeps state


# --- the problem ----------------------------------------------------------------------------


class Quadratic(nn.Module):
    """f(θ) = ½θᵀAθ − bᵀθ, θ = (W flattened, c): W is 2×3 (decayed), c has 3 entries (not)."""

    def __init__(self, seed: int = 0, dtype: torch.dtype = DTYPE) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        m = torch.randn(9, 9, generator=g, dtype=DTYPE)
        self.register_buffer("A", (m.T @ m / 9 + 0.5 * torch.eye(9, dtype=DTYPE)).to(dtype))
        self.register_buffer("b", torch.randn(9, generator=g, dtype=DTYPE).to(dtype))
        self.W = nn.Parameter(torch.randn(2, 3, generator=g, dtype=DTYPE).to(dtype))
        self.c = nn.Parameter(torch.randn(3, generator=g, dtype=DTYPE).to(dtype))

    def theta(self) -> torch.Tensor:
        return torch.cat([self.W.reshape(-1), self.c]).detach().clone()

    def forward(self, x: torch.Tensor | None = None) -> torch.Tensor:
        theta = torch.cat([self.W.reshape(-1), self.c])
        return 0.5 * theta @ self.A @ theta - self.b @ theta

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        return self.A @ theta - self.b

    def minimiser(self) -> torch.Tensor:
        return torch.linalg.solve(self.A, self.b)


# which entries of θ weight decay reaches (W, not c)
DECAYED = torch.tensor([1.0] * 6 + [0.0] * 3, dtype=DTYPE)


class Closure:
    """A StepClosure over ``model`` and fixed data: calling it zeroes the gradients, runs forward
    and backward and returns the detached loss; ``loss_of`` is the same loss as a function of
    replacement parameters (in the optimizer's ``param_groups`` order), via functional_call."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        criterion: Callable[..., torch.Tensor] | None = None,
    ) -> None:
        self.model, self.optimizer, self.x, self.y = model, optimizer, x, y
        self.criterion = criterion
        names = {id(p): n for n, p in model.named_parameters()}
        self.names = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
        self.calls = 0

    def _loss(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.criterion is None else self.criterion(out, self.y)

    def __call__(self) -> torch.Tensor:
        self.calls += 1
        self.optimizer.zero_grad()
        loss = self._loss(self.model(self.x))
        loss.backward()
        return loss.detach()

    def loss_of(self, params: Sequence[torch.Tensor]) -> torch.Tensor:
        replaced = dict(zip(self.names, params, strict=True))
        out = torch.func.functional_call(self.model, replaced, (self.x,))
        return self._loss(out)


def options(name: str, **values: Any) -> Any:
    return OPTIMIZERS.get(name).parse_options(values, "optimizer")


def run(
    name: str,
    model: nn.Module,
    steps: int = STEPS,
    engine_decay: WeightDecay | None = None,
    lrs: Sequence[float] | None = None,
    **values: Any,
) -> list[torch.Tensor]:
    """θ after each of ``steps`` steps of the registry's ``name`` (decay applied as the engine
    does, just before the step; ``lrs`` written into param_groups before each step)."""
    optimizer = build_optimizer(name, options(name, **values), model)
    assert isinstance(model, Quadratic)
    trajectory = []
    for t in range(steps):
        if lrs is not None:
            for group in optimizer.param_groups:
                group["lr"] = lrs[t]
        optimizer.zero_grad()
        model().backward()
        if engine_decay is not None:
            engine_decay.apply(optimizer.param_groups[0]["lr"], 1.0, 0)
        optimizer.step()
        trajectory.append(model.theta())
    return trajectory


def reference(update: Update, model: Quadratic, steps: int = STEPS) -> list[torch.Tensor]:
    theta = model.theta()
    trajectory = []
    for _ in range(steps):
        theta = update(theta, model.grad(theta))
        trajectory.append(theta.clone())
    return trajectory


def assert_same_path(ours: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    assert not torch.allclose(expected[-1], expected[0]), "the reference barely moves"
    for t, (a, b) in enumerate(zip(ours, expected, strict=True), start=1):
        # float64 parameters; torch keeps some scalar state (NAdam's μ product) in float32
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9, msg=f"step {t}")


# --- textbook references (θ, g are flat float64 vectors; state lives in the closures) ----------


def sgd_ref(lr: float) -> Update:
    """θ ← θ − lr·g."""
    return lambda theta, g: theta - lr * g


def momentum_ref(lr: float, mu: float, nesterov: bool = False) -> Update:
    """v ← μv + g; θ ← θ − lr·v (torch's form; Sutskever et al. scale v by lr instead), and
    Nesterov: θ ← θ − lr·(g + μv)."""
    v = torch.zeros(9, dtype=DTYPE)

    def update(theta: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        nonlocal v
        v = mu * v + g
        return theta - lr * ((g + mu * v) if nesterov else v)

    return update


def adagrad_ref(lr: float, eps: float = 1e-10, lr_decay: float = 0.0, init: float = 0.0) -> Update:
    """Duchi et al. 2011: G ← G + g²; θ ← θ − lr_t·g / (√G + ε), lr_t = lr / (1 + (t−1)·decay)."""
    state = {"G": torch.full((9,), init, dtype=DTYPE), "t": 0}

    def update(theta: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        state["t"] += 1
        state["G"] = state["G"] + g * g
        lr_t = lr / (1 + (state["t"] - 1) * lr_decay)
        return theta - lr_t * g / (state["G"].sqrt() + eps)

    return update


def rmsprop_ref(
    lr: float, alpha: float = 0.99, eps: float = 1e-8, mu: float = 0.0, centered: bool = False
) -> Update:
    """Hinton 2012: v ← αv + (1−α)g²; θ ← θ − lr·g/(√v + ε). Centered (Graves 2013): ḡ ← αḡ +
    (1−α)g and √(v − ḡ²) in the denominator; with momentum: b ← μb + g/denominator, θ ← θ − lr·b."""
    v, gbar, buf = (torch.zeros(9, dtype=DTYPE) for _ in range(3))

    def update(theta: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        nonlocal v, gbar, buf
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            gbar = alpha * gbar + (1 - alpha) * g
            denominator = (v - gbar * gbar).sqrt() + eps
        else:
            denominator = v.sqrt() + eps
        if mu > 0:
            buf = mu * buf + g / denominator
            return theta - lr * buf
        return theta - lr * g / denominator

    return update


def adam_ref(
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    decoupled_wd: float = 0.0,
) -> Update:
    """Kingma & Ba 2015: m ← β1·m + (1−β1)g; v ← β2·v + (1−β2)g²; m̂ = m/(1−β1ᵗ),
    v̂ = v/(1−β2ᵗ); θ ← θ − lr·m̂/(√v̂ + ε). AdamW (Loshchilov & Hutter 2019, with the decay
    scaled by lr as in their Algorithm 2 with η_t = lr): θ ← θ − lr·(m̂/(√v̂ + ε) + λθ)."""
    b1, b2 = betas
    state: dict[str, Any] = {"m": torch.zeros(9, dtype=DTYPE), "v": torch.zeros(9, dtype=DTYPE)}
    state["t"] = 0

    def update(theta: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        state["t"] += 1
        t = state["t"]
        state["m"] = b1 * state["m"] + (1 - b1) * g
        state["v"] = b2 * state["v"] + (1 - b2) * g * g
        m_hat = state["m"] / (1 - b1**t)
        v_hat = state["v"] / (1 - b2**t)
        return theta - lr * (m_hat / (v_hat.sqrt() + eps) + decoupled_wd * DECAYED * theta)

    return update


def nadam_ref(
    lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, psi: float = 4e-3
) -> Update:
    """Dozat 2016 with the momentum schedule μ_t = β1·(1 − ½·0.96^(tψ)):
    m̂ = μ_{t+1}·m/(1 − Π_{i≤t+1} μ_i) + (1 − μ_t)·g/(1 − Π_{i≤t} μ_i), v̂ = v/(1 − β2ᵗ),
    θ ← θ − lr·m̂/(√v̂ + ε)."""
    b1, b2 = betas
    state: dict[str, Any] = {"m": torch.zeros(9, dtype=DTYPE), "v": torch.zeros(9, dtype=DTYPE)}
    state.update(t=0, prod=1.0)

    def mu(t: int) -> float:
        return b1 * (1 - 0.5 * 0.96 ** (t * psi))

    def update(theta: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        state["t"] += 1
        t = state["t"]
        state["prod"] *= mu(t)
        prod, prod_next = state["prod"], state["prod"] * mu(t + 1)
        state["m"] = b1 * state["m"] + (1 - b1) * g
        state["v"] = b2 * state["v"] + (1 - b2) * g * g
        m_hat = mu(t + 1) * state["m"] / (1 - prod_next) + (1 - mu(t)) * g / (1 - prod)
        v_hat = state["v"] / (1 - b2**t)
        return theta - lr * m_hat / (v_hat.sqrt() + eps)

    return update


def radam_ref(lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> Update:
    """Liu et al. 2020: ρ∞ = 2/(1−β2) − 1, ρ_t = ρ∞ − 2tβ2ᵗ/(1−β2ᵗ); m̂ = m/(1−β1ᵗ); when
    ρ_t > 5 (the authors' code and torch; the paper says 4): r = √((ρ_t−4)(ρ_t−2)ρ∞ /
    ((ρ∞−4)(ρ∞−2)ρ_t)), θ ← θ − lr·r·m̂·√(1−β2ᵗ)/(√v + ε); otherwise θ ← θ − lr·m̂."""
    b1, b2 = betas
    rho_inf = 2 / (1 - b2) - 1
    state: dict[str, Any] = {"m": torch.zeros(9, dtype=DTYPE), "v": torch.zeros(9, dtype=DTYPE)}
    state.update(t=0, rectified=0)

    def update(theta: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        state["t"] += 1
        t = state["t"]
        state["m"] = b1 * state["m"] + (1 - b1) * g
        state["v"] = b2 * state["v"] + (1 - b2) * g * g
        m_hat = state["m"] / (1 - b1**t)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho > 5:
            state["rectified"] += 1
            r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            adaptive = math.sqrt(1 - b2**t) / (state["v"].sqrt() + eps)
            return theta - lr * r * m_hat * adaptive
        return theta - lr * m_hat

    update.state = state  # type: ignore[attr-defined]
    return update


def adabound_ref(
    lr: float,
    final_lr: float = 0.1,
    gamma: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    amsbound: bool = False,
    lrs: Sequence[float] | None = None,
) -> Update:
    """Luo et al. 2019, Algorithm 2, in the form of the authors' code (github.com/Luolc/AdaBound,
    adabound.py) that pytorch_optimizer 4.1.0 keeps (pytorch_optimizer/optimizer/adabound.py,
    ``AdaBound.step``): with the current lr_t and the initial lr_0, final_lr_t = final_lr·lr_t/lr_0,
    η_lower = final_lr_t·(1 − 1/(γt + 1)), η_upper = final_lr_t·(1 + 1/(γt)),
    step = clip(lr_t·√(1−β2ᵗ)/(1−β1ᵗ) / (√v + ε), η_lower, η_upper), θ ← θ − step·m, with m and
    v Adam's uncorrected moments (AMSBound: v replaced by its running maximum). The library
    adds 1e-15 to v under the square root; at these gradient sizes that is far below 1e-10."""
    b1, b2 = betas
    state: dict[str, Any] = {"m": torch.zeros(9, dtype=DTYPE), "v": torch.zeros(9, dtype=DTYPE)}
    state.update(t=0, vmax=torch.zeros(9, dtype=DTYPE), clipped_low=0, clipped_high=0)

    def update(theta: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        state["t"] += 1
        t = state["t"]
        lr_t = lr if lrs is None else lrs[t - 1]
        state["m"] = b1 * state["m"] + (1 - b1) * g
        state["v"] = b2 * state["v"] + (1 - b2) * g * g
        v = state["v"]
        if amsbound:
            state["vmax"] = torch.maximum(state["vmax"], v)
            v = state["vmax"]
        final = final_lr * lr_t / lr
        lower = final * (1 - 1 / (gamma * t + 1))
        upper = final * (1 + 1 / (gamma * t))
        raw = lr_t * math.sqrt(1 - b2**t) / (1 - b1**t) / (v.sqrt() + eps)
        state["clipped_low"] += int((raw < lower).sum())
        state["clipped_high"] += int((raw > upper).sum())
        return theta - raw.clamp(lower, upper) * state["m"]

    update.state = state  # type: ignore[attr-defined]
    return update


def lookahead_ref(inner: Update, k: int, alpha: float) -> Update:
    """Zhang et al. 2019, Algorithm 1: the inner optimizer moves the fast weights; after every
    k of its steps slow ← slow + α(fast − slow) and fast ← slow (the inner state carries on)."""
    state: dict[str, Any] = {"slow": None, "count": 0}

    def update(theta: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if state["slow"] is None:
            state["slow"] = theta.clone()
        fast = inner(theta, g)
        state["count"] += 1
        if state["count"] == k:
            state["count"] = 0
            state["slow"] = state["slow"] + alpha * (fast - state["slow"])
            fast = state["slow"].clone()
        return fast

    return update


# (registry name, options, reference); every registered optimizer appears at least once
ADAM_BETAS = (0.8, 0.99)
FORMULA_CASES: list[tuple[str, dict[str, Any], Callable[[], Update]]] = [
    ("gd", {"lr": 0.1}, lambda: sgd_ref(0.1)),
    ("sgd", {"lr": 0.1}, lambda: sgd_ref(0.1)),
    ("momentum", {"lr": 0.05}, lambda: momentum_ref(0.05, 0.9)),
    ("momentum", {"lr": 0.05, "momentum": 0.5}, lambda: momentum_ref(0.05, 0.5)),
    ("nesterov", {"lr": 0.05}, lambda: momentum_ref(0.05, 0.9, nesterov=True)),
    ("adagrad", {"lr": 0.3}, lambda: adagrad_ref(0.3)),
    (
        "adagrad",
        {"lr": 0.3, "lr_decay": 0.1, "initial_accumulator_value": 0.2},
        lambda: adagrad_ref(0.3, lr_decay=0.1, init=0.2),
    ),
    ("rmsprop", {"lr": 0.01}, lambda: rmsprop_ref(0.01)),
    ("rmsprop", {"lr": 0.01, "alpha": 0.9}, lambda: rmsprop_ref(0.01, alpha=0.9)),
    ("rmsprop", {"lr": 0.01, "centered": True}, lambda: rmsprop_ref(0.01, centered=True)),
    ("rmsprop", {"lr": 0.01, "momentum": 0.8}, lambda: rmsprop_ref(0.01, mu=0.8)),
    (
        "rmsprop",
        {"lr": 0.01, "momentum": 0.8, "centered": True},
        lambda: rmsprop_ref(0.01, mu=0.8, centered=True),
    ),
    ("adam", {"lr": 0.1}, lambda: adam_ref(0.1)),
    ("adam", {"lr": 0.1, "betas": ADAM_BETAS}, lambda: adam_ref(0.1, ADAM_BETAS)),
    ("adamw", {"lr": 0.1, "weight_decay": 0.0}, lambda: adam_ref(0.1)),
    ("nadam", {"lr": 0.1}, lambda: nadam_ref(0.1)),
    ("nadam", {"lr": 0.1, "momentum_decay": 0.04}, lambda: nadam_ref(0.1, psi=0.04)),
    ("radam", {"lr": 0.1}, lambda: radam_ref(0.1)),
    ("radam", {"lr": 0.1, "betas": (0.9, 0.95)}, lambda: radam_ref(0.1, (0.9, 0.95))),
    ("adabound", {"lr": 0.1}, lambda: adabound_ref(0.1)),
    (
        "adabound",
        {"lr": 0.1, "final_lr": 0.05, "gamma": 0.5},
        lambda: adabound_ref(0.1, final_lr=0.05, gamma=0.5),
    ),
    (  # both bounds bind (see test_adabound_reference_clips_at_both_bounds)
        "adabound",
        {"lr": 0.01, "final_lr": 0.1, "gamma": 0.5},
        lambda: adabound_ref(0.01, final_lr=0.1, gamma=0.5),
    ),
    (
        "adabound",
        {"lr": 0.01, "final_lr": 0.1, "gamma": 0.5, "amsbound": True},
        lambda: adabound_ref(0.01, final_lr=0.1, gamma=0.5, amsbound=True),
    ),
    (
        "lookahead",
        {"base": {"name": "sgd", "momentum": 0.9}, "lr": 0.05, "k": 3, "alpha": 0.5},
        lambda: lookahead_ref(momentum_ref(0.05, 0.9), k=3, alpha=0.5),
    ),
    (
        "lookahead",
        {"base": "adam", "lr": 0.1, "k": 4, "alpha": 0.3},
        lambda: lookahead_ref(adam_ref(0.1), k=4, alpha=0.3),
    ),
    (
        "lookahead",
        {"base": {"name": "adabound", "lr": 0.1, "gamma": 0.5}, "k": 2, "alpha": 0.8},
        lambda: lookahead_ref(adabound_ref(0.1, gamma=0.5), k=2, alpha=0.8),
    ),
]
NOT_FIRST_ORDER = {"lbfgs", "newton"}  # tested below: their step is not a closed formula


def _case_id(case: tuple[str, dict[str, Any], Any]) -> str:
    name, values, _ = case
    return name + "".join(f"-{k}={v}" for k, v in values.items() if k != "base")


@pytest.mark.parametrize("case", FORMULA_CASES, ids=[_case_id(c) for c in FORMULA_CASES])
def test_optimizer_follows_its_formula(
    case: tuple[str, dict[str, Any], Callable[[], Update]],
) -> None:
    name, values, make = case
    ours = run(name, Quadratic(), **values)
    assert_same_path(ours, reference(make(), Quadratic()))


def test_every_optimizer_has_a_formula_check() -> None:
    checked = {name for name, _, _ in FORMULA_CASES} | NOT_FIRST_ORDER
    assert checked == set(OPTIMIZERS.list())


def test_radam_reference_reaches_the_rectified_branch() -> None:
    update = radam_ref(0.1)
    reference(update, Quadratic())
    assert update.state["rectified"] > 0  # type: ignore[attr-defined]


def test_adabound_reference_clips_at_both_bounds() -> None:
    # the case above with lr 0.01, final_lr 0.1, gamma 0.5 exercises both bounds
    update = adabound_ref(0.01, final_lr=0.1, gamma=0.5)
    reference(update, Quadratic())
    assert update.state["clipped_low"] > 0 and update.state["clipped_high"] > 0  # type: ignore[attr-defined]


def test_adabound_bounds_follow_the_lr_schedule() -> None:
    # the engine writes the scheduled lr into param_groups; the bounds scale with lr_t / lr_0
    lrs = [0.1, 0.1, 0.05, 0.05, 0.02, 0.02, 0.01, 0.01, 0.01, 0.01]
    ours = run("adabound", Quadratic(), lrs=lrs, lr=0.1, final_lr=0.05, gamma=0.5)
    expected = reference(adabound_ref(0.1, final_lr=0.05, gamma=0.5, lrs=lrs), Quadratic())
    assert_same_path(ours, expected)


def test_adabound_leaves_weight_decay_to_the_engine() -> None:
    optimizer = build_optimizer("adabound", options("adabound", weight_decay=0.1), Quadratic())
    assert all(group["weight_decay"] == 0.0 for group in optimizer.param_groups)


# --- weight decay (the engine's) --------------------------------------------------------------


def test_adamw_with_the_engines_decoupled_decay_is_textbook_adamw() -> None:
    model = Quadratic()
    decay = WeightDecay(decayed_parameters(model), 0.1, mode="decoupled")
    ours = run("adamw", model, engine_decay=decay, lr=0.1, weight_decay=0.1)
    assert_same_path(ours, reference(adam_ref(0.1, decoupled_wd=0.1), Quadratic()))


@pytest.mark.parametrize(
    ("name", "values", "mode", "make_torch"),
    [
        ("sgd", {"lr": 0.1}, "coupled", lambda g: torch.optim.SGD(g, lr=0.1)),
        (
            "momentum",
            {"lr": 0.05},
            "coupled",
            lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.9),
        ),
        ("adam", {"lr": 0.1}, "coupled", lambda g: torch.optim.Adam(g, lr=0.1)),
        ("adam", {"lr": 0.1}, "decoupled", lambda g: torch.optim.AdamW(g, lr=0.1)),
        ("adamw", {"lr": 0.1}, "decoupled", lambda g: torch.optim.AdamW(g, lr=0.1)),
    ],
)
def test_engine_weight_decay_equals_torchs_own(
    name: str, values: dict[str, Any], mode: str, make_torch: Callable[[Any], torch.optim.Optimizer]
) -> None:
    wd = 0.2
    model = Quadratic()
    decay = WeightDecay(decayed_parameters(model), wd, mode=mode)
    ours = run(name, model, engine_decay=decay, weight_decay=wd, decay=mode, **values)

    twin = Quadratic()
    # torch's weight_decay on the weights only, as the engine decays weights only
    optimizer = make_torch(
        [{"params": [twin.W], "weight_decay": wd}, {"params": [twin.c], "weight_decay": 0.0}]
    )
    expected = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        twin().backward()
        optimizer.step()
        expected.append(twin.theta())
    assert_same_path(ours, expected)


# --- L-BFGS -----------------------------------------------------------------------------------


def test_lbfgs_converges_on_a_quadratic_in_few_steps() -> None:
    model = Quadratic()
    optimizer = build_optimizer("lbfgs", options("lbfgs"), model)
    assert needs_closure(optimizer)
    closure = Closure(model, optimizer)
    optimizer.step(closure)  # one step: up to max_iter = 20 iterations
    # torch stops once the loss changes by less than tolerance_change (1e-9): |θ − θ*| ~ 1e-6
    torch.testing.assert_close(model.theta(), model.minimiser(), rtol=0, atol=1e-5)
    assert closure.calls <= 25
    tight_values = {"tolerance_change": 0.0, "tolerance_grad": 1e-12}
    tight = build_optimizer("lbfgs", options("lbfgs", **tight_values), model)
    for _ in range(2):
        tight.step(Closure(model, tight))
    torch.testing.assert_close(model.theta(), model.minimiser(), rtol=0, atol=1e-7)


@pytest.mark.parametrize("line_search", ["strong_wolfe", "none"])
def test_lbfgs_equals_torch_driven_directly(line_search: str) -> None:
    values = {"lr": 0.5, "max_iter": 4, "history_size": 3, "line_search": line_search}
    model = Quadratic()
    optimizer = build_optimizer("lbfgs", options("lbfgs", **values), model)
    twin = Quadratic()
    direct = torch.optim.LBFGS(
        twin.parameters(),
        lr=0.5,
        max_iter=4,
        history_size=3,
        line_search_fn=None if line_search == "none" else "strong_wolfe",
    )

    def closure() -> torch.Tensor:
        direct.zero_grad()
        loss = twin()
        loss.backward()
        return loss

    for t in range(5):
        loss = optimizer.step(Closure(model, optimizer))
        expected = direct.step(closure)
        assert float(loss) == float(expected.detach()), t
        assert torch.equal(model.theta(), twin.theta()), t


def test_lbfgs_and_newton_are_full_batch() -> None:
    for name in ("lbfgs", "newton"):
        assert "full_batch" in OPTIMIZERS.get(name).tags


# --- Newton -----------------------------------------------------------------------------------


@pytest.mark.parametrize("line_search", [True, False])
def test_newton_lands_on_the_minimiser_of_a_quadratic_in_one_step(line_search: bool) -> None:
    model = Quadratic()
    optimizer = build_optimizer(
        "newton", options("newton", lr=1.0, damping=0.0, line_search=line_search), model
    )
    start_loss = float(model().detach())
    loss = optimizer.step(Closure(model, optimizer))
    assert float(loss) == pytest.approx(start_loss)  # the loss before the step, like torch's
    torch.testing.assert_close(model.theta(), model.minimiser(), rtol=1e-10, atol=1e-10)


def logistic_problem(dtype: torch.dtype = DTYPE) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 3, generator=g, dtype=dtype)
    logits = x @ torch.tensor([1.5, -2.0, 0.5], dtype=dtype) + 0.3
    # labels drawn from the model: not separable, so the minimiser is finite
    y = (torch.rand(200, generator=g, dtype=dtype) < torch.sigmoid(logits)).to(dtype)
    model = nn.Linear(3, 1).to(dtype)
    return model, x, y.unsqueeze(1)


def gradient_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.zero_grad()
    nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
    return math.sqrt(sum(float((p.grad**2).sum()) for p in model.parameters()))


def test_newton_solves_logistic_regression_in_a_few_steps() -> None:
    model, x, y = logistic_problem()
    optimizer = build_optimizer("newton", options("newton", damping=0.0), model)
    closure = Closure(model, optimizer, x, y, nn.functional.binary_cross_entropy_with_logits)
    losses = []
    for _ in range(8):
        losses.append(float(optimizer.step(closure)))
    assert all(b <= a for a, b in itertools.pairwise(losses))
    assert gradient_norm(model, x, y) < 1e-6
    # default damping 1e-4 slows the quadratic convergence only a little
    model2, _, _ = logistic_problem()
    optimizer2 = build_optimizer("newton", options("newton"), model2)
    closure2 = Closure(model2, optimizer2, x, y, nn.functional.binary_cross_entropy_with_logits)
    for _ in range(8):
        optimizer2.step(closure2)
    assert gradient_norm(model2, x, y) < 1e-6


def test_newton_line_search_never_raises_the_loss() -> None:
    # Rosenbrock from (−1.2, 1): the pure Newton step overshoots on the way; the halving does not
    class Rosenbrock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.xy = nn.Parameter(torch.tensor([-1.2, 1.0], dtype=DTYPE))

        def forward(self, _: Any = None) -> torch.Tensor:
            x, y = self.xy
            return (1 - x) ** 2 + 100 * (y - x**2) ** 2

    model = Rosenbrock()
    optimizer = build_optimizer("newton", options("newton", damping=0.0), model)
    closure = Closure(model, optimizer)
    previous = float(model().detach())
    for _ in range(40):
        optimizer.step(closure)
        now = float(model().detach())
        assert now <= previous
        previous = now
    torch.testing.assert_close(model.xy.detach(), torch.ones(2, dtype=DTYPE), atol=1e-6, rtol=0)


def test_newton_keeps_descending_on_a_non_convex_loss() -> None:
    # a small tanh network: H is indefinite at the start, so the plain Newton step (damping
    # 1e-4) points uphill; the line search raises the damping instead of standing still
    torch.manual_seed(0)
    x = torch.randn(64, 2, dtype=DTYPE)
    y = torch.sin(2 * x[:, :1]) * x[:, 1:]
    model = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 1)).to(DTYPE)
    optimizer = build_optimizer("newton", options("newton"), model)
    closure = Closure(model, optimizer, x, y, nn.functional.mse_loss)
    losses = [float(optimizer.step(closure)) for _ in range(15)]
    assert all(b < a for a, b in itertools.pairwise(losses))
    assert losses[-1] < 0.2 * losses[0]


def test_newton_refuses_models_above_its_parameter_limit() -> None:
    model = nn.Linear(50, 50)  # 2550 parameters
    with pytest.raises(ConfigError) as info:
        build_optimizer("newton", options("newton"), model)
    message = str(info.value)
    for part in ("2550", "2000", "optimizer.max_params", "lbfgs"):
        assert part in message
    build_optimizer("newton", options("newton", max_params=3000), model)


def test_newton_handles_a_singular_hessian() -> None:
    # a loss of w1 + w2 only through their sum: H is singular; damping 0 takes least squares
    class Sum(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.tensor([3.0, -1.0], dtype=DTYPE))

        def forward(self, _: Any = None) -> torch.Tensor:
            return (self.w.sum() - 1.0) ** 2

    model = Sum()
    optimizer = build_optimizer("newton", options("newton", damping=0.0), model)
    optimizer.step(Closure(model, optimizer))
    assert float(model().detach()) == pytest.approx(0.0, abs=1e-12)


# --- Lookahead --------------------------------------------------------------------------------


def test_lookahead_shares_param_groups_and_state_with_its_base() -> None:
    model = Quadratic()
    optimizer = build_optimizer("lookahead", options("lookahead", base="adam", lr=0.1), model)
    base = optimizer.base  # type: ignore[attr-defined]
    assert optimizer.param_groups is base.param_groups
    assert optimizer.state is base.state
    # the lr the engine writes reaches the base: a path with the lr changed midway
    lrs = [0.1] * 3 + [0.02] * 7
    ours = run("lookahead", Quadratic(), lrs=lrs, base="sgd", lr=0.1, k=3, alpha=0.5)

    step = iter(lrs)
    expected = reference(
        lookahead_ref(lambda th, g: th - next(step) * g, k=3, alpha=0.5), Quadratic()
    )
    assert_same_path(ours, expected)


def test_lookahead_state_clear_restarts_base_and_slow_weights() -> None:
    # the engine clears optimizer.state after restoring weights (NaN guard): afterwards the
    # optimizer behaves like a fresh one started at the current weights
    model = Quadratic()
    values = {"base": {"name": "sgd", "momentum": 0.9}, "lr": 0.05, "k": 3}
    optimizer = build_optimizer("lookahead", options("lookahead", **values), model)
    for _ in range(4):
        optimizer.zero_grad()
        model().backward()
        optimizer.step()
    optimizer.state.clear()
    twin = Quadratic()
    twin.load_state_dict(model.state_dict())
    fresh = build_optimizer("lookahead", options("lookahead", **values), twin)
    for _ in range(7):
        for m, opt in ((model, optimizer), (twin, fresh)):
            opt.zero_grad()
            m().backward()
            opt.step()
        assert torch.equal(model.theta(), twin.theta())


def test_lookahead_options_resolve_and_round_trip() -> None:
    entry = OPTIMIZERS.get("lookahead")
    cases = {
        # (given) → (lr, weight_decay, decay, base as resolved)
        "bare": ({}, 1e-3, 0.0, "coupled", "adam"),
        "sgd default lr": ({"base": "sgd"}, 1e-2, 0.0, "coupled", "sgd"),
        "lr from base": ({"base": {"name": "sgd", "lr": 0.3}}, 0.3, 0.0, "coupled", "sgd"),
        "lr at top": ({"base": "nag", "lr": 0.2}, 0.2, 0.0, "coupled", "nesterov"),
        "adamw decays": ({"base": "adamw"}, 1e-3, 0.01, "decoupled", "adamw"),
        "own decay": ({"base": "adamw", "weight_decay": 0.1}, 1e-3, 0.1, "decoupled", "adamw"),
    }
    for label, (given, lr, wd, mode, base) in cases.items():
        parsed = entry.parse_options(given, "optimizer")
        assert parsed.lr == pytest.approx(lr), label
        assert (parsed.weight_decay, parsed.decay) == (wd, mode), label
        assert parsed.base["name"] == base, label
        assert "lr" not in parsed.base and "weight_decay" not in parsed.base, label
        dumped = parsed.model_dump(mode="json")
        assert entry.parse_options(dumped, "optimizer").model_dump(mode="json") == dumped, label
    momentum = entry.parse_options({"base": {"name": "sgd", "momentum": 0.7}}, "optimizer")
    optimizer = build_optimizer("lookahead", momentum, nn.Linear(2, 2))
    assert optimizer.param_groups[0]["momentum"] == 0.7
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2)
    assert optimizer.param_groups[0]["weight_decay"] == 0.0


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"base": "adma"}, ["optimizer.base", "adma", "did you mean 'adam'"]),
        ({"base": {"name": "sgd", "momentom": 0.9}}, ["optimizer.base.momentom", "momentum"]),
        ({"base": {"name": "sgd", "momentum": 1.5}}, ["optimizer.base.momentum", "1.5"]),
        (
            {"base": {"name": "adam", "weight_decay": 0.1}},
            ["optimizer.base", "weight_decay", "lookahead level"],
        ),
        ({"base": {"lr": 0.1}}, ["optimizer.base", "name"]),
        ({"base": "lbfgs"}, ["optimizer.base", "full-batch"]),
        ({"base": "lookahead"}, ["optimizer.base", "lookahead"]),
        ({"lr": 0.1, "base": {"name": "sgd", "lr": 0.2}}, ["optimizer.lr", "optimizer.base.lr"]),
        ({"k": 0}, ["optimizer.k"]),
        ({"alpha": 1.5}, ["optimizer.alpha"]),
    ],
)
def test_lookahead_option_errors_name_the_key(given: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        OPTIMIZERS.get("lookahead").parse_options(given, "optimizer")
    for part in expected:
        assert part in str(info.value)


# --- state round trip -------------------------------------------------------------------------

ROUND_TRIP = {
    "adabound": {"lr": 0.1, "gamma": 0.5},
    "lookahead": {"base": {"name": "adam"}, "lr": 0.1, "k": 4},  # syncs after the reload
    "lookahead-sgd": {"base": {"name": "sgd", "momentum": 0.9}, "lr": 0.05, "k": 2},
    "lookahead-adabound": {"base": {"name": "adabound", "gamma": 0.5}, "lr": 0.1, "k": 5},
    "lbfgs": {"max_iter": 2, "lr": 0.5},
    "newton": {"lr": 0.5},
}


def _step(model: Quadratic, optimizer: torch.optim.Optimizer) -> None:
    if needs_closure(optimizer):
        optimizer.step(Closure(model, optimizer))
    else:
        optimizer.zero_grad()
        model().backward()
        optimizer.step()


@pytest.mark.parametrize(
    "key", [*ROUND_TRIP, *(n for n in OPTIMIZERS.list() if n not in ROUND_TRIP)]
)
def test_state_dict_round_trip_continues_identically(key: str) -> None:
    name = key.split("-")[0]
    values = ROUND_TRIP.get(key, {})
    # float32, as the engine trains (in float64 torch's NAdam does not round-trip exactly: its
    # float32 μ product comes back as float64, cast to the parameters' dtype)
    model = Quadratic(dtype=torch.float32)
    optimizer = build_optimizer(name, options(name, **values), model)
    for _ in range(3):
        _step(model, optimizer)
    buffer = io.BytesIO()  # through a checkpoint file: plain tensors and containers only
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    twin = Quadratic(
        seed=1, dtype=torch.float32
    )  # other weights: everything must come from the checkpoint
    twin.load_state_dict(saved["model"])
    restored = build_optimizer(name, options(name, **values), twin)
    restored.load_state_dict(saved["optimizer"])
    for t in range(3):
        _step(model, optimizer)
        _step(twin, restored)
        assert torch.equal(model.theta(), twin.theta()), t
