"""Series augmentations: batched tensor operations on 1-D signals (the last axis is time), drawn
from the run's generator (a resumed run replays them exactly).

A batch is ``(B, L)`` (one channel, also flat features) or ``(B, C, L)``. Variable-length series
end in NaN padding (see :mod:`nntune.padding`): each augmentation works within each series' own
length and leaves the padding NaN where it was. Resampling ones (``time_warp``,
``window_slice``) read each series at fractional positions by linear interpolation, never past
its last real step.

References: Um et al. 2017 (magnitude scaling, time warping), Le Guennec et al. 2016 (window
slicing), Iwana & Uchida 2021 (a survey of time-series augmentation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from pydantic import Field

from nntune.data.augment import AUGMENT, Augmentation, AugmentContext, Batch, _Options
from nntune.errors import ConfigError
from nntune.padding import series_lengths, step_mask

SeriesOp = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # (B, C, L) -> same


def _check_series(name: str, context: AugmentContext) -> None:
    if len(context.sample_shape) not in (1, 2):
        raise ConfigError(
            f"data.augment {name} needs 1-D series: samples of shape (L,) or (C, L), time "
            f"last; the samples have shape {context.sample_shape}"
        )


def _on_series(name: str, context: AugmentContext, op: SeriesOp) -> Augmentation:
    """An augmentation applying ``op`` to the batch as (B, C, L) (one channel for (B, L))."""
    _check_series(name, context)

    def apply(batch: Batch, gen: torch.Generator) -> Batch:
        x = batch.x
        series = x.unsqueeze(1) if x.dim() == 2 else x
        return replace(batch, x=op(series, gen).reshape(x.shape))

    return apply


def _lengths(x: torch.Tensor) -> torch.Tensor:
    """(B,) int64 lengths of a (B, C, L) batch: L for all when nothing is padded."""
    if step_mask(x) is None:
        return torch.full((x.shape[0],), x.shape[-1], dtype=torch.int64, device=x.device)
    return series_lengths(x)


def resample(x: torch.Tensor, lengths: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Each series of ``x`` (B, C, L) read at fractional ``positions`` (B, L) by linear
    interpolation, the positions clamped to [0, length − 1] so only its real steps are read;
    steps at or past a series' length keep their values (NaN padding)."""
    n, _, steps = x.shape
    last = (lengths - 1).clamp_min(0).unsqueeze(1).to(positions.dtype)  # (B, 1)
    pos = torch.minimum(positions.clamp_min(0.0), last)
    low = pos.floor()
    high = torch.minimum(low + 1, last)
    weight = (pos - low).to(x.dtype).unsqueeze(1)  # (B, 1, L)
    shape = (n, x.shape[1], steps)
    x_low = torch.gather(x, -1, low.long().unsqueeze(1).expand(shape))
    x_high = torch.gather(x, -1, high.long().unsqueeze(1).expand(shape))
    values = torch.lerp(x_low, x_high, weight)  # exact at weight 0 and 1
    inside = torch.arange(steps, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
    return torch.where(inside.unsqueeze(1), values, x)


# --- magnitude ----------------------------------------------------------------------------------


class ScaleOptions(_Options):
    std: float = Field(0.1, gt=0.0, description="standard deviation of the factor around 1")
    per_channel: bool = Field(False, description="one factor per channel instead of per series")


@AUGMENT.register("scale", options=ScaleOptions, aliases=("magnitude_scale", "scaling"))
def scale(options: ScaleOptions, context: AugmentContext) -> Augmentation:
    """Multiply each series (or each of its channels) by a factor drawn from N(1, std)
    (magnitude scaling, Um et al. 2017)."""

    def op(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, channels, _ = x.shape
        shape = (n, channels if options.per_channel else 1)
        factor = 1.0 + options.std * torch.randn(shape, generator=gen, dtype=torch.float64)
        return x * factor.to(x.device, x.dtype).unsqueeze(-1)

    return _on_series("scale", context, op)


# --- time -----------------------------------------------------------------------------------------


class TimeWarpOptions(_Options):
    knots: int = Field(4, ge=1, description="inner knots of the random speed curve")
    std: float = Field(0.2, gt=0.0, description="standard deviation of the speeds around 1")


@AUGMENT.register("time_warp", options=TimeWarpOptions, aliases=("timewarp",))
def time_warp(options: TimeWarpOptions, context: AugmentContext) -> Augmentation:
    """Warp each series' time smoothly and monotonically within its length (Um et al. 2017):
    speeds drawn from N(1, std) (at least 0.1) at knots + 2 evenly spaced points, interpolated
    linearly over the steps, summed into a warped time rescaled to [0, length − 1] at which the
    series is read by linear interpolation. The first and last real steps are kept."""
    points = options.knots + 2

    def op(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, _, steps = x.shape
        speeds = 1.0 + options.std * torch.randn(n, points, generator=gen, dtype=torch.float64)
        speeds = speeds.clamp_min(0.1).to(x.device)
        lengths = _lengths(x)
        span = (lengths - 1).clamp_min(1).unsqueeze(1).double()  # (B, 1)
        t = torch.arange(steps, device=x.device, dtype=torch.float64).unsqueeze(0)
        u = (t / span).clamp(max=1.0) * (points - 1)  # knot coordinate of each step, (B, L)
        k = u.floor().clamp(max=points - 2)
        speed = torch.lerp(
            torch.gather(speeds, 1, k.long()), torch.gather(speeds, 1, k.long() + 1), u - k
        )
        warped = speed.cumsum(dim=1) - speed[:, :1]  # 0 at the first step, increasing
        end = torch.gather(warped, 1, (lengths - 1).clamp_min(0).unsqueeze(1))
        positions = warped / end.clamp_min(1e-12) * (lengths - 1).clamp_min(0).unsqueeze(1)
        return resample(x, lengths, positions)

    return _on_series("time_warp", context, op)


class WindowSliceOptions(_Options):
    ratio: float = Field(0.9, gt=0.0, le=1.0, description="share of the series the window spans")


@AUGMENT.register("window_slice", options=WindowSliceOptions, aliases=("slice",))
def window_slice(options: WindowSliceOptions, context: AugmentContext) -> Augmentation:
    """Cut a random window spanning ``ratio`` of each series' length and stretch it back to
    that length by linear interpolation (window slicing, Le Guennec et al. 2016)."""
    ratio = options.ratio

    def op(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, _, steps = x.shape
        lengths = _lengths(x)
        last = (lengths - 1).clamp_min(0).unsqueeze(1).double()  # (B, 1)
        start = torch.rand(n, 1, generator=gen, dtype=torch.float64).to(x.device)
        start = start * (1.0 - ratio) * last  # the window [start, start + ratio·last] fits
        t = torch.arange(steps, device=x.device, dtype=torch.float64).unsqueeze(0)
        return resample(x, lengths, start + ratio * t)

    return _on_series("window_slice", context, op)
