"""Evaluation beyond training: a run folder's full metrics and cost, significance tests.

- :func:`evaluate_run` (``nntune evaluate``): every metric of a run's split, the per-class
  table, the confusion matrix and the model's cost.
- :func:`nntune.evaluate.compare.compare` (``nntune compare``): two configs trained on the same
  seeds, and whether one is better.
"""

from nntune.evaluate.evaluation import CHECKPOINTS, SPLITS, evaluate_run
from nntune.evaluate.scores import classification_scores, regression_scores

__all__ = [
    "CHECKPOINTS",
    "SPLITS",
    "classification_scores",
    "evaluate_run",
    "regression_scores",
]
