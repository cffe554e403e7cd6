"""Adversarial examples in the model's input space (preprocessed features): FGSM and PGD.

FGSM (Goodfellow et al. 2015) takes one step of size ``eps`` along the sign of the loss
gradient. PGD (Madry et al. 2018) starts at a random point of the ``eps``-ball and takes
``steps`` steps of ``step_size``, projecting back onto the ball after each. ``norm`` is ``linf``
(sign steps, a box) or ``l2`` (normalized steps, a ball per sample). There is no clamp to a data
range: preprocessed features have none, so ``eps`` is in standardized units.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ATTACKS = ("fgsm", "pgd")
NORMS = ("linf", "l2")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm, shaped to broadcast over the sample's dimensions."""
    norms = t.flatten(1).norm(dim=1).clamp_min(1e-12)
    return norms.view(-1, *([1] * (t.dim() - 1)))


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / _flat_norm(delta)).clamp(max=1.0)


def _step(grad: torch.Tensor, size: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return size * grad.sign()
    return size * grad / _flat_norm(grad)


def attack(
    model: nn.Module,
    loss: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    method: str = "pgd",
    eps: float = 0.1,
    steps: int = 5,
    step_size: float | None = None,
    norm: str = "linf",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Adversarial versions of ``x`` (detached) that raise ``loss(model(x), y)``. The model is
    put in eval mode while attacking (BatchNorm statistics stay untouched) and restored."""
    if method not in ATTACKS:
        raise ValueError(f"attack '{method}': allowed: {', '.join(ATTACKS)}")
    if norm not in NORMS:
        raise ValueError(f"norm '{norm}': allowed: {', '.join(NORMS)}")
    was_training = model.training
    model.eval()
    try:
        x = x.detach()
        if method == "fgsm":
            delta = torch.zeros_like(x)
            steps, size = 1, eps
        else:
            size = step_size if step_size is not None else 2.5 * eps / steps
            # drawn on the CPU (the engine's generator lives there), then moved
            noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            delta = _project((2 * noise - 1) * eps, eps, norm)
        for _ in range(steps):
            delta.requires_grad_(True)
            with torch.enable_grad():
                value = loss(model(x + delta), y)
                (grad,) = torch.autograd.grad(value, delta)
            delta = _project(delta.detach() + _step(grad, size, norm), eps, norm)
        return (x + delta).detach()
    finally:
        model.train(was_training)
