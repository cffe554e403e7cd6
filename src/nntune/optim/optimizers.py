"""Optimizers by name, built on torch.optim.

Weight decay is not left to each optimizer: the engine applies it (see
:class:`nntune.optim.regularize.WeightDecay`), coupled (L2 added to the gradient) or decoupled
(AdamW-style shrinking of the weights), to weights only (biases and normalisation parameters are
never decayed, as timm and most tuning guides recommend), with an optional schedule. One
mechanism works the same for every optimizer, including those torch does not decay (L-BFGS) or
decays in only one of the two ways (SGD, Adam: coupled; AdamW: decoupled). The optimizers
themselves are therefore built with ``weight_decay=0``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from torch import nn

from nntune.errors import ConfigError
from nntune.registry import Registry
from nntune.validation import config_error

OptimizerBuilder = Callable[..., torch.optim.Optimizer]  # (options, param groups)
OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimizer")


class StepClosure(Protocol):
    """What the engine hands to ``step(closure)`` of an optimizer with ``needs_closure = True``.

    Calling it zeroes the gradients, runs forward on the current batch, computes the loss (with
    penalties) and backward, and returns the loss (detached). ``loss_of(params)`` is the same
    loss as a differentiable function of replacement tensors for the optimizer's parameters
    (in ``param_groups`` order), for optimizers that need more than gradients (Newton's
    Hessian via torch.func).
    """

    def __call__(self) -> torch.Tensor: ...

    def loss_of(self, params: Sequence[torch.Tensor]) -> torch.Tensor: ...


def needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """True for optimizers whose ``step`` re-evaluates the loss (L-BFGS, Newton)."""
    return bool(getattr(optimizer, "needs_closure", False))


class OptimizerOptions(BaseModel):
    """Options every optimizer takes."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(1e-3, gt=0.0, description="learning rate (the peak for one_cycle)")
    weight_decay: float = Field(0.0, ge=0.0, description="weight decay of weights (not biases)")
    decay: Literal["coupled", "decoupled"] = Field(
        "coupled",
        description="coupled: L2 term wd·w added to the gradient; decoupled: w ← w − lr·wd·w "
        "(AdamW)",
    )
    decay_schedule: Literal["constant", "follow_lr", "exponential"] = Field(
        "constant",
        description="weight decay over the run: constant, × the lr schedule's factor, or × "
        "decay_gamma per epoch",
    )
    decay_gamma: float = Field(0.9, gt=0.0, le=1.0, description="per-epoch factor (exponential)")


# options the engine's weight decay reads; the torch optimizers never see them
DECAY_OPTIONS = frozenset({"weight_decay", "decay", "decay_schedule", "decay_gamma"})


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
    weight_decay: float = Field(1e-2, ge=0.0, description="weight decay of weights (not biases)")
    decay: Literal["coupled", "decoupled"] = "decoupled"


class NadamOptions(OptimizerOptions):
    lr: float = Field(2e-3, gt=0.0)
    betas: Betas = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    momentum_decay: float = Field(4e-3, ge=0.0)


class RadamOptions(OptimizerOptions):
    betas: Betas = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)


FUSED = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, torch.optim.Adagrad)


def _fusable(groups: list[dict[str, Any]]) -> bool:
    """torch's fused kernels take floating-point parameters on the CPU or CUDA."""
    params = [p for g in groups for p in g["params"]]
    return bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params
    )


