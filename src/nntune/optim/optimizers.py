"""Optimizers by name, built on torch.optim.

Every optimizer gets two parameter groups: weights (decayed) and biases/normalisation parameters
(1-D tensors, never decayed), as timm and most tuning guides recommend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nntune.registry import Registry

OptimizerBuilder = Callable[..., torch.optim.Optimizer]  # (options, param groups)
OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")


class OptimizerOptions(BaseModel):
    """Options every optimizer takes."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(1e-3, gt=0.0, description="learning rate (the peak for one_cycle)")
    weight_decay: float = Field(0.0, ge=0.0)


Betas = tuple[float, float]


class SgdOptions(OptimizerOptions):
    lr: float = Field(1e-2, gt=0.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    dampening: float = Field(0.0, ge=0.0, le=1.0)
    nesterov: bool = False


class MomentumOptions(SgdOptions):
    momentum: float = Field(0.9, ge=0.0, lt=1.0)


class NesterovOptions(MomentumOptions):
    nesterov: bool = True


class AdagradOptions(OptimizerOptions):
    lr: float = Field(1e-2, gt=0.0)
    lr_decay: float = Field(0.0, ge=0.0)
    eps: float = Field(1e-10, gt=0.0)
    initial_accumulator_value: float = Field(0.0, ge=0.0)


class RmspropOptions(OptimizerOptions):
    alpha: float = Field(0.99, gt=0.0, lt=1.0, description="decay of the squared-gradient average")
    eps: float = Field(1e-8, gt=0.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    centered: bool = False


class AdamOptions(OptimizerOptions):
    betas: Betas = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    amsgrad: bool = False


class AdamwOptions(AdamOptions):
    weight_decay: float = Field(1e-2, ge=0.0, description="decoupled weight decay")


class NadamOptions(OptimizerOptions):
    lr: float = Field(2e-3, gt=0.0)
    betas: Betas = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    momentum_decay: float = Field(4e-3, ge=0.0)


class RadamOptions(OptimizerOptions):
    betas: Betas = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)


def _torch_optimizer(
    name: str,
    cls: type[torch.optim.Optimizer],
    options: type[OptimizerOptions],
    doc: str,
    aliases: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
) -> None:
    def build(opts: BaseModel, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        kwargs = opts.model_dump()
        # the multi-tensor implementation: one C++ loop over all parameters instead of a Python
        # loop (torch picks it by default only on CUDA); same update, less overhead per step
        kwargs["foreach"] = True
        return cls(groups, **kwargs)

    build.__doc__ = doc
    OPTIMIZERS.register(name, options=options, aliases=aliases, tags=tags)(build)


_torch_optimizer(
    "gd",
    torch.optim.SGD,
    SgdOptions,
    "Full-batch gradient descent: one step per epoch on the whole training set.",
    aliases=("batch_gd",),
    tags=("full_batch",),
)
_torch_optimizer("sgd", torch.optim.SGD, SgdOptions, "Stochastic gradient descent (mini-batch).")
_torch_optimizer(
    "momentum", torch.optim.SGD, MomentumOptions, "SGD with heavy-ball momentum (0.9 by default)."
)
_torch_optimizer(
    "nesterov",
    torch.optim.SGD,
    NesterovOptions,
    "SGD with Nesterov momentum (0.9 by default).",
    aliases=("nag",),
)
_torch_optimizer("adagrad", torch.optim.Adagrad, AdagradOptions, "AdaGrad (Duchi et al. 2011).")
_torch_optimizer("rmsprop", torch.optim.RMSprop, RmspropOptions, "RMSProp (Hinton 2012).")
_torch_optimizer(
    "adam", torch.optim.Adam, AdamOptions, "Adam with bias correction (Kingma & Ba 2015)."
)
_torch_optimizer(
    "adamw",
    torch.optim.AdamW,
    AdamwOptions,
    "Adam with decoupled weight decay (Loshchilov & Hutter 2019).",
)
_torch_optimizer(
    "nadam", torch.optim.NAdam, NadamOptions, "Adam with Nesterov momentum (Dozat 2016)."
)
_torch_optimizer("radam", torch.optim.RAdam, RadamOptions, "Rectified Adam (Liu et al. 2020).")


def is_no_decay(name: str, param: nn.Parameter) -> bool:
    """Biases and normalisation scales/shifts (all 1-D tensors) get no decay or penalty."""
    return param.dim() <= 1 or name.endswith(".bias")


def parameter_groups(model: nn.Module, split: bool = True) -> list[dict[str, Any]]:
    """[weights (decayed), biases and norm parameters (weight_decay 0)]; empty groups dropped.

    ``split=False`` gives one group of all parameters (when nothing is decayed anyway: one group
    is one loop less in every optimizer step).
    """
    if not split:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "group": "all"}]
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if is_no_decay(name, param) else decay).append(param)
    groups: list[dict[str, Any]] = []
    if decay:
        groups.append({"params": decay, "group": "decay"})
    if no_decay:
        groups.append({"params": no_decay, "group": "no_decay", "weight_decay": 0.0})
    return groups


def build_optimizer(name: str, options: BaseModel, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer ``name`` with validated ``options`` over ``model``'s parameters."""
    entry = OPTIMIZERS.get(name, key="optimizer")
    decays = getattr(options, "weight_decay", 0.0) > 0.0
    return entry.builder(options, parameter_groups(model, split=decays))


def decayed_parameters(model: nn.Module) -> Iterable[nn.Parameter]:
    """The parameters L1/L2 penalties apply to (weights, not biases or norm parameters)."""
    return (p for n, p in model.named_parameters() if p.requires_grad and not is_no_decay(n, p))
