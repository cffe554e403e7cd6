"""Metrics of the user's own, like scikit-learn's: (y_true, y_pred) -> float."""

import numpy as np


def balanced(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes (predicted labels)."""
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def brier(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """The Brier score (class probabilities): lower is better, but the name does not say so."""
    onehot = np.eye(y_prob.shape[1])[y_true]
    return float(np.mean(np.sum((y_prob - onehot) ** 2, axis=1)))
