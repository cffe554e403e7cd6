"""Image augmentations: batched tensor operations on the training device, drawn from the run's
generator (a resumed run replays them exactly).

They read images (N, C, H, W) with pixels in 0..1: an image folder's uint8 batches are turned
into such floats before augmentation; flat features are read as the images ``model.input_shape``
(or a square) says, like ``flip``. Geometric ones resample with ``grid_sample`` (bilinear,
zeros outside the image), in one call for the whole batch.

Written here rather than taken from torchvision (PyPI's wheel is a CUDA build that does not
load beside the CPU torch) or kornia (one more dependency for a dozen short functions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from nntune.data.augment import (
    AUGMENT,
    Augmentation,
    AugmentContext,
    Batch,
    _beta_sample,
    _Options,
)
from nntune.errors import ConfigError

ImageOp = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # (N, C, H, W) -> same


def _image_shape(name: str, context: AugmentContext) -> tuple[int, int, int]:
    shape = context.image_shape
    if shape is None or len(shape) != 3:
        raise ConfigError(
            f"data.augment {name} needs images: an image folder, an .npz of images, "
            f"model.input_shape [C, H, W] or square flat features; the samples have shape "
            f"{context.sample_shape}"
        )
    return (shape[0], shape[1], shape[2])


def _on_images(name: str, context: AugmentContext, op: ImageOp) -> Augmentation:
    """An augmentation applying ``op`` to the batch's images (reshaped from flat samples)."""
    shape = _image_shape(name, context)

    def apply(batch: Batch, gen: torch.Generator) -> Batch:
        images = batch.x.reshape(batch.x.shape[0], *shape)
        return replace(batch, x=op(images, gen).reshape(batch.x.shape))

    return apply


def _uniform(
    n: int, low: float, high: float, gen: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """n draws from U(low, high), made on the CPU by the run's generator, on like's device."""
    return (low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)).to(
        like.device, like.dtype
    )


