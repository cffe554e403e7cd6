"""Batch augmentations, applied to training batches only, on tensors, with a seeded generator."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from nntune.errors import ConfigError
from nntune.padding import series_lengths, step_mask
from nntune.registry import Registry


@dataclass
class Batch:
    """A training batch. Mixing augmentations set ``y_mix`` and ``lam``: the loss is then
    ``lam * loss(out, y) + (1 - lam) * loss(out, y_mix)``."""

    x: torch.Tensor
    y: torch.Tensor
    y_mix: torch.Tensor | None = None
    lam: float = 1.0


Augmentation = Callable[[Batch, torch.Generator], Batch]


@dataclass(frozen=True)
class AugmentContext:
    """What a builder may need to know about the samples: their shape without the batch axis,
    and the image shape (C, H, W) flat samples stand for, when known."""

    sample_shape: tuple[int, ...]
    image_shape: tuple[int, ...] | None = None


AugmentBuilder = Callable[..., Augmentation]  # (options, AugmentContext) -> augmentation
AUGMENT: Registry[AugmentBuilder] = Registry("augmentation")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoiseOptions(_Options):
    std: float = Field(0.1, gt=0.0, description="standard deviation of the added gaussian noise")


@AUGMENT.register("noise", options=NoiseOptions, aliases=("gaussian_noise",))
def noise(options: NoiseOptions, context: AugmentContext) -> Augmentation:
    """Add gaussian noise with standard deviation ``std`` to every feature."""

    def apply(batch: Batch, gen: torch.Generator) -> Batch:
        eps = torch.randn(batch.x.shape, generator=gen, device=batch.x.device, dtype=batch.x.dtype)
        return replace(batch, x=batch.x + options.std * eps)

    return apply


class ShiftOptions(_Options):
    max: int = Field(4, ge=1, description="largest shift, in steps, either way")
    mode: Literal["circular", "zero"] = Field(
        "circular", description="circular: wrap around; zero: fill the gap with zeros"
    )


@AUGMENT.register("shift", options=ShiftOptions, aliases=("translate",))
def shift(options: ShiftOptions, context: AugmentContext) -> Augmentation:
    """Shift each 1-D signal by a random whole number of steps in [-max, max] (last axis),
    within its own length: NaN padding after a shorter series stays where it is."""

    def apply(batch: Batch, gen: torch.Generator) -> Batch:
        x = batch.x
        n, length = x.shape[0], x.shape[-1]
        offsets = torch.randint(-options.max, options.max + 1, (n,), generator=gen)
        view_shape = (n,) + (1,) * (x.dim() - 2) + (length,)
        inside = step_mask(x)
        if inside is None:  # no padding: the whole row is the series (as before lengths)
            source = torch.arange(length).unsqueeze(0) - offsets.unsqueeze(1)  # (n, length)
            valid = (source >= 0) & (source < length)
            source = source.remainder(length).to(x.device)
            index = source.view(view_shape).expand_as(x)
            shifted = torch.gather(x, -1, index)
            if options.mode == "zero":
                shifted = shifted * valid.to(x.device, x.dtype).view(view_shape)
            return replace(batch, x=shifted)
        lengths = series_lengths(x).unsqueeze(1)  # (n, 1)
        steps = torch.arange(length, device=x.device).unsqueeze(0)
        raw = steps - offsets.to(x.device).unsqueeze(1)  # (n, length)
        valid = (raw >= 0) & (raw < lengths)
        # inside a series: wrap within its length; padding steps read themselves (NaN)
        source = torch.where(inside, raw.remainder(lengths.clamp_min(1)), steps)
        shifted = torch.gather(x, -1, source.view(view_shape).expand_as(x))
        if options.mode == "zero":
            vacated = (inside & ~valid).view(view_shape).expand_as(x)
            shifted = torch.where(vacated, torch.zeros_like(shifted), shifted)
        return replace(batch, x=shifted)

    return apply


class FlipOptions(_Options):
    p: float = Field(0.5, ge=0.0, le=1.0, description="probability of flipping each image")
    axis: Literal["horizontal", "vertical"] = "horizontal"


@AUGMENT.register("flip", options=FlipOptions, aliases=("hflip",))
def flip(options: FlipOptions, context: AugmentContext) -> Augmentation:
    """Mirror each 2-D image with probability p (horizontal by default)."""
    image_shape = context.image_shape
    if image_shape is None or len(image_shape) != 3:
        raise ConfigError(
            "data.augment flip needs images: give model.input_shape [C, H, W], use square "
            f"flat features, or an .npz with images; the samples have shape {context.sample_shape}"
        )
    dim = -1 if options.axis == "horizontal" else -2

    def apply(batch: Batch, gen: torch.Generator) -> Batch:
        x = batch.x
        images = x.reshape(x.shape[0], *image_shape)
        chosen = torch.rand(x.shape[0], generator=gen) < options.p
        mask = chosen.to(x.device).view(-1, 1, 1, 1)
        flipped = torch.where(mask, images.flip(dim), images)
        return replace(batch, x=flipped.reshape(x.shape))

    return apply


class MixupOptions(_Options):
    alpha: float = Field(0.2, gt=0.0, description="Beta(alpha, alpha) for the mixing weight")


@AUGMENT.register("mixup", options=MixupOptions)
def mixup(options: MixupOptions, context: AugmentContext) -> Augmentation:
    """mixup (Zhang et al. 2018): blend pairs of samples and their losses with λ ~ Beta(α, α)."""
    alpha = options.alpha

    def apply(batch: Batch, gen: torch.Generator) -> Batch:
        lam = _beta_sample(alpha, gen)
        order = torch.randperm(batch.x.shape[0], generator=gen).to(batch.x.device)
        mixed = lam * batch.x + (1.0 - lam) * batch.x[order]
        return replace(batch, x=mixed, y_mix=batch.y[order], lam=lam)

    return apply


def _beta_sample(alpha: float, gen: torch.Generator) -> float:
    # torch.distributions cannot take a generator; Beta(a, a) from two seeded gamma draws keeps
    # the augmentation reproducible and part of the checkpointed generator state
    a = torch._standard_gamma(torch.full((2,), alpha, dtype=torch.float64), generator=gen)
    total = float(a.sum())
    return float(a[0]) / total if total > 0 and math.isfinite(total) else 0.5
