"""Hyperparameter search on Optuna: spaces, worker processes, study folders."""

from nntune.search.space import default_space, parse_space
from nntune.search.tune import TuneOptions, tune

__all__ = ["TuneOptions", "default_space", "parse_space", "tune"]