def _chosen(n: int, p: float, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Which of n samples an augmentation of probability p applies to, as a (n, 1, 1, 1) mask."""
    return (torch.rand(n, generator=gen) < p).to(like.device).view(-1, 1, 1, 1)


def _warp(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Each image resampled through its 2×3 affine map (output → input, in [-1, 1] units)."""
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gray(images: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R BT.601) of RGB images as (N, 1, H, W); gray images as they are."""
    if images.shape[1] != 3:
        return images.mean(dim=1, keepdim=True)
    r, g, b = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


# --- crops --------------------------------------------------------------------------------------


class CropOptions(_Options):
    padding: int = Field(4, ge=0, description="pixels of zero padding on each side")


@AUGMENT.register("crop", options=CropOptions, aliases=("random_crop", "pad_crop"))
def crop(options: CropOptions, context: AugmentContext) -> Augmentation:
    """Pad each image by `padding` pixels and cut a random window of its size (CIFAR-style)."""
    pad = options.padding

    def op(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, _, h, w = images.shape
        if pad == 0:
            return images
        padded = F.pad(images, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(images.device)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(images.device)
        rows = (dy[:, None] + torch.arange(h, device=images.device))[:, :, None]  # (n, h, 1)
        cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, :]  # (n, 1, w)
        index = torch.arange(n, device=images.device)[:, None, None]
        return padded.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2).contiguous()

    return _on_images("crop", context, op)


class ResizedCropOptions(_Options):
    scale: tuple[float, float] = Field(
        (0.08, 1.0), description="share of the image's area the crop covers, low and high"
    )
    ratio: tuple[float, float] = Field(
        (3 / 4, 4 / 3), description="aspect ratio (width / height) of the crop, low and high"
    )

    @model_validator(mode="after")
    def _ordered(self) -> ResizedCropOptions:
        for name, (low, high) in (("scale", self.scale), ("ratio", self.ratio)):
            if not 0 < low <= high or (name == "scale" and high > 1):
                raise ValueError(
                    f"{name} must be 0 < low <= high{' <= 1' if name == 'scale' else ''}"
                )
        return self


@AUGMENT.register("random_resized_crop", options=ResizedCropOptions, aliases=("rrc",))
def random_resized_crop(options: ResizedCropOptions, context: AugmentContext) -> Augmentation:
    """A random box of `scale` × the area and aspect `ratio` (log-uniform), resized back to the
    image's size (Szegedy et al. 2015, as torchvision's RandomResizedCrop)."""
    (s_low, s_high), (r_low, r_high) = options.scale, options.ratio

    def op(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        area = _uniform(n, s_low, s_high, gen, images)
        ratio = torch.exp(_uniform(n, math.log(r_low), math.log(r_high), gen, images))
        # box sides as fractions of the width and height, kept inside the image
        fw = torch.sqrt(area * ratio).clamp(max=1.0)
        fh = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (1 - fw) * (2 * _uniform(n, 0, 1, gen, images) - 1)  # centre in [-1, 1] units
        cy = (1 - fh) * (2 * _uniform(n, 0, 1, gen, images) - 1)
        zero = torch.zeros_like(fw)
        theta = torch.stack([torch.stack([fw, zero, cx], 1), torch.stack([zero, fh, cy], 1)], 1)
        return _warp(images, theta)

    return _on_images("random_resized_crop", context, op)


# --- geometry -----------------------------------------------------------------------------------


class RotateOptions(_Options):
    degrees: float = Field(15.0, gt=0.0, le=180.0, description="largest rotation, either way")
    p: float = Field(1.0, ge=0.0, le=1.0, description="probability of rotating an image")


@AUGMENT.register("rotate", options=RotateOptions, aliases=("rotation",))
def rotate(options: RotateOptions, context: AugmentContext) -> Augmentation:
    """Rotate each image by an angle drawn uniformly from ±degrees about its centre."""
    limit = math.radians(options.degrees)

    def op(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        angle = _uniform(n, -limit, limit, gen, images)
        mask = _chosen(n, options.p, gen, images)
        return torch.where(mask, _rotated(images, angle), images)

    return _on_images("rotate", context, op)


def _rotated(images: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    _, _, h, w = images.shape
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(angle)
    # in [-1, 1] units the axes have lengths w and h: scale so the rotation is rigid in pixels
    theta = torch.stack(
        [torch.stack([cos, -sin * h / w, zero], 1), torch.stack([sin * w / h, cos, zero], 1)], 1
    )
    return _warp(images, theta)


# --- colour -------------------------------------------------------------------------------------


class ColorJitterOptions(_Options):
    brightness: float = Field(0.2, ge=0.0, description="factor drawn from [1 - b, 1 + b]")
    contrast: float = Field(0.2, ge=0.0, description="factor drawn from [1 - c, 1 + c]")
    saturation: float = Field(0.2, ge=0.0, description="factor drawn from [1 - s, 1 + s]")
    hue: float = Field(0.0, ge=0.0, le=0.5, description="hue turn drawn from ±h (of a circle)")


@AUGMENT.register("color_jitter", options=ColorJitterOptions, aliases=("colour_jitter",))
def color_jitter(options: ColorJitterOptions, context: AugmentContext) -> Augmentation:
    """Brightness x·b, contrast (x − m)·c + m (m: the image's mean luma), saturation (blend with
    the luma image by s), hue (a rotation of the chroma plane in YIQ), in that order, each
    factor drawn per image; clamped to 0..1. Saturation and hue apply to RGB images only."""
    o = options

    def op(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        out = images
        if o.brightness:
            out = out * _uniform(n, 1 - o.brightness, 1 + o.brightness, gen, out).view(-1, 1, 1, 1)
        if o.contrast:
            factor = _uniform(n, 1 - o.contrast, 1 + o.contrast, gen, out).view(-1, 1, 1, 1)
            mean = _gray(out).mean(dim=(1, 2, 3), keepdim=True)
            out = (out - mean) * factor + mean
        if out.shape[1] == 3 and o.saturation:
            factor = _uniform(n, 1 - o.saturation, 1 + o.saturation, gen, out).view(-1, 1, 1, 1)
            gray = _gray(out)
            out = (out - gray) * factor + gray
        if out.shape[1] == 3 and o.hue:
            out = hue_rotated(out, _uniform(n, -o.hue, o.hue, gen, out))
        return out.clamp(0.0, 1.0)

    return _on_images("color_jitter", context, op)


_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


def hue_rotated(images: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
    """RGB images with their hue turned by ``turn`` (fractions of a circle, per image): the
    I/Q (chroma) plane of YIQ rotated by 2π·turn, luma kept."""
    to_yiq = _RGB_TO_YIQ.to(images.device, images.dtype)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, images)
    angle = 2 * math.pi * turn.view(-1, 1, 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    i, q = yiq[:, 1], yiq[:, 2]
    turned = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), turned)


# --- occlusion and mixing -------------------------------------------------------------------------


class ErasingOptions(_Options):
    p: float = Field(0.5, ge=0.0, le=1.0, description="probability of erasing a box")
    scale: tuple[float, float] = Field((0.02, 0.33), description="share of the area erased")
    ratio: tuple[float, float] = Field((0.3, 3.3), description="aspect of the erased box")
    value: float = Field(0.0, description="what the box is filled with (pixels are 0..1)")


Box = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # top, left, height, width


def _boxes(
    n: int, h: int, w: int, area: torch.Tensor, ratio: torch.Tensor, gen: torch.Generator
) -> Box:
    """Boxes (top, left, height, width) in pixels, of the given areas and aspects, inside."""
    bh = torch.sqrt(area * h * w / ratio).round().clamp(1, h).long()
    bw = torch.sqrt(area * h * w * ratio).round().clamp(1, w).long()
    top = (torch.rand(n, generator=gen, dtype=torch.float64) * (h - bh + 1).double()).long()
    left = (torch.rand(n, generator=gen, dtype=torch.float64) * (w - bw + 1).double()).long()
    return top, left, bh, bw


def _box_mask(box: Box, h: int, w: int, device: torch.device) -> torch.Tensor:
    """(n, 1, h, w): True inside each image's box."""
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    top, left, bh, bw = (v.to(device).view(-1, 1, 1) for v in box)
    inside = (rows >= top) & (rows < top + bh) & (cols >= left) & (cols < left + bw)
    return inside.unsqueeze(1)  # (n, 1, h, w)


