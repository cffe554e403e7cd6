"""Selecting parameters by name: globs on parameter names or module names, shared by
layer-wise learning rates (``train.layer_lr``) and freezing (``train.freeze``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

from torch import nn

from nntune.errors import ConfigError


def select(names: list[str], pattern: str) -> list[str]:
    """The names a pattern selects: a glob (``1.0.*``) or a module name (``1.0`` selects
    everything in it)."""
    prefix = pattern.rstrip(".") + "."
    return [n for n in names if fnmatch.fnmatchcase(n, pattern) or n.startswith(prefix)]


def no_match(key: str, pattern: str, names: list[str]) -> ConfigError:
    return ConfigError(
        f"{key}: '{pattern}' matches no parameter of the model; its parameters are named like "
        f"{', '.join(names[:5])}, ... (globs allowed: '1.0.*')"
    )


def lr_scales(model: nn.Module, layer_lr: Mapping[str, float]) -> dict[str, float]:
    """Parameter name → multiplier of the optimizer's lr (the first pattern that selects a
    parameter wins; the rest keep 1). An error names a pattern that selects nothing."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    scales: dict[str, float] = {}
    for pattern, factor in layer_lr.items():
        if not factor > 0:
            raise ConfigError(f"train.layer_lr.{pattern}: {factor} is not a positive multiplier")
        hits = select(names, pattern)
        if not hits:
            raise no_match("train.layer_lr", pattern, names)
        for name in hits:
            scales.setdefault(name, float(factor))
    return scales
