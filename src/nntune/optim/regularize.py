"""Loss penalties, weight decay and gradient clipping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


def penalty(params: Sequence[nn.Parameter], l1: float, l2: float) -> torch.Tensor | None:
    """``l1 · Σ|w| + l2 · Σw²`` over ``params`` (Keras' convention), or None when both are 0."""
    if not params or (l1 == 0.0 and l2 == 0.0):
        return None
    total = torch.zeros((), device=params[0].device)
    if l1:
        total = total + l1 * sum(p.abs().sum() for p in params)
    if l2:
        total = total + l2 * sum(p.pow(2).sum() for p in params)
    return total


def grad_norm(params: Sequence[nn.Parameter]) -> torch.Tensor:
    """The global L2 norm of the gradients (0 when none have one)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch._foreach_norm(grads, 2.0)
    return torch.linalg.vector_norm(torch.stack(norms), 2.0)


def clip_gradients(
    params: Sequence[nn.Parameter],
    norm: float | None,
    value: float | None,
    agc: float | None = None,
    agc_eps: float = 1e-3,
) -> torch.Tensor | None:
    """Clip in place by global norm, by value or adaptively (AGC); returns the norm before
    clipping in norm mode."""
    if norm is not None:
        return torch.nn.utils.clip_grad_norm_(params, norm)
    if value is not None:
        torch.nn.utils.clip_grad_value_(params, value)
    if agc is not None:
        adaptive_clip(params, agc, agc_eps)
    return None


def _unitwise_norm(x: torch.Tensor) -> torch.Tensor:
    """Norm per output unit (over every dim but the first); a vector or scalar is one unit."""
    if x.dim() <= 1:
        return torch.linalg.vector_norm(x).expand_as(x)
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.dim())), keepdim=True)


@torch.no_grad()
def adaptive_clip(params: Sequence[nn.Parameter], clipping: float, eps: float = 1e-3) -> None:
    """Adaptive gradient clipping (Brock et al. 2021, NFNets): scale each unit's gradient g_i
    down to ``clipping · max(‖w_i‖, eps)`` when it is longer than that.

    Written here because torch has no AGC and the formula is four lines; the paper's reference
    implementation (JAX) computes the same unit-wise norms."""
    for p in params:
        if p.grad is None:
            continue
        limit = _unitwise_norm(p).clamp_min(eps) * clipping
        g_norm = _unitwise_norm(p.grad)
        scale = limit / g_norm.clamp_min(1e-6)
        p.grad.mul_(torch.where(g_norm > limit, scale, torch.ones_like(scale)))


@dataclass
class WeightDecay:
    """Weight decay applied by the engine just before each optimizer step.

    ``coupled``: g ← g + wd_t·w (L2 regularisation folded into the gradient, what torch's SGD
    and Adam do with ``weight_decay``); ``decoupled``: w ← w − lr_t·wd_t·w (AdamW, Loshchilov &
    Hutter 2019). wd_t is ``weight_decay`` (constant), × the lr schedule's factor (follow_lr),
    or × gamma^epoch (exponential). Only ``params`` (weights, not biases/norms) are decayed.
    """

    params: Sequence[nn.Parameter]
    weight_decay: float
    mode: str = "coupled"
    schedule: str = "constant"
    gamma: float = 0.9
    # per parameter (aligned with params): its lr's multiplier under train.layer_lr, so that
    # decoupled decay shrinks each weight by its own lr (as AdamW with param groups does)
    lr_scales: Sequence[float] | None = None

    def value(self, lr_factor: float, epoch: int) -> float:
        if self.schedule == "follow_lr":
            return self.weight_decay * lr_factor
        if self.schedule == "exponential":
            return self.weight_decay * self.gamma**epoch
        return self.weight_decay

    @property
    def active(self) -> bool:
        return self.weight_decay > 0.0 and len(self.params) > 0

    @torch.no_grad()
    def apply(self, lr: float, lr_factor: float, epoch: int) -> None:
        """Decay before ``optimizer.step()`` (after clipping: the decay term is not clipped)."""
        wd = self.value(lr_factor, epoch)
        if wd == 0.0 or not self.params:
            return
        if self.mode == "decoupled":
            # as torch's AdamW: a weight without a gradient (frozen, unused) is not decayed
            scales = self.lr_scales or [1.0] * len(self.params)
            by_scale: dict[float, list[torch.Tensor]] = {}
            for p, scale in zip(self.params, scales, strict=True):
                if p.grad is not None:
                    by_scale.setdefault(scale, []).append(p)
            for scale, live in by_scale.items():
                torch._foreach_mul_(live, 1.0 - lr * scale * wd)
            return
        weights: list[torch.Tensor] = [p for p in self.params if p.grad is not None]
        grads: list[torch.Tensor] = [p.grad for p in self.params if p.grad is not None]
        if weights:
            torch._foreach_add_(grads, weights, alpha=wd)

    def penalty(
        self, lr_factor: float, epoch: int, params: Sequence[torch.Tensor] | None = None
    ) -> torch.Tensor | None:
        """Coupled decay as a loss term ½·wd·Σw² (gradient wd·w), for optimizers that evaluate
        the loss themselves (L-BFGS's line search must see the same function it descends).
        ``params`` replaces the decayed weights (functional evaluation)."""
        wd = self.value(lr_factor, epoch)
        weights = self.params if params is None else params
        if self.mode != "coupled" or wd == 0.0 or not weights:
            return None
        return 0.5 * wd * sum(p.pow(2).sum() for p in weights)  # type: ignore[return-value]
