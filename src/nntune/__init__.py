"""nntune: train neural networks well. Every tuning trick as one line of config.

import nntune
result = nntune.train("examples/mnist1d.yaml", overrides=["train.epochs=5"])
print(result.test["accuracy"], result.run_dir)
"""

__version__ = "0.1.0"

from nntune.config import Config, load_config
from nntune.errors import ConfigError, DataError, NntuneError, RunFolderError, TrainingError
from nntune.records import EpochRecord, History, RunResult
from nntune.train import Predictor, Trainer, load_run, train

__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "EpochRecord",
    "History",
    "NntuneError",
    "Predictor",
    "RunFolderError",
    "RunResult",
    "Trainer",
    "TrainingError",
    "__version__",
    "load_config",
    "load_run",
    "train",
]
