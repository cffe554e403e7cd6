"""Forward passes without gradients, and the loss and metrics of a split."""

from __future__ import annotations

import math

import torch
from torch import nn

from nntune.losses import Loss
from nntune.metrics import compute_metrics


@torch.no_grad()
def predict_outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Model outputs for every row of ``x``, in eval mode, in chunks; restores the mode after."""
    was_training = model.training
    model.eval()
    try:
        chunks = [model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0)


def outputs_for_metrics(loss: Loss, task: str, outputs: torch.Tensor) -> torch.Tensor:
    """What metrics read: class probabilities, or the predictions themselves."""
    return loss.probabilities(outputs) if task == "classification" else outputs.float()


def score(
    loss: Loss,
    task: str,
    outputs: torch.Tensor,
    targets: torch.Tensor,
    metrics: list[str] | None,
) -> dict[str, float]:
    """``{"loss": ..., <metric>: ...}`` for outputs already computed."""
    with torch.no_grad():
        value = float(loss(outputs, targets))
    result = {"loss": value if math.isfinite(value) else math.nan}
    readable = outputs_for_metrics(loss, task, outputs).detach().cpu().numpy()
    if not (readable == readable).all():  # NaN outputs: metrics are undefined
        result.update({name: math.nan for name in metrics or []})
        return result
    result.update(compute_metrics(task, targets.detach().cpu().numpy(), readable, metrics))
    return result


def evaluate(
    model: nn.Module,
    loss: Loss,
    task: str,
    x: torch.Tensor,
    y: torch.Tensor,
    metrics: list[str] | None = None,
    batch_size: int = 4096,
) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``(x, y)``."""
    return score(loss, task, predict_outputs(model, x, batch_size), y, metrics)