@AUGMENT.register("random_erasing", options=ErasingOptions, aliases=("cutout", "erasing"))
def random_erasing(options: ErasingOptions, context: AugmentContext) -> Augmentation:
    """Fill a random box of each chosen image with `value` (Zhong et al. 2020)."""
    (s_low, s_high), (r_low, r_high) = options.scale, options.ratio

    def op(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, _, h, w = images.shape
        area = s_low + (s_high - s_low) * torch.rand(n, generator=gen, dtype=torch.float64)
        ratio = torch.exp(
            math.log(r_low)
            + (math.log(r_high) - math.log(r_low))
            * torch.rand(n, generator=gen, dtype=torch.float64)
        )
        mask = _box_mask(_boxes(n, h, w, area, ratio, gen), h, w, images.device)
        mask = mask & _chosen(n, options.p, gen, images)
        return torch.where(mask, torch.full_like(images, options.value), images)

    return _on_images("random_erasing", context, op)


class CutmixOptions(_Options):
    alpha: float = Field(1.0, gt=0.0, description="Beta(alpha, alpha) for the kept share λ")


@AUGMENT.register("cutmix", options=CutmixOptions)
def cutmix(options: CutmixOptions, context: AugmentContext) -> Augmentation:
    """CutMix (Yun et al. 2019): paste a box of another image of the batch into each image; the
    loss mixes both labels by the box's exact share of the area (λ = 1 − box area / image)."""
    shape = _image_shape("cutmix", context)

    def apply(batch: Batch, gen: torch.Generator) -> Batch:
        n = batch.x.shape[0]
        _, h, w = shape
        lam = _beta_sample(options.alpha, gen)
        order = torch.randperm(n, generator=gen).to(batch.x.device)
        bh, bw = round(h * math.sqrt(1 - lam)), round(w * math.sqrt(1 - lam))
        cy = int(torch.randint(0, h, (1,), generator=gen))
        cx = int(torch.randint(0, w, (1,), generator=gen))
        top, bottom = max(cy - bh // 2, 0), min(cy + (bh - bh // 2), h)
        left, right = max(cx - bw // 2, 0), min(cx + (bw - bw // 2), w)
        images = batch.x.reshape(n, *shape).clone()
        images[:, :, top:bottom, left:right] = images[order][:, :, top:bottom, left:right]
        kept = 1.0 - (bottom - top) * (right - left) / (h * w)
        return replace(batch, x=images.reshape(batch.x.shape), y_mix=batch.y[order], lam=kept)

    return apply


# --- TrivialAugment ------------------------------------------------------------------------------


def _affine(images: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
            d: torch.Tensor, e: torch.Tensor, f: torch.Tensor) -> torch.Tensor:  # fmt: skip
    theta = torch.stack([torch.stack([a, b, c], 1), torch.stack([d, e, f], 1)], 1)
    return _warp(images, theta)


def _trivial_ops() -> list[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """TrivialAugment Wide's operations (Müller & Hutter 2021), each (images, m) with the
    magnitude m in [0, 1] per image (a random sign where the operation has a direction)."""
    one, zero = torch.ones, torch.zeros  # m is drawn in [-1, 1]: signed where that matters

    def shear_x(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        n = len(m)
        return _affine(x, one(n), 0.99 * m, zero(n), zero(n), one(n), zero(n))

    def shear_y(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        n = len(m)
        return _affine(x, one(n), zero(n), zero(n), 0.99 * m, one(n), zero(n))

    def translate_x(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        n = len(m)  # up to 32 pixels of a 32-pixel image: a whole image's width (2 units)
        return _affine(x, one(n), zero(n), 2 * m, zero(n), one(n), zero(n))

    def translate_y(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        n = len(m)
        return _affine(x, one(n), zero(n), zero(n), zero(n), one(n), 2 * m)

    def rotate_op(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return _rotated(x, math.radians(135) * m)

    def brightness(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return (x * (1 + 0.99 * m).view(-1, 1, 1, 1)).clamp(0, 1)

    def contrast(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * (1 + 0.99 * m).view(-1, 1, 1, 1) + mean).clamp(0, 1)

    def color(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        gray = _gray(x)
        return ((x - gray) * (1 + 0.99 * m).view(-1, 1, 1, 1) + gray).clamp(0, 1)

    def solarize(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        threshold = (1 - m.abs()).view(-1, 1, 1, 1)  # pixels above it are inverted
        return torch.where(x >= threshold, 1 - x, x)

    def posterize(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        bits = (8 - (m.abs() * 6).round()).view(-1, 1, 1, 1)  # 8 down to 2 bits
        levels = 2**bits
        return torch.floor(x * 255 / (256 / levels)) * (256 / levels) / 255

    def autocontrast(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        low = x.amin(dim=(2, 3), keepdim=True)
        high = x.amax(dim=(2, 3), keepdim=True)
        return torch.where(high > low, (x - low) / (high - low).clamp_min(1e-6), x)

    def identity(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return x

    return [identity, shear_x, shear_y, translate_x, translate_y, rotate_op, brightness,
            contrast, color, solarize, posterize, autocontrast]  # fmt: skip


@AUGMENT.register("trivial_augment", options=_Options, aliases=("trivialaugment",))
def trivial_augment(options: _Options, context: AugmentContext) -> Augmentation:
    """TrivialAugment Wide (Müller & Hutter 2021): one operation per image, chosen uniformly
    from identity, shears, translations, rotation, brightness, contrast, colour, solarize,
    posterize and autocontrast, with a uniformly drawn magnitude."""
    ops = _trivial_ops()

    def op(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        which = torch.randint(0, len(ops), (n,), generator=gen)
        magnitude = 2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1  # signed
        out = images.clone()
        for k, fn in enumerate(ops):
            chosen = (which == k).nonzero().flatten()
            if len(chosen) == 0:
                continue
            index = chosen.to(images.device)
            m = magnitude[chosen].to(images.device, images.dtype)
            out[index] = fn(images[index], m)
        return out

    return _on_images("trivial_augment", context, op)
