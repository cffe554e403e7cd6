"""The full set of evaluation metrics of a split, computed with scikit-learn.

The headline names are those of the contract and of ``summary.json`` (``accuracy``, ``f1``,
``auc``; ``rmse``, ``mae``, ``r2``) and mean exactly what they mean there, so an evaluation of
the checkpoint a summary measured gives the same numbers; the rest (macro precision and recall,
PR-AUC, log loss, the per-class table and the confusion matrix) come on top.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: undefined values are written as null."""
    value = float(value)
    return value if math.isfinite(value) else None


def classification_scores(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    labels: np.ndarray | None = None,
    class_names: list[str] | None = None,
) -> dict[str, Any]:
    """``{"metrics", "per_class", "confusion_matrix"}`` of class codes ``y_true`` (N,) against
    class probabilities (N, K) and the predicted classes ``labels`` (default: their arg-max).

    - ``accuracy``: ``accuracy_score``
    - ``precision``, ``recall``, ``f1``: macro averages over the classes present in the targets
      or the predictions (scikit-learn's default label set, as ``summary.json``'s ``f1``)
    - ``auc``: ROC-AUC, ``roc_auc_score`` of the positive class (binary) or one-vs-rest macro
      (multi-class; undefined unless every class occurs in the targets)
    - ``pr_auc``: ``average_precision_score``, macro over the classes present in the targets
    - ``log_loss``: ``log_loss`` of the probabilities (renormalised in float64)
    - ``per_class``: precision, recall, f1 and support of every class, present or not
    """
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        confusion_matrix,
        log_loss,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(y):
        raise ValueError(f"probabilities of shape {probs.shape} do not match {len(y)} targets")
    k = probs.shape[1]
    pred = probs.argmax(axis=1) if labels is None else np.asarray(labels).reshape(-1)
    every = np.arange(k)
    present = np.unique(y)
    names = class_names if class_names and len(class_names) == k else [str(i) for i in every]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined cases become NaN/0 and are said so below
        precision, recall, f1, _ = precision_recall_fscore_support(
            y, pred, average="macro", zero_division=0
        )
        p_cls, r_cls, f_cls, support = precision_recall_fscore_support(
            y, pred, labels=every, average=None, zero_division=0
        )
        if len(present) < 2:
            auc = pr_auc = math.nan  # a single class: ranking metrics are undefined
        elif k == 2:
            auc = roc_auc_score(y, probs[:, 1])
            pr_auc = average_precision_score(y, probs[:, 1])
        else:
            auc = (
                roc_auc_score(y, probs, multi_class="ovr", labels=every)
                if len(present) == k
                else math.nan
            )
            onehot = (y[:, None] == every[None, :]).astype(np.int64)
            pr_auc = average_precision_score(onehot[:, present], probs[:, present], average="macro")
        normalised = np.clip(probs, 1e-15, None)
        normalised = normalised / normalised.sum(axis=1, keepdims=True)
        loss = log_loss(y, normalised, labels=every) if len(y) else math.nan

    metrics = {
        "accuracy": accuracy_score(y, pred) if len(y) else math.nan,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": auc,
        "pr_auc": pr_auc,
        "log_loss": loss,
    }
    per_class = [
        {
            "class": names[i],
            "precision": float(p_cls[i]),
            "recall": float(r_cls[i]),
            "f1": float(f_cls[i]),
            "support": int(support[i]),
        }
        for i in range(k)
    ]
    return {
        "metrics": {key: finite_or_none(value) for key, value in metrics.items()},
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y, pred, labels=every).tolist(),
    }


def roc_curves(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: list[str], points: int = 200
) -> list[dict[str, Any]]:
    """One-vs-rest ROC curves (``roc_curve``) of every class that has both positive and negative
    targets: ``[{"class", "auc", "fpr", "tpr"}]``; a binary task gives the positive class only.
    Curves longer than ``points`` are thinned evenly (their ends kept) to keep reports small."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    probs = np.asarray(probabilities, dtype=np.float64)
    k = probs.shape[1]
    curves = []
    for i in [1] if k == 2 else range(k):
        positive = y == i
        if positive.all() or not positive.any():
            continue  # a class absent (or alone) in the targets has no ROC curve
        fpr, tpr, _ = roc_curve(positive, probs[:, i])
        if len(fpr) > points:
            keep = np.unique(np.linspace(0, len(fpr) - 1, points).round().astype(int))
            fpr, tpr = fpr[keep], tpr[keep]
        curves.append(
            {
                "class": class_names[i] if i < len(class_names) else str(i),
                "auc": float(roc_auc_score(positive, probs[:, i])),
                "fpr": [round(float(v), 5) for v in fpr],
                "tpr": [round(float(v), 5) for v in tpr],
            }
        )
    return curves


def regression_scores(y_true: np.ndarray, predictions: np.ndarray) -> dict[str, Any]:
    """``{"metrics": {"rmse", "mae", "r2"}}`` (several outputs: scikit-learn's uniform average
    over them; rmse is the square root of the averaged mean squared error, as in training)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    # the dtypes as given: training computes these in float32, and so do we, to the last bit
    y = np.asarray(y_true)
    pred = np.asarray(predictions)
    if y.ndim == 1:
        y = y[:, None]
    if pred.ndim == 1:
        pred = pred[:, None]
    if len(y) == 0:
        metrics = {"rmse": math.nan, "mae": math.nan, "r2": math.nan}
    else:
        metrics = {
            "rmse": math.sqrt(mean_squared_error(y, pred)),
            "mae": mean_absolute_error(y, pred),
            "r2": r2_score(y, pred) if len(y) >= 2 else math.nan,
        }
    return {"metrics": {key: finite_or_none(value) for key, value in metrics.items()}}
