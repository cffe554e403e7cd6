"""An augmentation of the user's own: noise drawn from the run's generator."""

import torch


def jitter(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, std: float = 0.05):
    return x + std * torch.randn(x.shape, generator=generator, dtype=x.dtype), y
