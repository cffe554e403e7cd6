"""Loss penalties and gradient clipping."""

from __future__ import annotations

from collections.abc import Sequence

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
    params: Sequence[nn.Parameter], norm: float | None, value: float | None
) -> torch.Tensor | None:
    """Clip in place by global norm or by value; returns the norm before clipping (norm mode)."""
    if norm is not None:
        return torch.nn.utils.clip_grad_norm_(params, norm)
    if value is not None:
        torch.nn.utils.clip_grad_value_(params, value)
    return None
