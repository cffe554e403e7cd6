"""1-D convolutional archs over (C, L) series: cnn1d, resnet1d (as far as the FCN/ResNet of
Wang et al. 2017) and inception1d (InceptionTime's network, Ismail Fawaz et al. 2020).

Series of different lengths come NaN-padded at the end (nntune.padding). Every layer here
works on ``(x, mask)``: the padding is zero before each convolution (exactly what a
convolution sees past the end of an unpadded series), downsampling keeps the steps that lie
inside the series, and the global pooling averages over real steps only, so that appending
padding to a series never changes the output (in eval mode). Flat feature vectors are one
channel, as before.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from nntune.errors import ConfigError
from nntune.models.archs import (
    ARCHS,
    ConvOptions,
    ModelSpec,
    _check_reshape,
    _dropout,
    _norm,
    _Options,
    _seq,
    _signal_shape,
)
from nntune.padding import fill_padding

Mask = torch.Tensor | None  # (B, 1, L) float: 1 inside each series, 0 on its padding


def _masked(x: torch.Tensor, mask: Mask) -> torch.Tensor:
    return x if mask is None else x * mask


def _halve(mask: Mask, stride: int, ceil: bool) -> Mask:
    """The mask after a downsampling by ``stride``: a strided convolution centred on each
    kept step (ceil: step i*stride decides) or a pooling window (floor: all of it real)."""
    if mask is None or stride == 1:
        return mask
    if ceil:
        return mask[:, :, ::stride]
    return (nn.functional.avg_pool1d(mask, stride, stride) > 0.999).to(mask.dtype)


class SeriesConvNet(nn.Module):
    """Reads (B, C, L) series (or flat vectors), runs its blocks on (x, mask), pools the real
    steps and applies the linear head."""

    def __init__(self, spec: ModelSpec, blocks: list[nn.Module], width: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.series = spec.series
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(width, spec.n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], self.channels, -1)
        mask: Mask = None
        if self.series:
            x, steps = fill_padding(x)
            mask = None if steps is None else steps.unsqueeze(1).to(x.dtype)
        for block in self.blocks:
            x, mask = block(x, mask)
        if mask is None:
            pooled = x.mean(dim=2)
        else:
            pooled = (x * mask).sum(dim=2) / mask.sum(dim=2).clamp_min(1.0)
        return self.head(pooled)


class Unit(nn.Module):
    """Layers that keep the length (conv with same padding, norm, activation, dropout), then
    the padding zeroed again; an optional residual projection."""

    def __init__(self, body: nn.Module, project: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.project = project

    def forward(self, x: torch.Tensor, mask: Mask) -> tuple[torch.Tensor, Mask]:
        y = self.body(x)
        if self.project is not None:
            y = y + self.project(x)
        return _masked(y, mask), mask


class Pool(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.pool = nn.MaxPool1d(2) if kind == "max" else nn.AvgPool1d(2)

    def forward(self, x: torch.Tensor, mask: Mask) -> tuple[torch.Tensor, Mask]:
        mask = _halve(mask, 2, ceil=False)
        return _masked(self.pool(x), mask), mask


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, bias: bool = True) -> nn.Module:
    if stride == 1 and kernel % 2 == 0:
        # "same" for an even kernel: one more step of zeros after than before (what torch's
        # padding="same" does, without its warning and its copy of the input)
        return nn.Sequential(
            nn.ConstantPad1d((kernel // 2 - 1, kernel // 2), 0.0),
            nn.Conv1d(c_in, c_out, kernel, bias=bias),
        )
    if stride == 1:
        return nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=bias)
    if kernel % 2 == 0:
        raise ConfigError(
            f"model.arch: kernel size {kernel} with downsampling; a strided convolution needs an "
            "odd kernel (or set downsample: false)"
        )
    return nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=bias)


@ARCHS.register("cnn1d", options=ConvOptions, aliases=("conv1d",), tags=("series",))
def cnn1d(options: ConvOptions, spec: ModelSpec) -> nn.Module:
    """1-D CNN: conv → norm → act per width in model.hidden, pooling, global average, linear."""
    channels, length = _signal_shape(spec)
    _check_reshape(spec, (channels, length))
    k = options.kernel_size
    blocks: list[nn.Module] = []
    c_in, size = channels, length
    for width in spec.hidden:
        body = _seq(_conv(c_in, width, k), _norm(spec.norm, width, 1), spec.activation(),
                    _dropout(spec.dropout))  # fmt: skip
        project = None
        if spec.residual:
            project = nn.Identity() if width == c_in else nn.Conv1d(c_in, width, 1, bias=False)
        blocks.append(Unit(body, project))
        if options.pool != "none" and size >= 2:
            blocks.append(Pool(options.pool))
            size //= 2
        c_in = width
    return SeriesConvNet(spec, blocks, c_in, channels)


class ResBlock1d(nn.Module):
    """A residual block (He et al. 2016): conv → norm → act per kernel, the last without act,
    plus the (projected) input, then act. Kernels [8, 5, 3] make the block of Wang et al."""

    def __init__(
        self, c_in: int, c_out: int, stride: int, kernels: list[int], spec: ModelSpec
    ) -> None:
        super().__init__()
        bias = spec.norm == "none"
        self.stride = stride
        layers = nn.ModuleList()
        width = c_in
        for i, kernel in enumerate(kernels):
            last = i == len(kernels) - 1
            layers.append(
                _seq(
                    _conv(width, c_out, kernel, stride if i == 0 else 1, bias=bias),
                    _norm(spec.norm, c_out, 1),
                    *((spec.activation(), _dropout(spec.dropout)) if not last else ()),
                )
            )
            width = c_out
        self.layers = layers
        self.project: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.project = _seq(
                nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), _norm(spec.norm, c_out, 1)
            )
        self.act = spec.activation()

    def forward(self, x: torch.Tensor, mask: Mask) -> tuple[torch.Tensor, Mask]:
        inner = _halve(mask, self.stride, ceil=True)
        h = x
        for layer in self.layers:
            h = _masked(layer(h), inner)
        return _masked(self.act(h + self.project(x)), inner), inner


class ResNetOptions(_Options):
    kernel_size: int = Field(5, ge=1, description="the kernel of every conv (kernel_sizes unset)")
    kernel_sizes: list[int] | None = Field(
        None,
        description="the kernels of one block's convs, e.g. [8, 5, 3] (Wang et al. 2017); "
        "default: two convs of kernel_size",
    )
    blocks: int = Field(1, ge=1, description="residual blocks per stage (one stage per width)")
    stem: bool = Field(True, description="a first conv → norm → act before the blocks")
    downsample: bool = Field(True, description="stride 2 at the start of each stage but the first")

    @field_validator("kernel_sizes")
    @classmethod
    def _positive(cls, kernels: list[int] | None) -> list[int] | None:
        if kernels is not None and (not kernels or any(k < 1 for k in kernels)):
            raise ValueError("give one or more kernel sizes ≥ 1")
        return kernels


@ARCHS.register("resnet1d", options=ResNetOptions, aliases=("resnet",), tags=("series",))
def resnet1d(options: ResNetOptions, spec: ModelSpec) -> nn.Module:
    """1-D ResNet: a stem conv, then a stage of residual blocks per width (stride 2 between);
    {kernel_sizes: [8, 5, 3], stem: false, downsample: false} with widths [64, 128, 128] is
    the ResNet of the time-series review (Ismail Fawaz et al. 2019)."""
    channels, length = _signal_shape(spec)
    _check_reshape(spec, (channels, length))
    kernels = options.kernel_sizes or [options.kernel_size] * 2
    blocks: list[nn.Module] = []
    c_in = channels
    if options.stem:
        first = spec.hidden[0]
        k = kernels[0]
        blocks.append(
            Unit(
                _seq(
                    _conv(c_in, first, k, bias=spec.norm == "none"),
                    _norm(spec.norm, first, 1),
                    spec.activation(),
                )
            )
        )
        c_in = first
    for stage, width in enumerate(spec.hidden):
        for block in range(options.blocks):
            stride = 2 if options.downsample and stage > 0 and block == 0 else 1
            blocks.append(ResBlock1d(c_in, width, stride, kernels, spec))
            c_in = width
    return SeriesConvNet(spec, blocks, c_in, channels)


class InceptionModule(nn.Module):
    """A bottleneck, parallel convs of several kernels, and a max-pool branch, concatenated,
    then norm and act (Ismail Fawaz et al. 2020)."""

    def __init__(
        self, c_in: int, filters: int, kernels: list[int], bottleneck: int, spec: ModelSpec
    ) -> None:
        super().__init__()
        self.bottleneck: nn.Module = (
            nn.Conv1d(c_in, bottleneck, 1, bias=False) if c_in > 1 and bottleneck else nn.Identity()
        )
        width = bottleneck if c_in > 1 and bottleneck else c_in
        self.branches = nn.ModuleList(_conv(width, filters, k, bias=False) for k in kernels)
        self.pool = nn.MaxPool1d(3, stride=1, padding=1)
        self.pool_conv = nn.Conv1d(c_in, filters, 1, bias=False)
        out = filters * (len(kernels) + 1)
        self.out = _seq(_norm(spec.norm, out, 1), spec.activation(), _dropout(spec.dropout))
        self.width = out

    def forward(self, x: torch.Tensor, mask: Mask) -> tuple[torch.Tensor, Mask]:
        b = self.bottleneck(x)
        if mask is None:
            pooled = self.pool(x)
        else:  # padding must not win a max: it is -inf there, as past the end of a series
            pooled = self.pool(x.masked_fill(mask == 0, float("-inf")))
            pooled = torch.where(mask > 0, pooled, torch.zeros_like(pooled))
        h = torch.cat([*(branch(b) for branch in self.branches), self.pool_conv(pooled)], dim=1)
        return _masked(self.out(h), mask), mask


class InceptionResidual(nn.Module):
    """Modules with a shortcut around them (projected by a 1x1 conv and norm), then act."""

    def __init__(self, modules: list[InceptionModule], c_in: int, spec: ModelSpec) -> None:
        super().__init__()
        self.inner = nn.ModuleList(modules)
        width = modules[-1].width
        self.shortcut = _seq(nn.Conv1d(c_in, width, 1, bias=False), _norm(spec.norm, width, 1))
        self.act = spec.activation()

    def forward(self, x: torch.Tensor, mask: Mask) -> tuple[torch.Tensor, Mask]:
        h = x
        for module in self.inner:
            h, mask = module(h, mask)
        return _masked(self.act(h + self.shortcut(x)), mask), mask


class InceptionOptions(_Options):
    kernel_sizes: list[int] = Field(
        [39, 19, 9], min_length=1, description="kernels of the parallel convs of each module"
    )
    bottleneck: int = Field(32, ge=0, description="channels of the 1x1 bottleneck (0: none)")
    residual_every: int = Field(
        3, ge=0, description="a shortcut around every this many modules (0: none)"
    )
    pooling: Literal["avg"] = "avg"


@ARCHS.register("inception1d", options=InceptionOptions, aliases=("inception",), tags=("series",))
def inception1d(options: InceptionOptions, spec: ModelSpec) -> nn.Module:
    """InceptionTime's network: one inception module per width in model.hidden (its filters
    per branch; [32] × 6 is the published one), shortcuts every 3 modules, global average."""
    channels, length = _signal_shape(spec)
    _check_reshape(spec, (channels, length))
    blocks: list[nn.Module] = []
    group: list[InceptionModule] = []
    c_in = group_in = channels
    for filters in spec.hidden:
        module = InceptionModule(c_in, filters, options.kernel_sizes, options.bottleneck, spec)
        c_in = module.width
        group.append(module)
        if options.residual_every and len(group) == options.residual_every:
            blocks.append(InceptionResidual(group, group_in, spec))
            group, group_in = [], c_in
    blocks += group  # modules after the last shortcut
    return SeriesConvNet(spec, blocks, c_in, channels)
