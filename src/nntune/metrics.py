"""Metrics, computed with scikit-learn from targets and model outputs.

Classification metrics take predicted labels (accuracy, f1) or class probabilities (auc);
regression metrics take predictions. All are logged as ``train_<name>``, ``val_<name>``,
``test_<name>``.

A user's metric is a reference in ``train.metrics`` (``metrics.py:dice``): a function
``(y_true, y_pred) -> float`` on NumPy arrays, like scikit-learn's metrics, logged under its own
name (``val_dice``). ``y_pred`` is the predicted classes (classification) or the predictions
(regression); a function whose second parameter is named ``y_prob``, ``y_score`` or
``probabilities`` gets the class probabilities instead. Whether higher is better is read from
the name, as for the built-ins (``loss``, ``error``... are minimized).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from nntune.errors import ConfigError, did_you_mean
from nntune.usercode import (
    UserCodeError,
    is_reference,
    load_object,
    parameters,
    short_name,
    user_traceback,
)

MetricFn = Callable[[np.ndarray, np.ndarray], float]


def _accuracy(y: np.ndarray, labels: np.ndarray) -> float:
    # the fraction of matches is what sklearn.metrics.accuracy_score computes; done directly
    # because it runs every epoch and sklearn's input checks cost more than the comparison
    return float(np.mean(labels == y))


def _f1(y: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, labels, average="macro", zero_division=0))


def _auc(y: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    present = np.unique(y)
    if len(present) < 2:
        return math.nan  # undefined with a single class
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if probs.shape[1] == 2:
            return float(roc_auc_score(y, probs[:, 1]))
        if len(present) < probs.shape[1]:
            return math.nan  # one-vs-rest needs every class present
        return float(roc_auc_score(y, probs, multi_class="ovr", labels=np.arange(probs.shape[1])))


def _rmse(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import mean_squared_error

    return float(math.sqrt(mean_squared_error(y, pred)))


def _mae(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(y, pred))


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import r2_score

    if len(y) < 2:
        return math.nan
    return float(r2_score(y, pred))


# classification metrics that read class probabilities; the others read predicted labels
PROBABILITY_METRICS = frozenset({"auc"})

METRICS: dict[str, dict[str, MetricFn]] = {
    "classification": {"accuracy": _accuracy, "f1": _f1, "auc": _auc},
    "regression": {"rmse": _rmse, "mae": _mae, "r2": _r2},
}


def trivial_score(task: str, y_train: np.ndarray, y_eval: np.ndarray) -> float:
    """The task's headline metric (accuracy; rmse) of a model that ignores its inputs: the
    training part's most frequent class, or its mean (per output), predicted for every sample of
    ``y_eval``. A run that does not beat it has learned nothing from the inputs. With no
    training targets (a user's torch Dataset) the evaluated part's own majority or mean is used,
    which is, if anything, a harder floor."""
    if len(y_eval) == 0:
        return math.nan
    fitted_on = y_train if len(y_train) else y_eval
    if task == "classification":
        values, counts = np.unique(fitted_on, return_counts=True)
        return _accuracy(y_eval, np.full(len(y_eval), values[np.argmax(counts)]))
    mean = np.mean(fitted_on.astype(float), axis=0)
    return _rmse(y_eval, np.broadcast_to(mean, y_eval.shape))


def headline(metrics: dict[str, Any] | None) -> str:
    """One line of a run's metrics: its accuracy, else its rmse ("-" without either)."""
    if not metrics:
        return "-"
    key = "accuracy" if "accuracy" in metrics else "rmse" if "rmse" in metrics else None
    return f"{key} {metrics[key]:.4f}" if key and metrics[key] is not None else "-"


def metric_names(task: str) -> list[str]:
    return list(METRICS[task])


def epoch_metric_names(task: str) -> list[str]:
    """What is logged every epoch unless train.metrics says otherwise: the task's headline
    metric only. The rest (f1, auc; mae, r2) are in the summary of every run; per epoch they
    cost more than a small model's whole epoch (roc_auc_score over 10 classes: ~8 ms)."""
    return ["accuracy"] if task == "classification" else ["rmse"]


PROBABILITY_PARAMETERS = ("y_prob", "y_score", "probabilities", "y_proba")


def user_metric(reference: str, key: str = "train.metrics") -> tuple[MetricFn, bool]:
    """A user's metric function and whether it reads class probabilities."""
    fn = load_object(reference, key)
    params = parameters(fn) if callable(fn) else []
    if len(params) < 2:
        raise ConfigError(
            f"{key}: '{reference}' must be a function (y_true, y_pred) -> float, like "
            "scikit-learn's metrics"
        )
    return fn, params[1].name in PROBABILITY_PARAMETERS


def check_metrics(names: list[str], task: str) -> list[str]:
    known = METRICS[task]
    for name in names:
        if is_reference(name):
            user_metric(name)
        elif name not in known:
            raise ConfigError(
                f"train.metrics: '{name}' is not a {task} metric{did_you_mean(name, known)} "
                f"(allowed: {', '.join(known)}, or your own as path.py:name)"
            )
    keys = [short_name(n) for n in names]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"train.metrics: two metrics are named {twice[0]}")
    return names


def summary_metrics(task: str, chosen: list[str] | None) -> list[str]:
    """What a run's summary scores: every built-in metric of the task and the user's own."""
    return [*METRICS[task], *(n for n in chosen or [] if is_reference(n))]


def needs_probabilities(task: str, names: list[str] | None) -> bool:
    """Whether any of ``names`` (default: all) reads class probabilities."""
    chosen = METRICS[task] if names is None else names
    if task != "classification":
        return False
    return bool(PROBABILITY_METRICS & set(chosen)) or any(
        user_metric(n)[1] for n in chosen if is_reference(n)
    )


def compute_metrics(
    task: str,
    y_true: np.ndarray,
    outputs: np.ndarray | None,
    names: list[str] | None = None,
    labels: np.ndarray | None = None,
) -> dict[str, float]:
    """``{name: value}`` for ``names`` (default: all metrics of the task).

    ``outputs`` are class probabilities (classification) or predictions (regression).
    ``labels`` are the predicted classes (default: the arg-max of the probabilities); with
    them, probabilities are only needed for the metrics that read them.
    """
    table = METRICS[task]
    names = list(table) if names is None else names
    if task == "classification" and labels is None:
        assert outputs is not None, "classification metrics need labels or probabilities"
        labels = outputs.argmax(axis=1)
    values = {}
    for name in names:
        if is_reference(name):
            fn, reads_probabilities = user_metric(name)
            reads = outputs if reads_probabilities or task != "classification" else labels
            values[short_name(name)] = _call_user_metric(fn, name, y_true, reads)
        elif task != "classification":
            assert outputs is not None
            values[name] = table[name](y_true, outputs)
        elif name in PROBABILITY_METRICS:
            assert outputs is not None, f"metric {name} needs class probabilities"
            values[name] = table[name](y_true, outputs)
        else:
            assert labels is not None
            values[name] = table[name](y_true, labels)
    return values


def _call_user_metric(fn: MetricFn, name: str, y_true: np.ndarray, y_pred: Any) -> float:
    try:
        return float(fn(y_true, y_pred))
    except Exception as err:
        raise UserCodeError(f"train.metrics: '{name}' failed:\n{user_traceback(err)}") from err
