"""Callbacks: early stopping, checkpoints, metrics log, non-finite guard, progress."""

from nntune.train.callbacks.base import Callback, Decision, Restore, SkipStep, Stop, TrainState
from nntune.train.callbacks.checkpoints import Checkpoints
from nntune.train.callbacks.early_stopping import EarlyStopping
from nntune.train.callbacks.metrics_log import MetricsLog
from nntune.train.callbacks.nan_guard import NanGuard
from nntune.train.callbacks.progress import ProgressBar
from nntune.train.callbacks.user import CALLBACKS, build_callbacks

__all__ = [
    "CALLBACKS",
    "Callback",
    "Checkpoints",
    "Decision",
    "EarlyStopping",
    "MetricsLog",
    "NanGuard",
    "ProgressBar",
    "Restore",
    "SkipStep",
    "Stop",
    "TrainState",
    "build_callbacks",
]
