"""The training engine, its callbacks, and runs that write run folders."""

from nntune.train.engine import Engine, EngineSettings
from nntune.train.run import Trainer, train

__all__ = ["Engine", "EngineSettings", "Trainer", "train"]
