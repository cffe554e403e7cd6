"""Models of the user's own: a class taking its options and nntune's facts by name."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """A one-hidden-layer network; width is its own option, dropout comes from model.dropout."""

    def __init__(self, in_features: int, n_outputs: int, width: int = 16, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(in_features, width),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(width, n_outputs),
        )
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))


class DeepSigmoid(nn.Module):
    """Many saturating layers: its gradients vanish."""

    def __init__(self, in_features: int, n_outputs: int, depth: int = 10, width: int = 32):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_features, width), nn.Sigmoid()]
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.Sigmoid()]
        self.body = nn.Sequential(*layers, nn.Linear(width, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))


def needs_vocabulary(in_features: int, n_outputs: int, vocabulary: int) -> nn.Module:
    """A factory with a parameter nntune cannot fill."""
    return nn.Linear(in_features, n_outputs)
