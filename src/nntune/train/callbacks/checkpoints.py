"""Write checkpoints/last.pt (to resume) and checkpoints/best.pt (best monitored value)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from nntune.errors import ConfigError
from nntune.optim import is_improvement
from nntune.records import EpochRecord
from nntune.train.callbacks.base import Callback, Decision, TrainState
from nntune.train.checkpoint import clone_tree, save_checkpoint


class Checkpoints(Callback):
    """last.pt holds the whole engine state; best.pt the weights of the best epoch.

    With ``every_seconds`` > 0, they are written at the end of the first epoch that ends that
    long after the last write (and at the end of training): a checkpoint costs a few ms, which
    matters when epochs take tens of ms. A better best.pt waits in memory until then, so the
    two files always agree with each other.
    """

    key = "checkpoints"

    def __init__(
        self,
        folder: Path,
        monitor: str,
        mode: str,
        meta: dict[str, Any],
        every_seconds: float = 0.0,
    ) -> None:
        self.folder = folder
        self.monitor = monitor
        self.mode = mode
        self.meta = meta
        self.every_seconds = every_seconds
        self.on_train_begin(None)

    def on_train_begin(self, state: TrainState | None) -> None:
        self.best: float | None = None
        self.best_epoch = 0
        self.pending_best: dict[str, Any] | None = None
        self.last_write = time.monotonic()

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> Decision:
        value = record.get(self.monitor)
        if value is None and self.monitor not in record.to_json():
            raise ConfigError(
                f"train.monitor = '{self.monitor}' is not logged "
                f"(logged: {', '.join(k for k in record.to_json() if '_' in k)})"
            )
        if (
            value is not None
            and math.isfinite(value)
            and is_improvement(value, self.best, self.mode)
        ):
            self.best, self.best_epoch = value, record.epoch
            self.pending_best = {
                "model": clone_tree(state.evaluated_weights()),
                "epoch": record.epoch,
                "monitor": self.monitor,
                "value": value,
            }
        due = time.monotonic() - self.last_write >= self.every_seconds
        if due or state.epoch >= state.epochs:
            self.flush(state)
        return None

    def on_train_end(self, state: TrainState, reason: str) -> Decision:
        if not state.failed:  # a failed run keeps its last epoch-boundary checkpoint
            self.flush(state)
        return None

    def flush(self, state: TrainState) -> None:
        if self.pending_best is not None:
            save_checkpoint({**self.pending_best, "meta": self.meta}, self.folder / "best.pt")
            self.pending_best = None
        save_checkpoint({"engine": state.snapshot(), "meta": self.meta}, self.folder / "last.pt")
        self.last_write = time.monotonic()

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.best_epoch = int(state["best_epoch"])


def model_weights(payload: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model state of a best.pt or last.pt payload."""
    if "model" in payload:
        weights: dict[str, torch.Tensor] = payload["model"]
        return weights
    weights = payload["engine"]["model"]
    return weights
