"""Non-finite loss guard: skip the step, restore the last good state, stop if it persists."""

from __future__ import annotations

import math
from typing import Any

import torch

from nntune.train.callbacks.base import Callback, Decision, Restore, SkipStep, Stop, TrainState
from nntune.train.checkpoint import clone_tree


class NanGuard(Callback):
    """A non-finite loss skips its step. When the weights themselves went non-finite, the
    weights of the start of the epoch are restored and the optimizer's running state is reset.
    Training stops with an error that says what to try after ``max_consecutive`` non-finite
    losses in a row, or when the weights go non-finite again in the epoch they were restored in
    (the run diverges; restoring will not help)."""

    key = "nan_guard"

    def __init__(self, max_consecutive: int = 10) -> None:
        self.max_consecutive = max_consecutive
        self.on_train_begin(None)

    def on_train_begin(self, state: TrainState | None) -> None:
        self.total = 0
        self.in_row = 0
        self.restored_in: int | None = None
        self.good_model: dict[str, torch.Tensor] | None = None

    def on_epoch_begin(self, state: TrainState) -> None:
        # the weights here passed a finite validation (or are the initial ones)
        self.good_model = clone_tree(state.model.state_dict())

    def after_backward(self, state: TrainState, loss: torch.Tensor) -> Decision:
        value = state.loss
        if value is not None and math.isfinite(value):
            self.in_row = 0
            return None
        self.total += 1
        self.in_row += 1
        advice = (
            f"lower optimizer.lr (now {state.lr:g}), add train.grad_clip: {{norm: 1.0}}, "
            "or check the data for extreme values"
        )
        if self.in_row >= self.max_consecutive:
            return Stop(
                f"the training loss was non-finite (NaN/inf) at {self.in_row} steps in a row "
                f"(epoch {state.epoch + 1}, step {state.step}); {advice}",
                error=True,
            )
        weights_bad = any(not torch.isfinite(p).all() for p in state.model.parameters())
        if weights_bad and self.restored_in == state.epoch:
            return Stop(
                f"training diverges: the weights became non-finite again in epoch "
                f"{state.epoch + 1} after being restored to the start of the epoch; {advice}",
                error=True,
            )
        if weights_bad and self.good_model is not None:
            self.restored_in = state.epoch
            return Restore(
                "non-finite weights: restored the weights of the start of the epoch",
                self.good_model,
                reset_optimizer=True,
            )
        return SkipStep("non-finite loss")

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "in_row": self.in_row, "restored_in": self.restored_in}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total = int(state["total"])
        self.in_row = int(state["in_row"])
        self.restored_in = state["restored_in"]
