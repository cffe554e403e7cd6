"""Loss functions by name. Each knows which task it serves, how many outputs it wants, and how
to turn model outputs into class probabilities."""

from __future__ import annotations

import inspect
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from nntune.errors import ConfigError
from nntune.registry import Entry, Registry, user_entry
from nntune.usercode import call_with, load_object, options_model


class Loss:
    """``loss(outputs, targets)`` → scalar, plus how outputs are read. ``task`` None: a loss
    for either task (a user's own)."""

    task: str | None = "classification"

    def __init__(
        self,
        options: BaseModel,
        class_weights: torch.Tensor | None = None,
        facts: dict[str, Any] | None = None,  # the task and outputs, for a user's loss
    ) -> None:
        self.options = options
        self.class_weights = class_weights

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def n_outputs(self, n_classes_or_targets: int) -> int:
        return n_classes_or_targets

    def probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, K) from outputs; softmax unless the loss says otherwise."""
        return torch.softmax(outputs.float(), dim=1)

    def predict_labels(self, outputs: torch.Tensor) -> torch.Tensor:
        """The predicted classes: the arg-max of the outputs (the probabilities are monotone in
        them, so this needs no softmax)."""
        return outputs.argmax(dim=1)

    def reduce(self, per_sample: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean over samples; with class weights the weighted mean Σw·l / Σw, the
        convention of torch's cross_entropy, so every loss weights classes the same way."""
        if self.class_weights is None:
            return per_sample.mean()
        weights = self.class_weights[targets]
        return (weights * per_sample).sum() / weights.sum()

    def to(self, device: torch.device) -> Loss:
        if self.class_weights is not None:
            self.class_weights = self.class_weights.to(device)
        return self


LOSSES: Registry[type[Loss]] = Registry("loss", plural="losses")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassOptions(_Options):
    class_weights: Literal["balanced"] | list[float] | None = Field(
        None, description="per-class weights, or 'balanced' (inverse class frequency)"
    )


class CrossEntropyOptions(ClassOptions):
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)


@LOSSES.register("cross_entropy", options=CrossEntropyOptions, aliases=("ce", "nll"))
class CrossEntropy(Loss):
    """Softmax cross-entropy, optionally with label smoothing (Szegedy et al. 2016)."""

    options: CrossEntropyOptions

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            outputs,
            targets,
            weight=self.class_weights,
            label_smoothing=self.options.label_smoothing,
        )


@LOSSES.register("bce", options=ClassOptions, aliases=("binary_cross_entropy",))
class BinaryCrossEntropy(Loss):
    """Sigmoid cross-entropy: one logit for two classes, one per class (one-vs-rest) beyond."""

    def n_outputs(self, n_classes_or_targets: int) -> int:
        return 1 if n_classes_or_targets == 2 else n_classes_or_targets

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if outputs.shape[1] == 1:
            target = targets.to(outputs.dtype).unsqueeze(1)
        else:
            target = F.one_hot(targets, outputs.shape[1]).to(outputs.dtype)
        if self.class_weights is None:
            return F.binary_cross_entropy_with_logits(outputs, target)
        per_sample = F.binary_cross_entropy_with_logits(outputs, target, reduction="none")
        return self.reduce(per_sample.mean(dim=1), targets)

    def predict_labels(self, outputs: torch.Tensor) -> torch.Tensor:
        if outputs.shape[1] == 1:
            return (outputs[:, 0] > 0).long()
        return outputs.argmax(dim=1)

    def probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(outputs.float())
        if p.shape[1] == 1:
            return torch.cat([1.0 - p, p], dim=1)
        return p / p.sum(dim=1, keepdim=True).clamp_min(1e-12)


class FocalOptions(ClassOptions):
    gamma: float = Field(2.0, ge=0.0, description="focusing parameter; 0 gives cross-entropy")
    alpha: float | None = Field(
        None, gt=0.0, lt=1.0, description="weight of the positive class (binary tasks)"
    )


@LOSSES.register("focal", options=FocalOptions)
class Focal(Loss):
    """Focal loss -(1-p_t)^γ log p_t (Lin et al. 2017): down-weights easy examples."""

    options: FocalOptions

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(outputs, dim=1).gather(1, targets.unsqueeze(1)).squeeze(1)
        # 1 - p_t as -expm1(log p_t): exact for confident samples; the clamp keeps the gradient
        # of x^γ finite where p_t rounds to 1 (γ < 1 has an infinite slope at 0)
        easiness = (-torch.expm1(log_p)).clamp_min(1e-12)
        loss = -(easiness**self.options.gamma) * log_p
        if self.options.alpha is not None:
            alpha = torch.where(targets == 1, self.options.alpha, 1.0 - self.options.alpha)
            loss = loss * alpha
        return self.reduce(loss, targets)


class HingeOptions(ClassOptions):
    margin: float = Field(1.0, gt=0.0, description="the margin Δ")


