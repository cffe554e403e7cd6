"""Forward passes without gradients, and the loss and metrics of a split."""

from __future__ import annotations

import math

import torch
from torch import nn

from nntune.losses import Loss
from nntune.metrics import compute_metrics, metric_names, needs_probabilities
from nntune.usercode import short_name

# Evaluation chunks on a CPU hold about this many input values: the activations of a chunk of
# images then stay in the caches. The Fashion-MNIST recipe's ResNet on 28×28 images, 2 AVX2
# cores, channels-last: 821 images/s in chunks of 4,096, 1,422 in 512, 1,750 in 128.
CPU_EVAL_VALUES = 2**17
EVAL_BATCH = (64, 4096)  # the fewest and most rows per chunk (a table's rows are 4,096 a chunk)


def eval_batch_size(x: torch.Tensor) -> int:
    """Rows per evaluation chunk: 4,096 on an accelerator; on a CPU as many as hold about
    CPU_EVAL_VALUES input values (167 images of 28×28, 4,096 rows of a table)."""
    low, high = EVAL_BATCH
    if x.device.type != "cpu" or len(x) == 0:
        return high
    per_row = max(1, x[0].numel())
    return max(low, min(high, CPU_EVAL_VALUES // per_row))


@torch.no_grad()
def predict_outputs(
    model: nn.Module, x: torch.Tensor, batch_size: int | None = None
) -> torch.Tensor:
    """Model outputs for every row of ``x``, in eval mode, in chunks (``eval_batch_size`` rows
    unless ``batch_size``); restores the mode after."""
    batch_size = batch_size or eval_batch_size(x)
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


def metric_values(
    loss: Loss,
    task: str,
    outputs: torch.Tensor,
    targets: torch.Tensor,
    metrics: list[str] | None,
) -> dict[str, float]:
    """``{<metric>: ...}`` of outputs already computed (default: every metric of the task).

    Probabilities are computed only when a metric reads them: a softmax over thousands of rows
    costs more than the rest of an epoch's bookkeeping.
    """
    outputs = outputs.detach()
    if not bool(torch.isfinite(outputs).all()):  # non-finite outputs: metrics are undefined
        names = metric_names(task) if metrics is None else metrics
        return {short_name(name): math.nan for name in names}
    y_true = targets.detach().cpu().numpy()
    if task != "classification":
        return compute_metrics(task, y_true, outputs.float().cpu().numpy(), metrics)
    labels = loss.predict_labels(outputs).cpu().numpy()
    probs = None
    if needs_probabilities(task, metrics):
        probs = loss.probabilities(outputs).cpu().numpy()
    return compute_metrics(task, y_true, probs, metrics, labels=labels)


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
    result.update(metric_values(loss, task, outputs, targets, metrics))
    return result


def evaluate(
    model: nn.Module,
    loss: Loss,
    task: str,
    x: torch.Tensor,
    y: torch.Tensor,
    metrics: list[str] | None = None,
    batch_size: int | None = None,
) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``(x, y)``."""
    return score(loss, task, predict_outputs(model, x, batch_size), y, metrics)
