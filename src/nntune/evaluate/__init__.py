"""Evaluation beyond training: a run folder's full metrics and cost, significance tests.

- :func:`evaluate_run` (``nntune evaluate``): every metric of a run's split, the per-class
  table, the confusion matrix and the model's cost.
- :func:`compare` (``nntune compare``): two configs trained on the same seeds, and whether one
  is better; :func:`ablate` (``nntune ablate``) and :func:`cross_validate` (``nntune cv``).
"""

# the functions stand where their submodules' names would (``from nntune.evaluate.compare
# import ...`` still imports the module's other names)
from nntune.evaluate.ablate import ablate
from nntune.evaluate.compare import compare
from nntune.evaluate.cv import cross_validate
from nntune.evaluate.evaluation import CHECKPOINTS, SPLITS, evaluate_run
from nntune.evaluate.scores import classification_scores, regression_scores

__all__ = [
    "CHECKPOINTS",
    "SPLITS",
    "ablate",
    "classification_scores",
    "compare",
    "cross_validate",
    "evaluate_run",
    "regression_scores",
]
