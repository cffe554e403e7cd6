"""The model of the worked example in docs/own-code.md: a residual MLP of the user's own.

nntune calls ResidualMLP(in_features=..., n_outputs=..., width=..., depth=..., dropout=...):
in_features and n_outputs are facts it knows about the data, width and depth are this model's
own options (keys of model: in the config, searchable in search.space), dropout comes from
model.dropout because the constructor asks for it by name.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualMLP(nn.Module):
    """An input layer, `depth` residual blocks of `width` units, a linear head."""

    def __init__(
        self,
        in_features: int,
        n_outputs: int,
        width: int = 64,
        depth: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.Sequential(*[Block(width, dropout) for _ in range(depth)])
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x.flatten(1))))
