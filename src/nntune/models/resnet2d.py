"""``resnet2d``: an image ResNet of basic blocks (He et al. 2016), optionally with
squeeze-and-excitation attention in every block (Hu et al. 2018).

One stage per width of ``model.hidden`` (ResNet-18 is ``hidden: [64, 128, 256, 512]`` with
``blocks: 2``), stride 2 between stages. The stem is CIFAR-style (one 3×3 convolution, stride 1)
for small images and ImageNet-style (7×7 stride 2, then a 3×3 max-pool) for large ones.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from nntune.models.archs import (
    ARCHS,
    GlobalAvgPool,
    ModelSpec,
    Reshape,
    _check_reshape,
    _dropout,
    _image_shape,
    _norm,
    _Options,
    _seq,
)

LARGE_IMAGE = 96  # images at least this large (shorter side) get the ImageNet-style stem


class SqueezeExcite(nn.Module):
    """Channel attention: pool each channel, a bottleneck of two linear maps, sigmoid gates."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.gate = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.gate(x.mean(dim=(2, 3)))
        return x * weights[:, :, None, None]


class BasicBlock2d(nn.Module):
    """conv3×3 → norm → act → conv3×3 → norm (→ SE), plus the (projected) input, then act."""

    def __init__(self, c_in: int, c_out: int, stride: int, spec: ModelSpec, se: int | None) -> None:
        super().__init__()
        bias = spec.norm == "none"
        self.body = _seq(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias),
            _norm(spec.norm, c_out, 2),
            spec.activation(),
            _dropout(spec.dropout),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias),
            _norm(spec.norm, c_out, 2),
            SqueezeExcite(c_out, se) if se else nn.Identity(),
        )
        self.project: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.project = _seq(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _norm(spec.norm, c_out, 2)
            )
        self.act = spec.activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.project(x))


class ResNet2dOptions(_Options):
    blocks: int = Field(2, ge=1, description="basic blocks per stage (one stage per width)")
    stem: Literal["auto", "cifar", "imagenet"] = Field(
        "auto", description="cifar: 3×3 stride 1; imagenet: 7×7 stride 2 + max-pool; auto by size"
    )
    attention: Literal["none", "se"] = Field(
        "none", description="se: squeeze-and-excitation in every block"
    )
    reduction: int = Field(16, ge=1, description="the SE bottleneck's channel reduction")


@ARCHS.register("resnet2d", options=ResNet2dOptions, aliases=("resnet_image",))
def resnet2d(options: ResNet2dOptions, spec: ModelSpec) -> nn.Module:
    """Image ResNet of basic blocks (CIFAR- or ImageNet-style stem), optional SE attention."""
    shape = _image_shape(spec)
    _check_reshape(spec, shape)
    channels, first = shape[0], spec.hidden[0]
    large = min(shape[1:]) >= LARGE_IMAGE
    stem = options.stem if options.stem != "auto" else ("imagenet" if large else "cifar")
    bias = spec.norm == "none"
    layers: list[nn.Module] = [Reshape(*shape)]
    if stem == "imagenet":
        layers += [nn.Conv2d(channels, first, 7, stride=2, padding=3, bias=bias)]
    else:
        layers += [nn.Conv2d(channels, first, 3, padding=1, bias=bias)]
    layers += [_norm(spec.norm, first, 2), spec.activation()]
    if stem == "imagenet":
        layers.append(nn.MaxPool2d(3, stride=2, padding=1))
    se = options.reduction if options.attention == "se" else None
    width_in = first
    for stage, width in enumerate(spec.hidden):
        for block in range(options.blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock2d(width_in, width, stride, spec, se))
            width_in = width
    layers += [GlobalAvgPool(), nn.Linear(width_in, spec.n_outputs)]
    return _seq(*layers)
