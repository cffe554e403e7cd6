"""Metrics: compute_metrics against scikit-learn called directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from nntune.errors import ConfigError
from nntune.metrics import check_metrics, compute_metrics, metric_names


def probabilities(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]  # better than chance, not perfect
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probs


def test_metric_names_follow_the_contract() -> None:
    assert metric_names("classification") == ["accuracy", "f1", "auc"]
    assert metric_names("regression") == ["rmse", "mae", "r2"]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_classification_metrics_equal_sklearn(k: int) -> None:
    y, probs = probabilities(200, k, seed=k)
    got = compute_metrics("classification", y, probs)
    pred = probs.argmax(axis=1)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    if k == 2:
        expected_auc = skm.roc_auc_score(y, probs[:, 1])
    else:
        expected_auc = skm.roc_auc_score(y, probs, multi_class="ovr")
    assert got["auc"] == pytest.approx(expected_auc)
    assert 0.0 < got["accuracy"] < 1.0


def test_perfect_predictions() -> None:
    y = np.array([0, 1, 2, 2, 1, 0])
    probs = np.eye(3)[y] * 0.9 + 0.1 / 3
    got = compute_metrics("classification", y, probs)
    assert got == {"accuracy": 1.0, "f1": 1.0, "auc": 1.0}


def test_macro_f1_counts_classes_never_predicted() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 0, 1, 1, 1, 1]]  # class 2 never predicted
    got = compute_metrics("classification", y, probs, ["f1"])
    expected = skm.f1_score(y, probs.argmax(axis=1), average="macro", zero_division=0)
    assert got == {"f1": pytest.approx(expected)}


def test_auc_is_nan_when_a_class_is_missing() -> None:
    y, probs = probabilities(60, 3, seed=0)
    y = np.where(y == 2, 0, y)  # class 2 never occurs
    got = compute_metrics("classification", y, probs)
    assert math.isnan(got["auc"])
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, probs.argmax(axis=1)))


def test_auc_is_nan_with_a_single_class() -> None:
    y = np.zeros(10, dtype=int)
    _, probs = probabilities(10, 2, seed=1)
    assert math.isnan(compute_metrics("classification", y, probs, ["auc"])["auc"])


@pytest.mark.parametrize("n_targets", [1, 3])
def test_regression_metrics_equal_sklearn(n_targets: int) -> None:
    rng = np.random.default_rng(n_targets)
    y = rng.normal(size=(100, n_targets))
    pred = y + rng.normal(scale=0.5, size=y.shape)
    got = compute_metrics("regression", y, pred)
    assert got["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, pred)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert got["rmse"] == pytest.approx(float(np.sqrt(np.mean((y - pred) ** 2))))


def test_selected_metrics_only() -> None:
    y, probs = probabilities(30, 2, seed=3)
    assert set(compute_metrics("classification", y, probs, ["accuracy"])) == {"accuracy"}


def test_unknown_metric_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"accurcy.*did you mean 'accuracy'"):
        check_metrics(["accurcy"], "classification")
    with pytest.raises(ConfigError, match="regression"):
        check_metrics(["accuracy"], "regression")
    assert check_metrics(["r2", "mae"], "regression") == ["r2", "mae"]
