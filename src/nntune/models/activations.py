"""Activation functions by name; each builder returns a fresh nn.Module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nntune.registry import NoOptions, Registry

ActivationBuilder = Callable[..., nn.Module]  # (options) -> module
ACTIVATIONS: Registry[ActivationBuilder] = Registry("activation")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _plain(name: str, module: type[nn.Module], doc: str, aliases: tuple[str, ...] = ()) -> None:
    def build(options: BaseModel) -> nn.Module:
        return module()

    build.__doc__ = doc
    ACTIVATIONS.register(name, options=NoOptions, aliases=aliases)(build)


_plain("sigmoid", nn.Sigmoid, "Logistic sigmoid 1/(1+e^-x); saturates for |x| > ~5.", ("logistic",))
_plain("tanh", nn.Tanh, "Hyperbolic tangent; zero-centred, saturates for |x| > ~3.")
_plain("softsign", nn.Softsign, "x/(1+|x|): like tanh with polynomial tails.")
_plain("relu", nn.ReLU, "max(0, x).")
_plain("silu", nn.SiLU, "x·sigmoid(x) (swish).", ("swish",))


class HardtanhOptions(_Options):
    min_val: float = -1.0
    max_val: float = 1.0


@ACTIVATIONS.register("hardtanh", options=HardtanhOptions)
def hardtanh(options: HardtanhOptions) -> nn.Module:
    """Clamp to [min_val, max_val]."""
    return nn.Hardtanh(options.min_val, options.max_val)


class LeakyReluOptions(_Options):
    negative_slope: float = Field(0.01, ge=0.0)


@ACTIVATIONS.register("leaky_relu", options=LeakyReluOptions, aliases=("lrelu",))
def leaky_relu(options: LeakyReluOptions) -> nn.Module:
    """max(0, x) + negative_slope·min(0, x)."""
    return nn.LeakyReLU(options.negative_slope)


class EluOptions(_Options):
    alpha: float = Field(1.0, gt=0.0)


@ACTIVATIONS.register("elu", options=EluOptions)
def elu(options: EluOptions) -> nn.Module:
    """x for x > 0, alpha·(e^x - 1) otherwise."""
    return nn.ELU(options.alpha)


class GeluOptions(_Options):
    approximate: Literal["none", "tanh"] = "none"


@ACTIVATIONS.register("gelu", options=GeluOptions)
def gelu(options: GeluOptions) -> nn.Module:
    """x·Φ(x), the Gaussian error linear unit."""
    return nn.GELU(approximate=options.approximate)
