"""Early stopping: stop when the monitored value has not improved for ``patience`` epochs."""

from __future__ import annotations

import math
from typing import Any

import torch

from nntune.errors import ConfigError
from nntune.optim import infer_mode, is_improvement
from nntune.records import EpochRecord
from nntune.train.callbacks.base import Callback, Decision, Restore, Stop, TrainState
from nntune.train.checkpoint import clone_tree


class EarlyStopping(Callback):
    key = "early_stopping"

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 10,
        min_delta: float = 0.0,
        restore_best: bool = True,
        mode: str = "auto",
    ) -> None:
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.mode = infer_mode(monitor) if mode == "auto" else mode
        self.on_train_begin(None)

    def on_train_begin(self, state: TrainState | None) -> None:
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> Decision:
        value = record.get(self.monitor)
        if value is None and self.monitor not in record.to_json():
            logged = [k for k in record.to_json() if k.startswith(("train_", "val_"))]
            raise ConfigError(
                f"train.early_stopping.monitor = '{self.monitor}' is not logged "
                f"(logged: {', '.join(logged)})"
            )
        if (
            value is not None
            and math.isfinite(value)
            and is_improvement(value, self.best, self.mode, self.min_delta)
        ):
            self.best, self.best_epoch, self.wait = value, record.epoch, 0
            if self.restore_best:
                self.best_weights = clone_tree(state.evaluated_weights())
            return None
        self.wait += 1
        if self.wait >= self.patience:
            return Stop(
                f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                f"(best {self.best} at epoch {self.best_epoch})"
            )
        return None

    def on_train_end(self, state: TrainState, reason: str) -> Decision:
        """End with the best weights, when asked to restore them."""
        if self.restore_best and self.best_weights is not None:
            return Restore(f"restored the weights of epoch {self.best_epoch}", self.best_weights)
        return None

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.best_epoch = int(state["best_epoch"])
        self.wait = int(state["wait"])
        self.best_weights = state["best_weights"]