def _torch_optimizer(
    name: str,
    cls: type[torch.optim.Optimizer],
    options: type[OptimizerOptions],
    doc: str,
    aliases: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
) -> None:
    def build(opts: BaseModel, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        kwargs = opts.model_dump(exclude=set(DECAY_OPTIONS))
        # the engine decays; said explicitly because some torch optimizers decay by default
        # (AdamW: weight_decay=0.01), which would decay a second time
        kwargs["weight_decay"] = 0.0
        # the fused kernel where torch has one (Adam, AdamW, SGD, Adagrad on CPU and CUDA), else
        # the multi-tensor implementation: one C++ loop over all parameters instead of a
        # Python loop (torch picks neither by default on the CPU); the same update, less time
        # per step (a text run's 100k-row embedding: 28 ms per step with foreach, 8 fused)
        if cls in FUSED and _fusable(groups):
            kwargs["fused"] = True
        else:
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


# --- adabound (pytorch_optimizer) -----------------------------------------------------------


class AdaboundOptions(OptimizerOptions):
    final_lr: float = Field(
        0.1, gt=0.0, description="the SGD lr the bounds close in on (scaled like lr by schedules)"
    )
    gamma: float = Field(
        1e-3,
        gt=0.0,
        description="bound speed: final_lr·(1 − 1/(γt+1)) ≤ step ≤ final_lr·(1 + 1/(γt))",
    )
    betas: Betas = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    amsbound: bool = Field(False, description="AMSBound: bound the running maximum of v")


@OPTIMIZERS.register("adabound", options=AdaboundOptions)
def _adabound(opts: AdaboundOptions, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """AdaBound: Adam with per-weight steps in bounds that tighten to SGD (Luo et al. 2019).

    pytorch_optimizer's implementation (the authors' formulation: the bounds are scaled by the
    current lr over the initial lr, so schedules move them too). Its own weight decay is off:
    the engine decays.
    """
    from pytorch_optimizer import AdaBound  # imported here: the package takes ~1 s to import

    return AdaBound(
        groups,
        lr=opts.lr,
        final_lr=opts.final_lr,
        betas=opts.betas,
        gamma=opts.gamma,
        weight_decay=0.0,
        ams_bound=opts.amsbound,
        eps=opts.eps,
        # no foreach=: 4.x uses its multi-tensor path by default, 3.x does not take the argument
    )


# --- lookahead ------------------------------------------------------------------------------


class LookaheadOptions(OptimizerOptions):
    """Lookahead's own options; ``base`` names the wrapped optimizer with its options.

    The lr is one number, ``optimizer.lr`` (what schedules scale and searches tune): an ``lr``
    inside ``base`` is another way to give it, and without either the lr is the base optimizer's
    default (sgd: 0.01, adam: 0.001). Weight decay options belong to this level (the engine reads
    them here); unset, they are the base optimizer's defaults (adamw decays by 0.01, decoupled).
    The resolved form keeps the lr and decay here and every other option of the base in ``base``.
    """

    lr: float = Field(
        1e-3, gt=0.0, description="the base optimizer's lr (default: the base's own default)"
    )
    base: str | dict[str, Any] = Field(
        "adam",
        validate_default=True,
        description="the wrapped optimizer: a name, or {name: sgd, momentum: 0.9, ...}",
    )
    k: int = Field(5, ge=1, description="fast steps between synchronisations")
    alpha: float = Field(0.5, gt=0.0, le=1.0, description="slow ← slow + alpha·(fast − slow)")

    @field_validator("base", mode="before")
    @classmethod
    def _check_base(cls, value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise ValueError(
                "give the wrapped optimizer as a name (base: adam) or a mapping with name: "
                "(base: {name: sgd, lr: 0.1, momentum: 0.9})"
            )
        options = {k: v for k, v in value.items() if k != "name"}
        try:
            entry = OPTIMIZERS.get(value["name"])
        except ConfigError as err:
            raise ValueError(str(err).removeprefix(f"'{value['name']}': ")) from None
        if entry.name == "lookahead":
            raise ValueError("lookahead cannot wrap lookahead")
        if "full_batch" in entry.tags:
            raise ValueError(
                f"lookahead wraps mini-batch optimizers; '{entry.name}' is a full-batch "
                "optimizer (give it as optimizer.name instead)"
            )
        decay = sorted(DECAY_OPTIONS & set(options))
        if decay:
            raise ValueError(
                f"weight decay options ({', '.join(decay)}) belong to the lookahead level, not "
                "inside optimizer.base: write them next to 'name: lookahead', e.g. "
                "{name: lookahead, base: adamw, weight_decay: 0.01}"
            )
        try:
            parsed = entry.options.model_validate(options)
        except ValidationError as err:
            detail = config_error(err, entry.options, "optimizer.base")
            raise ValueError(f"{detail} [base optimizer '{entry.name}']") from None
        resolved = parsed.model_dump(mode="json", exclude={"lr", *DECAY_OPTIONS})
        if "lr" in options:
            resolved["lr"] = parsed.model_dump()["lr"]
        return {"name": entry.name, **resolved}

    @model_validator(mode="after")
    def _inherit_from_base(self) -> LookaheadOptions:
        assert isinstance(self.base, dict)
        base = dict(self.base)
        base_options = OPTIMIZERS.get(base["name"]).options
        given = self.model_fields_set
        if "lr" in base:
            lr = base.pop("lr")
            if "lr" in given and lr != self.lr:
                raise ValueError(
                    f"optimizer.lr = {self.lr} and optimizer.base.lr = {lr} disagree: give the lr "
                    "once (one lr drives the base optimizer)"
                )
            self.lr = lr
        elif "lr" not in given:
            self.lr = base_options.model_fields["lr"].default
        for name in DECAY_OPTIONS - given:
            setattr(self, name, base_options.model_fields[name].default)
        self.base = base
        return self


@OPTIMIZERS.register("lookahead", options=LookaheadOptions)
def _lookahead(opts: LookaheadOptions, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """Lookahead around a base optimizer: every k steps slow += α(fast − slow) (Zhang et al. 2019).

    ``{name: lookahead, base: adam, k: 5, alpha: 0.5}``; ``base`` is a name or a mapping with the
    base's options. The lr is ``optimizer.lr`` (or ``base.lr``; default: the base's default lr).
    """
    from nntune.optim.lookahead import Lookahead

    assert isinstance(opts.base, dict)
    entry = OPTIMIZERS.get(opts.base["name"])
    options = {k: v for k, v in opts.base.items() if k != "name"}
    base_opts = entry.parse_options({**options, "lr": opts.lr}, "optimizer.base")
    return Lookahead(entry.builder(base_opts, groups), k=opts.k, alpha=opts.alpha)


# --- full-batch, loss-evaluating ------------------------------------------------------------


class LbfgsOptions(OptimizerOptions):
    lr: float = Field(1.0, gt=0.0, description="step length (scales the line search's first try)")
    max_iter: int = Field(20, ge=1, description="L-BFGS iterations per optimizer step")
    max_eval: int | None = Field(
        None, ge=1, description="loss evaluations per step (default: 1.25 × max_iter)"
    )
    history_size: int = Field(10, ge=1, description="curvature pairs kept")
    line_search: Literal["strong_wolfe", "none"] = Field(
        "strong_wolfe", description="strong_wolfe, or none (fixed step lr)"
    )
    tolerance_grad: float = Field(1e-7, ge=0.0, description="stop when max |g| is below this")
    tolerance_change: float = Field(1e-9, ge=0.0, description="stop when loss/step change less")


@OPTIMIZERS.register("lbfgs", options=LbfgsOptions, aliases=("l-bfgs",), tags=("full_batch",))
def _lbfgs(opts: LbfgsOptions, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """L-BFGS (torch.optim.LBFGS), full batch: one step per epoch on the whole training set.

    Always full batch: its curvature pairs and line search assume the same function at every
    evaluation, which mini-batches break.
    """
    from nntune.optim.second_order import LBFGS

    return LBFGS(
        groups,
        lr=opts.lr,
        max_iter=opts.max_iter,
        max_eval=opts.max_eval,
        history_size=opts.history_size,
        line_search_fn=None if opts.line_search == "none" else opts.line_search,
        tolerance_grad=opts.tolerance_grad,
        tolerance_change=opts.tolerance_change,
    )


class NewtonOptions(OptimizerOptions):
    lr: float = Field(1.0, gt=0.0, description="step length (1: the full Newton step)")
    damping: float = Field(
        1e-4, ge=0.0, description="λ in (H + λI)⁻¹g: keeps the solve stable near singular H"
    )
    line_search: bool = Field(
        True, description="halve the step until the loss does not rise (at most max_halvings)"
    )
    max_halvings: int = Field(20, ge=0, description="halvings the line search tries")
    max_params: int = Field(
        2000, ge=1, description="refuse models with more parameters (the Hessian is n × n)"
    )


@OPTIMIZERS.register("newton", options=NewtonOptions, tags=("full_batch",))
def _newton(opts: NewtonOptions, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """Exact Newton's method (full Hessian via torch.func), full batch, small models only.

    θ ← θ − lr·(H + damping·I)⁻¹g, one step per epoch on the whole training set, with a
    backtracking line search; where H + damping·I is not positive definite (non-convex losses)
    the step uses |H| (saddle-free Newton). Written by hand: torch has no Newton optimizer.
    Refuses models above ``max_params`` parameters (use lbfgs for those).
    """
    from nntune.optim.second_order import Newton

    return Newton(
        groups,
        lr=opts.lr,
        damping=opts.damping,
        line_search=opts.line_search,
        max_halvings=opts.max_halvings,
        max_params=opts.max_params,
    )


def is_no_decay(name: str, param: nn.Parameter) -> bool:
    """Biases and normalisation scales/shifts (all 1-D tensors) get no decay or penalty."""
    return param.dim() <= 1 or name.endswith(".bias")


def parameter_groups(
    model: nn.Module, scales: Mapping[str, float] | None = None
) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: one group of every trainable parameter (empty: none),
    or with ``scales`` (parameter name → lr multiplier, :func:`nntune.optim.groups.lr_scales`)
    one group per multiplier, the unscaled one first, each marked with its ``lr_scale``.

    One group is one loop per optimizer step; decay needs no second group because the engine
    applies it to :func:`decayed_parameters` itself.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        return []
    if not scales:
        return [{"params": [p for _, p in named]}]
    by_scale: dict[float, list[nn.Parameter]] = {}
    for name, param in named:
        by_scale.setdefault(scales.get(name, 1.0), []).append(param)
    order = sorted(by_scale, key=lambda scale: scale != 1.0)  # the unscaled group first
    return [{"params": by_scale[scale], "lr_scale": scale} for scale in order]


def build_optimizer(
    name: str,
    options: BaseModel,
    model: nn.Module,
    scales: Mapping[str, float] | None = None,
) -> torch.optim.Optimizer:
    """The optimizer ``name`` with validated ``options`` over ``model``'s parameters; with
    ``scales``, layer-wise learning rates (each group's lr is the optimizer's × its scale)."""
    entry = OPTIMIZERS.get(name, key="optimizer")
    groups = parameter_groups(model, scales)
    if not groups:
        raise ConfigError("optimizer: the model has no trainable parameters")
    if len(groups) > 1 and "full_batch" in entry.tags:
        raise ConfigError(
            f"train.layer_lr: optimizer '{entry.name}' takes one learning rate for the whole "
            "model; use a mini-batch optimizer (adam, adamw, sgd, momentum, ...)"
        )
    optimizer = entry.builder(options, groups)
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
    return optimizer


def decayed_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters weight decay and L1/L2 penalties apply to (weights, not biases or norms)."""
    return [p for n, p in model.named_parameters() if p.requires_grad and not is_no_decay(n, p)]
