"""The training engine, its callbacks, and runs that write run folders."""

from nntune.train.engine import Engine, EngineSettings
from nntune.train.predictor import Predictor, load_run
from nntune.train.run import Trainer, train

__all__ = ["Engine", "EngineSettings", "Predictor", "Trainer", "load_run", "train"]
