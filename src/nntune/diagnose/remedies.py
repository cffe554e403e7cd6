"""Remedies: the textbook fixes of each problem kind, as config changes in order of preference.

A remedy is a function of the config that returns the ``{dotted key: value}`` overrides that
apply it, or None when it does not apply (switching to ReLU when the model already uses ReLU).
The doctor tries them in order and keeps only those a re-trained run verifies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nntune.config import Config

Changes = dict[str, Any]


@dataclass(frozen=True)
class Remedy:
    label: str  # what a user reads: "activation relu"
    changes: Callable[[Config], Changes | None]


def _lr(config: Config) -> float:
    return float(config.optimizer.options.get("lr", 1e-3))


def _scale_lr(factor: float) -> Callable[[Config], Changes]:
    return lambda c: {"optimizer.lr": float(f"{_lr(c) * factor:.3g}")}


def _set(
    key: str, value: Any, unless: Callable[[Config], bool] | None = None
) -> Callable[[Config], Changes | None]:
    def changes(config: Config) -> Changes | None:
        if unless is not None and unless(config):
            return None
        return {key: value}

    return changes


def _activation_is(*names: str) -> Callable[[Config], bool]:
    return lambda c: c.model.activation.name in names


def _has_scaling(config: Config) -> bool:
    return any(
        p.name in ("standardize", "minmax", "whiten", "pca_whiten") for p in config.data.preprocess
    )


def _add_standardize(config: Config) -> Changes | None:
    if _has_scaling(config):
        return None
    steps = [p.model_dump() if p.options else p.name for p in config.data.preprocess]
    return {"data.preprocess": [*steps, "standardize"]}


def _add_impute(config: Config) -> Changes | None:
    if any(p.name == "impute" for p in config.data.preprocess):
        return None
    steps = [p.model_dump() if p.options else p.name for p in config.data.preprocess]
    return {"data.preprocess": [{"name": "impute", "strategy": "median"}, *steps]}


def _widen(factor: float) -> Callable[[Config], Changes | None]:
    def changes(config: Config) -> Changes | None:
        hidden = config.model.hidden
        if not hidden:
            return None
        return {"model.hidden": [max(4, int(h * factor)) for h in hidden]}

    return changes


def _deeper(config: Config) -> Changes | None:
    hidden = config.model.hidden
    if not hidden or config.model.arch.name != "mlp":
        return None
    return {"model.hidden": [*hidden, hidden[-1]]}


def _class_weights(config: Config) -> Changes | None:
    if config.loss.name not in ("cross_entropy", "auto", "focal", "hinge", "bce"):
        return None
    name = "cross_entropy" if config.loss.name == "auto" else config.loss.name
    return {"loss": {**config.loss.options, "name": name, "class_weights": "balanced"}}


def _weight_decay(config: Config) -> Changes:
    return {"optimizer.weight_decay": 1e-2, "optimizer.decay": "decoupled"}


def _longer(config: Config) -> Changes:
    return {"train.epochs": config.train.epochs * 2}


def _no_regularization(config: Config) -> Changes | None:
    changes: Changes = {}
    if config.model.dropout > 0:
        changes["model.dropout"] = 0.0
    if float(config.optimizer.options.get("weight_decay", 0.0)) > 0:
        changes["optimizer.weight_decay"] = 0.0
    if config.regularization.l1 or config.regularization.l2 or config.regularization.elastic_net:
        changes["regularization"] = {"l1": 0.0, "l2": 0.0, "elastic_net": 0.0}
    return changes or None


REMEDIES: dict[str, list[Remedy]] = {
    "nan_loss": [
        Remedy("lower lr ÷10", _scale_lr(0.1)),
        Remedy("clip gradients (norm 1)", _set("train.grad_clip", {"norm": 1.0})),
        Remedy("standardize inputs", _add_standardize),
    ],
    "exploding_gradients": [
        Remedy("clip gradients (norm 1)", _set("train.grad_clip", {"norm": 1.0})),
        Remedy("lower lr ÷10", _scale_lr(0.1)),
        Remedy("init xavier_normal", _set("model.init", "xavier_normal")),
        Remedy("norm batch", _set("model.norm", "batch", lambda c: c.model.norm == "batch")),
    ],
    "vanishing_gradients": [
        Remedy(
            "activation relu",
            _set(
                "model.activation",
                "relu",
                _activation_is("relu", "leaky_relu", "gelu", "elu", "silu"),
            ),
        ),
        Remedy("init kaiming_normal", _set("model.init", "kaiming_normal")),
        Remedy("norm batch", _set("model.norm", "batch", lambda c: c.model.norm == "batch")),
        Remedy("residual connections", _set("model.residual", True, lambda c: c.model.residual)),
    ],
    "dying_relu": [
        Remedy(
            "activation leaky_relu",
            _set("model.activation", "leaky_relu", _activation_is("leaky_relu", "gelu", "elu")),
        ),
        Remedy("lower lr ÷10", _scale_lr(0.1)),
        Remedy("init kaiming_normal", _set("model.init", "kaiming_normal")),
    ],
    "saturated_activations": [
        Remedy("norm batch", _set("model.norm", "batch", lambda c: c.model.norm == "batch")),
        Remedy("init xavier_normal", _set("model.init", "xavier_normal")),
        Remedy(
            "activation relu",
            _set("model.activation", "relu", _activation_is("relu", "leaky_relu", "gelu")),
        ),
        Remedy("standardize inputs", _add_standardize),
    ],
    "oscillating_loss": [
        Remedy("lower lr ÷10", _scale_lr(0.1)),
        Remedy("lower lr ÷3", _scale_lr(1 / 3)),
        Remedy("warmup 10% + cosine", _set("schedule", {"name": "cosine", "warmup": 0.1})),
        Remedy("larger batch ×4", lambda c: {"train.batch_size": c.train.batch_size * 4}),
    ],
    "slow_convergence": [
        Remedy("higher lr ×10", _scale_lr(10.0)),
        Remedy(
            "optimizer adam",
            _set(
                "optimizer",
                {"name": "adam", "lr": 1e-3},
                lambda c: c.optimizer.name in ("adam", "adamw"),
            ),
        ),
        Remedy("higher lr ×3", _scale_lr(3.0)),
    ],
    "overfitting": [
        Remedy("weight decay 0.01 (decoupled)", _weight_decay),
        Remedy("dropout 0.3", _set("model.dropout", 0.3, lambda c: c.model.dropout >= 0.3)),
        Remedy(
            "early stopping",
            _set(
                "train.early_stopping",
                {"patience": 5},
                lambda c: c.train.early_stopping is not None,
            ),
        ),
        Remedy(
            "augment: noise",
            _set("data.augment", [{"name": "noise", "std": 0.1}], lambda c: bool(c.data.augment)),
        ),
        Remedy("smaller model ½", _widen(0.5)),
    ],
    "underfitting": [
        Remedy("larger model ×2", _widen(2.0)),
        Remedy("deeper model (+1 layer)", _deeper),
        Remedy("less regularization", _no_regularization),
        Remedy("longer training ×2", _longer),
    ],
    "data_issue": [
        Remedy("standardize inputs", _add_standardize),
        Remedy("impute missing values", _add_impute),
        Remedy("class weights balanced", _class_weights),
    ],
}


def remedies_for(kind: str, config: Config) -> list[tuple[str, Changes]]:
    """The remedies of ``kind`` that apply to ``config``, with their changes, in order."""
    found = []
    for remedy in REMEDIES.get(kind, []):
        changes = remedy.changes(config)
        if changes:
            found.append((remedy.label, changes))
    return found
