"""Weight initialisation schemes, applied to every Linear, Conv and recurrent weight matrix.

Biases are set to zero by every scheme but ``default`` (which keeps PyTorch's own init).
Normalisation layers keep their identity init.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nntune.registry import NoOptions, Registry

WeightInit = Callable[[torch.Tensor], object]
InitBuilder = Callable[..., WeightInit | None]  # (options) -> weight init
INITS: Registry[InitBuilder] = Registry("init")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GainOptions(_Options):
    gain: float = Field(1.0, gt=0.0)


class KaimingOptions(_Options):
    gain: float | None = Field(
        None, gt=0.0, description="override the gain (default: √2, for ReLU)"
    )
    mode: Literal["fan_in", "fan_out"] = "fan_in"
    nonlinearity: Literal["relu", "leaky_relu", "tanh", "sigmoid", "linear"] = "relu"


@INITS.register("default", options=NoOptions)
def default(options: BaseModel) -> WeightInit | None:
    """Keep PyTorch's own initialisation of each layer."""
    return None


@INITS.register("xavier_uniform", options=GainOptions, aliases=("glorot_uniform",))
def xavier_uniform(options: GainOptions) -> WeightInit:
    """U(-a, a) with a = gain·√(6/(fan_in+fan_out)) (Glorot & Bengio 2010)."""
    return lambda w: nn.init.xavier_uniform_(w, gain=options.gain)


@INITS.register("xavier_normal", options=GainOptions, aliases=("glorot_normal", "xavier"))
def xavier_normal(options: GainOptions) -> WeightInit:
    """N(0, σ²) with σ = gain·√(2/(fan_in+fan_out))."""
    return lambda w: nn.init.xavier_normal_(w, gain=options.gain)


def _kaiming(options: KaimingOptions, uniform: bool) -> WeightInit:
    def init(weight: torch.Tensor) -> None:
        if options.gain is None:
            fn = nn.init.kaiming_uniform_ if uniform else nn.init.kaiming_normal_
            fn(weight, mode=options.mode, nonlinearity=options.nonlinearity)
            return
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
        std = options.gain / math.sqrt(fan_in if options.mode == "fan_in" else fan_out)
        with torch.no_grad():
            if uniform:
                weight.uniform_(-math.sqrt(3.0) * std, math.sqrt(3.0) * std)
            else:
                weight.normal_(0.0, std)

    return init


@INITS.register("kaiming_uniform", options=KaimingOptions, aliases=("he_uniform",))
def kaiming_uniform(options: KaimingOptions) -> WeightInit:
    """U(-b, b) with b = gain·√(3/fan_in), gain √2 for ReLU (He et al. 2015)."""
    return _kaiming(options, uniform=True)


@INITS.register("kaiming_normal", options=KaimingOptions, aliases=("he_normal", "kaiming", "he"))
def kaiming_normal(options: KaimingOptions) -> WeightInit:
    """N(0, σ²) with σ = gain/√fan_in, gain √2 for ReLU (He et al. 2015)."""
    return _kaiming(options, uniform=False)


@INITS.register("orthogonal", options=GainOptions)
def orthogonal(options: GainOptions) -> WeightInit:
    """A (semi-)orthogonal matrix times gain (Saxe et al. 2014)."""
    return lambda w: nn.init.orthogonal_(w, gain=options.gain)


class NormalOptions(_Options):
    std: float = Field(0.01, gt=0.0)
    mean: float = 0.0


@INITS.register("normal", options=NormalOptions, aliases=("gaussian",))
def normal(options: NormalOptions) -> WeightInit:
    """N(mean, std²) for every weight."""
    return lambda w: nn.init.normal_(w, mean=options.mean, std=options.std)


class UniformOptions(_Options):
    a: float = Field(0.05, gt=0.0, description="weights drawn from U(-a, a)")


@INITS.register("uniform", options=UniformOptions)
def uniform(options: UniformOptions) -> WeightInit:
    """U(-a, a) for every weight."""
    return lambda w: nn.init.uniform_(w, -options.a, options.a)


def apply_init(model: nn.Module, init: WeightInit | None) -> None:
    """Initialise every weight matrix of ``model`` with ``init`` and zero its biases."""
    if init is None:
        return
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if isinstance(module, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm):
                continue
            if name.startswith("weight") and param.dim() >= 2:
                init(param.data)
                if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                    param.data[module.padding_idx].zero_()  # PAD embeds as zeros (text archs)
            elif name.startswith("bias"):
                nn.init.zeros_(param.data)
