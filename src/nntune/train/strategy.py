"""Training strategies (``strategy:`` in the config): what changes in each training step
besides the hyperparameters. A strategy may transform the batch before the forward pass
(adversarial training) and change the loss after it (distillation).

- ``none``: plain training.
- ``distill``: knowledge distillation (Hinton et al. 2015) from a teacher run folder: the loss
  is ``alpha · T² · KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − alpha) · hard loss``.
  The teacher sees the student's (preprocessed, augmented) batch, so it must have been trained
  on the same features with the same fitted preprocessing (checked).
- ``adversarial``: a fraction of every batch is replaced by its FGSM or PGD adversarial
  examples (:mod:`nntune.train.attacks`), mixed clean/adversarial training (Madry et al. 2018).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nntune.data.augment import Batch
from nntune.errors import ConfigError
from nntune.losses import Loss
from nntune.registry import Registry
from nntune.train.attacks import attack
from nntune.train.checkpoint import same_state


class TrainingStrategy:
    """Plain training: both hooks leave things as they are."""

    def transform(
        self, model: nn.Module, loss: Loss, batch: Batch, generator: torch.Generator
    ) -> Batch:
        return batch

    def objective(self, outputs: torch.Tensor, batch: Batch, loss: torch.Tensor) -> torch.Tensor:
        return loss


StrategyBuilder = Any  # (options, context) -> TrainingStrategy
STRATEGIES: Registry[StrategyBuilder] = Registry("strategy", plural="strategies")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


@STRATEGIES.register("none", aliases=("plain",))
def plain(options: BaseModel, context: dict[str, Any]) -> TrainingStrategy:
    """Plain training."""
    return TrainingStrategy()


class DistillOptions(_Options):
    teacher: str = Field(..., description="run folder of the teacher model")
    temperature: float = Field(4.0, gt=0.0, description="softening temperature T")
    alpha: float = Field(0.7, ge=0.0, le=1.0, description="weight of the soft (teacher) loss")
    checkpoint: Literal["best", "last"] = "best"
    trust_code: bool = Field(
        False,
        description="the teacher run names user code: import it (from the run's own copies)",
    )


class Distillation(TrainingStrategy):
    def __init__(self, teacher: nn.Module, temperature: float, alpha: float) -> None:
        self.teacher = teacher.eval()
        for param in self.teacher.parameters():
            param.requires_grad_(False)
        self.temperature = temperature
        self.alpha = alpha

    def objective(self, outputs: torch.Tensor, batch: Batch, loss: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        with torch.no_grad():
            soft_targets = F.softmax(self.teacher(batch.x).float() / t, dim=1)
        log_student = F.log_softmax(outputs.float() / t, dim=1)
        # T² keeps the soft gradients' scale independent of T (Hinton et al.)
        soft = F.kl_div(log_student, soft_targets, reduction="batchmean") * t * t
        return self.alpha * soft + (1.0 - self.alpha) * loss


@STRATEGIES.register("distill", options=DistillOptions, aliases=("distillation",))
def distill(options: DistillOptions, context: dict[str, Any]) -> TrainingStrategy:
    """Knowledge distillation from a teacher run folder (softened logits + hard labels)."""
    from nntune.train.predictor import load_run

    if context["task"] != "classification":
        raise ConfigError("strategy distill: distillation of class probabilities needs a "
                          "classification task")  # fmt: skip
    teacher = load_run(Path(options.teacher), options.checkpoint, options.trust_code)
    meta, bundle = teacher.meta, context["bundle"]
    problems = []
    if list(meta.get("sample_shape", [])) != list(bundle.sample_shape):
        problems.append(f"input shape {meta.get('sample_shape')} vs {list(bundle.sample_shape)}")
    if meta.get("n_outputs") != bundle.n_outputs:
        problems.append(f"{meta.get('n_outputs')} classes vs {bundle.n_outputs}")
    if (meta.get("class_names") or None) != (bundle.class_names or None):
        problems.append("other class names")
    saved = meta.get("pipeline")
    fitted = bundle.pipeline.state_dict() if bundle.pipeline is not None else None
    same = saved is None and fitted is None
    if saved is not None and fitted is not None:
        same = same_state(saved, fitted)
    if not same:
        problems.append("other fitted preprocessing (data section or split differ)")
    if problems:
        raise ConfigError(
            f"strategy.teacher '{options.teacher}': the teacher does not take this run's "
            f"inputs: {'; '.join(problems)}. Train the teacher on the same data section and "
            "seed (or data.split_seed)"
        )
    device = context["device"]
    return Distillation(teacher.model.to(device), options.temperature, options.alpha)


class AdversarialOptions(_Options):
    method: Literal["fgsm", "pgd"] = "pgd"
    eps: float = Field(0.1, gt=0.0, description="perturbation budget (preprocessed units)")
    steps: int = Field(5, ge=1, description="PGD steps")
    step_size: float | None = Field(None, gt=0.0, description="PGD step (default 2.5·eps/steps)")
    norm: Literal["linf", "l2"] = "linf"
    fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="share of each batch replaced by adversarial examples"
    )


class Adversarial(TrainingStrategy):
    def __init__(self, options: AdversarialOptions) -> None:
        self.options = options

    def transform(
        self, model: nn.Module, loss: Loss, batch: Batch, generator: torch.Generator
    ) -> Batch:
        o = self.options
        n = max(1, round(o.fraction * len(batch.x)))
        x_adv = attack(
            model, loss, batch.x[:n], batch.y[:n], method=o.method, eps=o.eps, steps=o.steps,
            step_size=o.step_size, norm=o.norm, generator=generator,
        )  # fmt: skip
        return replace(batch, x=torch.cat([x_adv, batch.x[n:]]))


@STRATEGIES.register("adversarial", options=AdversarialOptions, aliases=("adv",))
def adversarial(options: AdversarialOptions, context: dict[str, Any]) -> TrainingStrategy:
    """Adversarial training: a share of each batch replaced by FGSM/PGD examples."""
    return Adversarial(options)


def build_strategy(
    name: str, options: BaseModel, context: dict[str, Any]
) -> TrainingStrategy | None:
    """The strategy object of a config (None for plain training: the engine skips the hooks)."""
    entry = STRATEGIES.get(name, key="strategy")
    if entry.name == "none":
        return None
    built: TrainingStrategy = entry.builder(options, context)
    return built
