"""Optimizers that evaluate the loss themselves (``needs_closure = True``): L-BFGS and Newton.

The engine calls ``step(closure)`` with a :class:`nntune.optim.optimizers.StepClosure` on the
whole training set (both are tagged ``full_batch``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from nntune.errors import ConfigError


class LBFGS(torch.optim.LBFGS):
    """torch.optim.LBFGS, marked for the engine as re-evaluating the loss."""

    needs_closure = True


def _unflatten(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    out, offset = [], 0
    for p in like:
        n = p.numel()
        out.append(flat[offset : offset + n].view_as(p))
        offset += n
    return out


class Newton(torch.optim.Optimizer):
    """Exact Newton's method: θ ← θ − lr·(H + damping·I)⁻¹·g, with g and H the gradient and the
    full Hessian of the loss at θ (torch.func), by default with a backtracking line search
    (halve the step until the loss does not rise). Where H + damping·I is not positive definite
    (a non-convex loss) the step uses |H| instead (see :func:`_newton_direction`).

    Written here because torch has no Newton optimizer (L-BFGS only approximates H⁻¹g from past
    gradients). The Hessian of n parameters costs n² memory and about n gradient evaluations,
    so models above ``max_params`` parameters are refused when the optimizer is built.
    """

    needs_closure = True

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        damping: float = 1e-4,
        line_search: bool = True,
        max_halvings: int = 20,
        max_params: int = 2000,
    ) -> None:
        defaults = {"lr": lr, "damping": damping, "line_search": line_search}
        super().__init__(params, defaults)
        self.max_halvings = max_halvings
        count = sum(p.numel() for group in self.param_groups for p in group["params"])
        if count > max_params:
            raise ConfigError(
                f"optimizer = 'newton': the model has {count} trainable parameters, above "
                f"optimizer.max_params = {max_params} (the exact Hessian has {count}² entries "
                f"and costs about {count} gradient evaluations per step); raise "
                "optimizer.max_params, use a smaller model, or use 'lbfgs', which approximates "
                "Newton's step without the Hessian"
            )

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> torch.Tensor:  # type: ignore[override]
        if closure is None or not hasattr(closure, "loss_of"):
            raise RuntimeError(
                "newton needs step(closure) with a closure.loss_of(params) (see StepClosure)"
            )
        # one group holds every parameter: lr, damping and line search are the first group's
        group = self.param_groups[0]
        lr, damping = float(group["lr"]), float(group["damping"])
        params = self._params()
        with torch.enable_grad():
            loss = closure()  # the loss at θ, and p.grad filled like any optimizer's step
        theta = torch.cat([p.detach().reshape(-1) for p in params])

        def f(flat: torch.Tensor) -> torch.Tensor:
            return closure.loss_of(_unflatten(flat, params))

        with torch.enable_grad():
            grad = torch.func.grad(f)(theta)
            try:
                with warnings.catch_warnings():
                    # forward-mode AD's first use makes torch script its decompositions, which
                    # torch itself reports as deprecated: nothing a user can act on
                    warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated")
                    hessian = torch.func.hessian(f)(theta)  # forward over reverse: the fastest
            except (NotImplementedError, RuntimeError):  # an op without forward-mode AD
                hessian = torch.func.jacrev(torch.func.jacrev(f))(theta)
        # in float64: the solve is n³ against the Hessian's n evaluations, and stabler
        direction = _newton_direction(hessian.double(), grad.double(), damping).to(theta.dtype)
        new = theta - lr * direction
        if group["line_search"]:
            new = self._backtrack(f, theta, direction, lr)
        for p, value in zip(params, _unflatten(new, params), strict=True):
            p.copy_(value)
        state = self.state[params[0]]
        state["step"] = state.get("step", 0) + 1
        return loss

    def _backtrack(
        self,
        f: Callable[[torch.Tensor], torch.Tensor],
        theta: torch.Tensor,
        direction: torch.Tensor,
        lr: float,
    ) -> torch.Tensor:
        """The first θ − t·d, t = lr, lr/2, ... (max_halvings halvings), whose loss is not above
        the loss at θ; θ itself when none is (d is a descent direction, so that happens only
        at a stationary point or at the limit of floating-point resolution)."""
        before = float(f(theta))
        t = lr
        for _ in range(self.max_halvings + 1):
            candidate = theta - t * direction
            trial = float(f(candidate))
            if math.isfinite(trial) and trial <= before:
                return candidate
            t *= 0.5
        return theta


def _newton_direction(hessian: torch.Tensor, grad: torch.Tensor, damping: float) -> torch.Tensor:
    """(H + damping·I)⁻¹g when that matrix is positive definite (Cholesky); otherwise, a
    non-convex loss's indefinite or singular H, the same with H's eigenvalues replaced by their
    absolute values (the saddle-free Newton step of Dauphin et al. 2014; Nocedal & Wright §3.4
    on modifying the Hessian), so the step always points downhill instead of towards a saddle
    point or maximum. Eigenvalues that are zero to working precision are left out (the
    pseudo-inverse, as least squares would)."""
    eye = torch.eye(len(grad), dtype=hessian.dtype, device=hessian.device)
    factor, info = torch.linalg.cholesky_ex(hessian + damping * eye)
    if int(info) == 0:
        direction = torch.cholesky_solve(grad.unsqueeze(1), factor).squeeze(1)
        if bool(torch.isfinite(direction).all()):
            return direction
    values, vectors = torch.linalg.eigh(0.5 * (hessian + hessian.T))
    scale = values.abs() + damping
    cutoff = scale.max() * len(grad) * torch.finfo(scale.dtype).eps
    inverse = torch.where(scale > cutoff, 1.0 / scale.clamp_min(cutoff), 0.0)
    return vectors @ (inverse * (vectors.T @ grad))
