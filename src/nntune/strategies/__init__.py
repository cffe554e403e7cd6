"""Training strategies beyond one hyperparameter: ensembles (more to come: transfer, stages,
distillation, adversarial training).

- :func:`ensemble_runs` (``nntune ensemble``): several run folders averaged, against each member.
"""

from nntune.strategies.ensemble import ensemble_runs

__all__ = ["ensemble_runs"]
