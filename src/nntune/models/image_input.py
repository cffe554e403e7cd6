"""The input of a model trained on an image folder: uint8 images in, normalized floats on.

Image folders are kept as uint8 tensors (a quarter of float32's memory) and normalized where
they meet the model, so every path to the model (training, evaluation, prediction, serving,
ONNX and TorchScript export) sees the same input: the resized uint8 image (N, C, H, W), or
floats in 0..1 (training batches after augmentation). The channel statistics are buffers of the
model, saved in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class ImageInput(nn.Module):
    """uint8 (0..255) or float (0..1) images → (x − mean) / std per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        return (x - self.get_buffer("mean")) / self.get_buffer("std")


class ImageModel(nn.Module):
    """``net`` behind an ImageInput: its parameters are named ``net.<name>``."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.input = ImageInput(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input(x))


def image_model(net: nn.Module, image: dict[str, Any] | None) -> nn.Module:
    """``net`` as the model of an image folder's run (``image``: the bundle's or the
    checkpoint's image facts), or ``net`` itself for other data."""
    if not image:
        return net
    return ImageModel(net, image["mean"], image["std"])