@LOSSES.register("hinge", options=HingeOptions, aliases=("multi_margin", "svm"))
class Hinge(Loss):
    """Multi-class hinge (Weston-Watkins): Σ_{j≠y} max(0, s_j - s_y + Δ), averaged over samples."""

    options: HingeOptions

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        true_score = outputs.gather(1, targets.unsqueeze(1))
        margins = (outputs - true_score + self.options.margin).clamp_min(0.0)
        margins = margins.scatter(1, targets.unsqueeze(1), 0.0)
        return self.reduce(margins.sum(dim=1), targets)


class RegressionLoss(Loss):
    task = "regression"


@LOSSES.register("mse", options=_Options, aliases=("l2", "mean_squared_error"))
class MeanSquaredError(RegressionLoss):
    """Mean squared error."""

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs, targets)


@LOSSES.register("mae", options=_Options, aliases=("l1", "mean_absolute_error"))
class MeanAbsoluteError(RegressionLoss):
    """Mean absolute error."""

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(outputs, targets)


class HuberOptions(_Options):
    delta: float = Field(1.0, gt=0.0)


@LOSSES.register("huber", options=HuberOptions, aliases=("smooth_l1",))
class Huber(RegressionLoss):
    """Huber loss: quadratic within delta, linear beyond."""

    options: HuberOptions

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.huber_loss(outputs, targets, delta=self.options.delta)


def default_loss(task: str) -> str:
    return "cross_entropy" if task == "classification" else "mse"


def build_loss(
    name: str, options: BaseModel, task: str, train_labels: torch.Tensor | None, n_classes: int
) -> Loss:
    """The loss ``name`` for ``task``; 'balanced' class weights come from the training labels."""
    entry = LOSSES.get(name, key="loss")
    cls = entry.builder
    if cls.task is not None and cls.task != task:
        fitting = [e.name for e in LOSSES.entries() if e.builder.task == task]
        raise ConfigError(
            f"loss = '{entry.name}' is a {cls.task} loss but data.task is {task}; "
            f"use one of: {', '.join(fitting)}"
        )
    if getattr(options, "alpha", None) is not None and n_classes != 2:
        raise ConfigError(
            f"loss.alpha weights the positive class of a binary task, but this task has "
            f"{n_classes} classes; use loss.class_weights for several classes"
        )
    weights = getattr(options, "class_weights", None)
    tensor = None
    if weights == "balanced" and train_labels is not None:
        counts = torch.bincount(train_labels, minlength=n_classes).float()
        tensor = counts.sum() / (n_classes * counts.clamp_min(1.0))
    elif isinstance(weights, list):
        if len(weights) != n_classes:
            raise ConfigError(
                f"loss.class_weights has {len(weights)} values for {n_classes} classes"
            )
        tensor = torch.tensor(weights, dtype=torch.float32)
    return cls(options, tensor, {"task": task, "n_outputs": n_classes})


LOSS_FACTS = ("task", "n_outputs")


@LOSSES.references
def user_loss(reference: str, key: str) -> Entry[Any]:
    """``loss: {name: losses.py:dice_loss, smooth: 1.0}``: a function ``(outputs, targets,
    **options) -> scalar tensor``, or a class (an ``nn.Module`` loss) built with the options and
    called with ``(outputs, targets)``. Outputs are read as for the task (softmax and arg-max for
    classes) unless the loss object has methods ``probabilities``, ``predict_labels`` or
    ``n_outputs`` of its own."""
    target = load_object(reference, key)
    is_class = inspect.isclass(target)
    skip = 0 if is_class else 2  # a function's first two parameters are outputs and targets

    class UserLoss(Loss):
        task = None  # either

        def __init__(
            self,
            options: BaseModel,
            class_weights: torch.Tensor | None = None,
            facts: dict[str, Any] | None = None,
        ) -> None:
            super().__init__(options, class_weights)
            values, facts = options.model_dump(), facts or {}
            if is_class:
                self.fn = call_with(target, values, facts, reference, key)
            else:
                asked = {k: v for k, v in facts.items() if k in _names(target, skip)}
                self.fn = lambda out, y: target(out, y, **values, **asked)

        def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            value = self.fn(outputs, targets)
            return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)

        def n_outputs(self, n_classes_or_targets: int) -> int:
            own = getattr(self.fn, "n_outputs", None)
            return int(own(n_classes_or_targets)) if callable(own) else n_classes_or_targets

        def probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
            own = getattr(self.fn, "probabilities", None)
            return own(outputs) if callable(own) else super().probabilities(outputs)

        def predict_labels(self, outputs: torch.Tensor) -> torch.Tensor:
            own = getattr(self.fn, "predict_labels", None)
            return own(outputs) if callable(own) else super().predict_labels(outputs)

        def to(self, device: torch.device) -> Loss:
            if isinstance(self.fn, torch.nn.Module):
                self.fn.to(device)
            return super().to(device)

    return user_entry(
        reference,
        target,
        UserLoss,
        options_model(target, reference, LOSS_FACTS, skip=skip),
        LOSS_FACTS,
    )


def _names(fn: Any, skip: int) -> set[str]:
    from nntune.usercode import parameters

    return {p.name for p in parameters(fn, skip)}
