"""A factory in an importable package (tests.usercode.nets:build_net), with a relative import."""

from torch import nn

from .blocks import block


def build_net(in_features: int, n_outputs: int, depth: int = 1, width: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, width),
        *[block(width) for _ in range(depth)],
        nn.Linear(width, n_outputs),
    )
