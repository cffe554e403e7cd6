"""The learning-rate range test (Smith 2017, "Cyclical learning rates for training neural
networks", section 3.3; fastai's ``lr_find``).

The configured model, loss, optimizer and training batches are built exactly as
``nntune train`` builds them; then the lr grows geometrically from ``min_lr`` to ``max_lr``
over ``steps`` optimizer steps, one mini-batch per step (the training batches are cycled,
epoch after epoch, when there are fewer than ``steps``), and the loss of each batch is
recorded. The configured optimizer is used with all its options; only its lr is overridden
each step (every parameter group keeps its ratio to the first one). Weight decay and gradient
clipping apply as in training; augmentation, L1/L2 penalties, gradient accumulation, mixed
precision and the lr schedule do not (the test reads the plain loss of one batch per step).

The curve is smoothed with fastai's bias-corrected exponential moving average (β = 0.98) and
the test stops early once the smoothed loss exceeds 4× its minimum or the loss is not finite.

The suggestion is the lr of steepest descent of a zero-lag average of the recorded losses
(see :func:`suggest_lr` for why not of the lagging EMA). The model is a fresh one built from
the config (or a deep copy of a model given by the caller): nothing the caller holds is
changed and nothing is written to disk (like training, it seeds the global RNGs and sets the
number of torch threads).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from nntune.config import Config, load_config
from nntune.config._load import ConfigSource
from nntune.data import prepare_data
from nntune.errors import ConfigError, TrainingError
from nntune.optim import OPTIMIZERS, clip_gradients
from nntune.train.batches import LoaderBatches, TensorBatches
from nntune.train.build import (
    as_reconstruction,
    build_parts,
    check_components,
    is_reconstruction,
    resolve_for_data,
)
from nntune.train.run import (
    available_cores,
    check_combinations,
    make_batches,
    resolve_device,
    seed_everything,
)

__all__ = [
    "LRFindResult",
    "Suggestion",
    "centered_average",
    "lr_find",
    "lr_schedule",
    "smooth",
    "still_falling",
    "suggest_lr",
    "text_plot",
]

BETA = 0.98  # fastai's smoothing of the recorded losses
DIVERGENCE = 4.0  # stop once the smoothed loss exceeds this many times its minimum
MIN_STEPS = 10


@dataclass
class LRFindResult:
    """The recorded curve and the suggested lr. ``lrs[i]`` is the lr of step i, ``raw_losses[i]``
    the loss of its batch, ``losses[i]`` the EMA-smoothed loss (what early stopping reads) and
    ``average_losses[i]`` the centred average of the raw losses (what the suggestion and
    ``min_loss_lr`` read, see :func:`suggest_lr`)."""

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    average_losses: list[float]
    suggestion: float
    method: str
    min_loss_lr: float
    steps: int  # steps run (fewer than max_steps when stopped early)
    stopped_early: bool
    max_steps: int
    min_lr: float
    max_lr: float
    stop_reason: str | None = None
    optimizer: str = ""
    seed: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "lrs": self.lrs,
            "losses": self.losses,
            "raw_losses": self.raw_losses,
            "average_losses": self.average_losses,
            "suggestion": self.suggestion,
            "method": self.method,
            "min_loss_lr": self.min_loss_lr,
            "steps": self.steps,
            "stopped_early": self.stopped_early,
            "stop_reason": self.stop_reason,
            "max_steps": self.max_steps,
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "optimizer": self.optimizer,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }


# --- the pure parts: lr grid, smoothing, suggestion ---------------------------------------------


def check_range(min_lr: float, max_lr: float, steps: int) -> None:
    """ConfigError unless 0 < min_lr < max_lr (finite) and steps >= 10."""
    for name, value in (("min_lr", min_lr), ("max_lr", max_lr)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(f"lr-find: {name} must be a positive number, got {value!r}")
    if min_lr >= max_lr:
        raise ConfigError(
            f"lr-find: min_lr ({min_lr:g}) must be below max_lr ({max_lr:g}); "
            "e.g. --min-lr 1e-7 --max-lr 10"
        )
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < MIN_STEPS:
        raise ConfigError(
            f"lr-find: steps must be an integer of at least {MIN_STEPS} (got {steps!r}); "
            "100 is usual"
        )


def lr_schedule(min_lr: float, max_lr: float, steps: int) -> list[float]:
    """lr_i = min_lr · (max_lr/min_lr)^(i/(steps-1)), i = 0..steps-1 (geometric, both ends in)."""
    ratio = max_lr / min_lr
    lrs = [min_lr * ratio ** (i / (steps - 1)) for i in range(steps)]
    lrs[-1] = max_lr
    return lrs


def smooth(values: Sequence[float], beta: float = BETA) -> list[float]:
    """Bias-corrected exponential moving average (Adam's correction; fastai's smoothing)."""
    avg, out = 0.0, []
    for i, value in enumerate(values):
        avg = beta * avg + (1.0 - beta) * value
        out.append(avg / (1.0 - beta ** (i + 1)))
    return out


def centered_average(values: Sequence[float], half: int) -> np.ndarray:
    """Moving average over ±``half`` points, centred (no lag; shorter windows at the ends)."""
    data = np.asarray(values, dtype=float)
    sums = np.concatenate([[0.0], np.cumsum(data)])
    index = np.arange(len(data))
    low = np.maximum(index - half, 0)
    high = np.minimum(index + half + 1, len(data))
    return np.asarray((sums[high] - sums[low]) / (high - low))


def window(n: int) -> int:
    """Half-width of the averaging and slope windows of an n-step curve: 5%, at least 2."""
    return max(2, round(0.05 * n))


@dataclass
class Suggestion:
    lr: float
    method: str  # steepest | min/10
    min_loss_lr: float
    notes: list[str]


def suggest_lr(lrs: Sequence[float], raw_losses: Sequence[float]) -> Suggestion:
    """The suggested lr of a recorded curve.

    Both the suggestion and ``min_loss_lr`` read the centred average of the raw losses over
    ±w steps (:func:`window`), which has no lag. ``min_loss_lr`` is the lr of its minimum.

    ``steepest``: the lr where that average falls fastest against log-lr (fastai's "steep"),
    the slope being a finite difference across ±w steps, so no single noisy batch decides;
    only the curve before the minimum counts. Two choices were measured (seeds 0-11 on digits
    and wine mlps and a small mnist1d resnet, see tests/test_lr_find.py):

    - the centred average, not the EMA of ``losses``: the EMA (β = 0.98) lags by tens of steps,
      which moved its steepest point ~2.5× higher in lr (on digits with adam, training at that
      lr gave 10× the validation loss of the zero-lag one), and its minimum further still;
    - the slope of the loss, not of the log-loss: where a small model memorises its batches
      (wine) the loss falls from 1e-3 to 1e-8 late in the test, which is the steepest part of
      the log-loss and sent the suggestion 16× too high on one seed in three.

    ``min/10``: the fallback when the curve before the minimum is too short to measure a slope
    or does not fall: a tenth of ``min_loss_lr`` (never below the first lr).
    """
    n = len(raw_losses)
    if n == 0:
        return Suggestion(float("nan"), "none", float("nan"), ["no finite loss was recorded"])
    notes: list[str] = []
    x = np.log(np.asarray(lrs[:n], dtype=float))
    w = window(n)
    average = centered_average(raw_losses, w)
    best = int(np.argmin(average))
    min_loss_lr = float(lrs[best])
    fallback = max(min_loss_lr / 10.0, float(lrs[0]))
    if best == 0:
        notes.append("the loss was lowest at the smallest lr tried: try a smaller min_lr")
    if best < 2 * w + 1:
        notes.append("too few steps before the minimum loss to measure a slope")
        return Suggestion(fallback, "min/10", min_loss_lr, notes)
    start = float(average[: best + 1].max())
    if start > 0 and float(average[best]) > 0.8 * start:
        notes.append(
            f"the loss fell by only {100 * (1 - float(average[best]) / start):.0f}% before its "
            "minimum: the suggestion is unreliable (try a wider lr range or more steps)"
        )
    centers = np.arange(w, best - w + 1)
    slopes = (average[centers + w] - average[centers - w]) / (x[centers + w] - x[centers - w])
    k = int(np.argmin(slopes))
    # flat: the loss falls by less than 1% of its starting value over a tenfold step in lr
    if slopes[k] > -0.01 * abs(float(average[0])) / math.log(10.0):
        notes.append("the loss hardly falls before its minimum")
        return Suggestion(fallback, "min/10", min_loss_lr, notes)
    return Suggestion(float(lrs[int(centers[k])]), "steepest", min_loss_lr, notes)


def still_falling(lrs: Sequence[float], raw_losses: Sequence[float]) -> bool:
    """Whether the (centred-average) loss still falls over the last 10% of the curve."""
    n = len(raw_losses)
    w = window(n)
    if n < 2 * w + 1:
        return False
    average = centered_average(raw_losses, w)
    x = np.log(np.asarray(lrs[:n], dtype=float))
    slope = (average[-1] - average[-1 - 2 * w]) / (x[-1] - x[-1 - 2 * w])
    return bool(slope < -0.01 * abs(float(average[0])) / math.log(10.0))


def text_plot(result: LRFindResult, width: int = 60, height: int = 12) -> list[str]:
    """Loss against lr (log scale, the tested range) as lines of ASCII: ``.`` the loss of each
    batch, ``*`` its centred average (what the suggestion reads), ``|`` the suggestion; losses
    above the plot's top (the divergence at the end) are drawn as ``^`` on the top row."""
    n = len(result.raw_losses)
    if n == 0:
        return []
    w = window(n)
    average = centered_average(result.raw_losses, w)
    low = float(min(min(result.raw_losses), average.min()))
    # the top: 1.5x the highest average loss up to its minimum, so that the divergence at the
    # end does not flatten the rest
    top = float(average[: int(np.argmin(average)) + 1].max())
    high = min(float(max(result.raw_losses)), 1.5 * top)
    if not high > low:
        high = low + 1.0
    span = math.log(result.max_lr / result.min_lr)

    def column(lr: float) -> int:
        return min(width - 1, max(0, round(math.log(lr / result.min_lr) / span * (width - 1))))

    def row(loss: float) -> int:
        if loss > high:
            return -1
        return min(height - 1, max(0, round((high - loss) / (high - low) * (height - 1))))

    grid = [[" "] * width for _ in range(height)]
    if math.isfinite(result.suggestion):
        for r in range(height):
            grid[r][column(result.suggestion)] = "|"
    for marks, values in ((".", result.raw_losses), ("*", average.tolist())):
        for lr, loss in zip(result.lrs, values, strict=True):
            r = row(loss)
            grid[max(r, 0)][column(lr)] = "^" if r < 0 else marks
    labels = [f"{high:.3g}", f"{(high + low) / 2:.3g}", f"{low:.3g}"]
    pad = max(len(label) for label in labels)
    lines = []
    for r, cells in enumerate(grid):
        label = {0: labels[0], (height - 1) // 2: labels[1], height - 1: labels[2]}.get(r, "")
        lines.append(f"{label:>{pad}} |{''.join(cells)}")
    lines.append(f"{'':>{pad}} +{'-' * width}")
    left, right = f"{result.min_lr:.0e}", f"{result.max_lr:.0e}"
    lines.append(f"{'':>{pad}}  {left}{'lr (log scale)':^{width - len(left) - len(right)}}{right}")
    return lines


# --- the run --------------------------------------------------------------------------------------


def _cycle(
    batches: TensorBatches | LoaderBatches, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    epoch = 0
    while True:
        empty = True
        for batch in batches.epoch(generator, epoch):
            empty = False
            yield batch
        if empty:
            raise ConfigError("lr-find: the training data yields no batch")
        epoch += 1


def _config(
    source: ConfigSource,
    overrides: Sequence[str] | Mapping[str, Any] | None,
    seed: int | None,
) -> Config:
    # a caller's mapping is copied: loading resolves paths in place
    if isinstance(source, Mapping):
        source = copy.deepcopy(dict(source))
    config = load_config(source, overrides)
    if seed is not None:
        config = config.model_copy(update={"seed": int(seed)})
    return check_components(config)


def lr_find(
    config_or_path: ConfigSource,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    seed: int | None = None,
    model: nn.Module | None = None,
    beta: float = BETA,
) -> LRFindResult:
    """Run the LR range test on a config (a YAML path, a mapping or a Config).

    ``overrides`` are ``"key=value"`` strings as for ``--set`` or a ``{dotted_key: value}``
    mapping; ``seed`` replaces the config's seed (splits, init and batch order); ``model``
    replaces the configured model (a deep copy is trained, the given module is not changed).
    Full-batch optimizers (gd, lbfgs, newton) are refused: the test needs mini-batch steps.
    """
    check_range(min_lr, max_lr, steps)
    if not 0.0 <= beta < 1.0:
        raise ConfigError(f"lr-find: beta must be in [0, 1), got {beta!r}")
    started = time.perf_counter()
    config = _config(config_or_path, overrides, seed)
    optimizer_name = config.optimizer.name
    if "full_batch" in OPTIMIZERS.get(optimizer_name, key="optimizer").tags:
        raise ConfigError(
            f"lr-find needs mini-batch steps, but optimizer {optimizer_name} takes one step on "
            "the whole training set per epoch; try it with --set optimizer.name=sgd or "
            "--set optimizer.name=adam"
        )

    # the same steps as Trainer.fit, up to the built parts and batches
    torch.set_num_threads(config.train.threads or available_cores())
    seed_everything(config.seed)
    device = resolve_device(config.train.device)
    bundle = prepare_data(config.data, config.seed)
    if is_reconstruction(config):
        bundle = as_reconstruction(bundle)
    config = resolve_for_data(config, bundle)
    own = copy.deepcopy(model) if model is not None else None
    parts = build_parts(config, bundle, device, own)
    loader = bundle.train_dataset  # a user's torch Dataset, batched by a DataLoader
    check_combinations(config, parts, device, loader is not None)
    batches = make_batches(config, bundle, loader, parts.full_batch, device)

    net, loss_fn, optimizer = parts.model, parts.loss, parts.optimizer
    params = [p for group in optimizer.param_groups for p in group["params"]]
    base = optimizer.param_groups[0]["lr"]
    ratios = [group["lr"] / base for group in optimizer.param_groups]
    clip = config.train.grad_clip
    decay = parts.weight_decay
    generator = torch.Generator().manual_seed(config.seed)
    lrs = lr_schedule(min_lr, max_lr, steps)

    recorded: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    stop_reason: str | None = None
    net.train()
    feed = _cycle(batches, generator)
    for i, lr in enumerate(lrs):
        for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
            group["lr"] = lr * ratio
        x, y = next(feed)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        value = float(loss.item())
        if not math.isfinite(value):
            stop_reason = f"the loss became {value} at lr {lr:.3g}"
            break
        loss.backward()
        avg = beta * avg + (1.0 - beta) * value
        current = avg / (1.0 - beta ** (len(raw) + 1))
        recorded.append(lr)
        raw.append(value)
        smoothed.append(current)
        best = min(best, current)
        if current > DIVERGENCE * best:
            stop_reason = (
                f"the smoothed loss ({current:.4g}) exceeded {DIVERGENCE:g}× its minimum "
                f"({best:.4g}) at lr {lr:.3g}"
            )
            break
        if i == len(lrs) - 1:
            break  # the last step's update would be measured by no batch
        clip_gradients(
            params,
            clip.norm if clip else None,
            clip.value if clip else None,
            clip.agc if clip else None,
            clip.agc_eps if clip else 1e-3,
        )
        if decay is not None:
            decay.apply(lr, 1.0, 0)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)

    if not raw:
        raise TrainingError(
            f"lr-find: the loss was not finite at the first step (lr {min_lr:g}); "
            "check the data and the model"
        )
    suggestion = suggest_lr(recorded, raw)
    notes = suggestion.notes
    if stop_reason is None and still_falling(recorded, raw):
        notes.append("the loss still fell at max_lr: try a larger max_lr")
    return LRFindResult(
        lrs=recorded,
        losses=smoothed,
        raw_losses=raw,
        average_losses=centered_average(raw, window(len(raw))).tolist(),
        suggestion=suggestion.lr,
        method=suggestion.method,
        min_loss_lr=suggestion.min_loss_lr,
        steps=len(recorded),
        stopped_early=stop_reason is not None,
        max_steps=steps,
        min_lr=min_lr,
        max_lr=max_lr,
        stop_reason=stop_reason,
        optimizer=optimizer_name,
        seed=config.seed,
        seconds=time.perf_counter() - started,
        notes=notes,
    )
