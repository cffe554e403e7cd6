"""Data checks behind the ``data_issue`` detector: numbers about the arrays a run trains on
(after its preprocessing), computed without training."""

from __future__ import annotations

from typing import Any

import torch

from nntune.diagnose.detectors import (
    DUPLICATES,
    OOV_RATE,
    TRUNCATED_SHARE,
    UNSCALED_MEAN,
    UNSCALED_STD,
)

CONSTANT_SHARE = 0.1  # constant columns are reported when more than this share of features


def _row_keys(x: torch.Tensor) -> set[bytes]:
    flat = x.reshape(len(x), -1).float().contiguous()
    return {row.numpy().tobytes() for row in flat}


def _imbalance(y_train: torch.Tensor) -> float:
    counts = torch.bincount(y_train.long().flatten())
    counts = counts[counts > 0]
    return float(counts.max() / counts.min()) if len(counts) else 1.0


def text_checks(y_train: torch.Tensor, task: str, text: dict[str, Any]) -> dict[str, Any]:
    """The checks of a text run, from what tokenizing found (nntune.data.pipeline's text
    facts): empty texts, texts cut at max_length, texts shared between splits, and the share
    of held-out tokens outside the vocabulary; class imbalance as for any data."""
    found = text["checks"]
    checks: dict[str, Any] = {
        "rows": len(y_train),
        "empty_texts": int(found["empty_texts"]),
        "truncated_share": float(found["truncated_share"]),
        "truncated_threshold": TRUNCATED_SHARE,
        "duplicate_fraction": float(found["duplicate_fraction"]),
        "duplicate_threshold": DUPLICATES,
    }
    if "oov_rate" in found:
        checks["oov_rate"] = float(found["oov_rate"])
        checks["oov_threshold"] = OOV_RATE
    if task == "classification":
        checks["class_imbalance"] = _imbalance(y_train)
    return checks


def data_checks(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    task: str,
    others: list[torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Non-finite values, unscaled and constant features, class imbalance, and the share of
    validation/test rows that also occur in training (``others``: those splits' inputs)."""
    x = x_train.reshape(len(x_train), -1).double()
    checks: dict[str, Any] = {"features": int(x.shape[1]), "rows": int(x.shape[0])}
    checks.update(_scale_checks(x))
    checks.update(_label_and_overlap_checks(x_train, y_train, task, others))
    return checks


def series_checks(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    task: str,
    others: list[torch.Tensor] | None = None,
) -> dict[str, Any]:
    """The checks of (N, C, L) series: the NaN after the end of a shorter series is padding,
    not a missing value, and the features whose scale matters are the channels (over every
    real step of the training series); imbalance and overlap as for any data."""
    from nntune.padding import step_values

    x = x_train.double()
    real = step_values(x)  # (N, L)
    steps = x.transpose(1, 2)[real]  # (real steps, C)
    checks: dict[str, Any] = {
        "features": int(x.shape[1]),
        "rows": int(x.shape[0]),
        "padded_share": float(1.0 - real.double().mean()) if real.numel() else 0.0,
    }
    checks.update(_scale_checks(steps))
    checks.update(_label_and_overlap_checks(x_train, y_train, task, others))
    return checks


def _scale_checks(x: torch.Tensor) -> dict[str, Any]:
    """Of a (rows, features) matrix: non-finite values, and the features' scale."""
    checks: dict[str, Any] = {}
    finite = torch.isfinite(x)
    checks["nonfinite_values"] = int((~finite).sum())
    clean = torch.where(finite, x, torch.zeros_like(x))
    mean, std = clean.mean(dim=0), clean.std(dim=0) if len(x) > 1 else torch.zeros(x.shape[1])
    varying = std > 0
    unscaled = varying & (
        (mean.abs() > UNSCALED_MEAN) | (std > UNSCALED_STD[1]) | (std < UNSCALED_STD[0])
    )
    checks["unscaled_features"] = int(unscaled.sum())
    checks["max_abs_mean"] = float(mean.abs().max()) if len(mean) else 0.0
    checks["max_std"] = float(std.max()) if len(std) else 0.0
    constant = int((~varying).sum())
    checks["constant_features"] = constant if constant > CONSTANT_SHARE * x.shape[1] else 0
    return checks


def _label_and_overlap_checks(
    x_train: torch.Tensor, y_train: torch.Tensor, task: str, others: list[torch.Tensor] | None
) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    if task == "classification":
        checks["class_imbalance"] = _imbalance(y_train)
    if others:
        seen = _row_keys(x_train)
        rows = [key for other in others for key in _row_keys(other)]
        shared = sum(key in seen for key in rows)
        checks["duplicate_fraction"] = shared / len(rows) if rows else 0.0
        checks["duplicate_threshold"] = DUPLICATES
    return checks
