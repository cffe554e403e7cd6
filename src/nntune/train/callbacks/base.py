"""The callback protocol: hooks at fixed points of the loop that return decisions.

Callbacks read the :class:`TrainState` and return a decision (stop, skip this step, restore a
saved state) instead of changing the engine; the engine applies the decisions. Each callback's
state is saved in the checkpoint under its ``key``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nntune.records import EpochRecord, History


@dataclass
class Stop:
    """End training after this point. ``error`` makes the stop a failure the user must fix."""

    reason: str
    error: bool = False


@dataclass
class SkipStep:
    """Do not apply this optimizer step (the gradients are discarded)."""

    reason: str


@dataclass
class Restore:
    """Load these model weights, then go on; ``reset_optimizer`` also forgets the optimizer's
    running state (moments, momentum buffers), which may hold the very values that diverged."""

    reason: str
    model: dict[str, torch.Tensor]
    reset_optimizer: bool = False


Decision = Stop | SkipStep | Restore | None


@dataclass
class TrainState:
    """What callbacks may read about the run. The engine owns and updates it."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epochs: int
    steps_per_epoch: int
    epoch: int = 0  # epochs finished
    step: int = 0  # optimizer steps taken
    history: History = field(default_factory=History)
    loss: float | None = None  # the last training loss (per step)
    grad_norm: float | None = None  # the last measured gradient norm (if measured this step)
    lr: float = 0.0
    failed: bool = False  # training ended with an error (the state may be mid-epoch)
    # a full, resumable snapshot of the engine (model, optimizer, RNG, callbacks...)
    snapshot: Callable[[], dict[str, Any]] = field(default=lambda: {})
    # the weights validation measured (the EMA/SWA average when on, else the model's own)
    eval_weights: Callable[[], dict[str, torch.Tensor]] | None = None

    def evaluated_weights(self) -> dict[str, torch.Tensor]:
        if self.eval_weights is not None:
            return self.eval_weights()
        return self.model.state_dict()


class Callback:
    """Base class: every hook does nothing. Override the ones you need."""

    key = "callback"

    def on_train_begin(self, state: TrainState) -> None:
        """Reset per-run state here, so an instance can be reused."""

    def on_epoch_begin(self, state: TrainState) -> None:
        pass

    def after_backward(self, state: TrainState, loss: torch.Tensor) -> Decision:
        """After the gradients of one optimizer step exist, before clipping and the step."""
        return None

    def on_step_end(self, state: TrainState) -> None:
        pass

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> Decision:
        """After validation; ``record`` holds the epoch's logged values."""
        return None

    def on_train_end(self, state: TrainState, reason: str) -> Decision:
        """After the last epoch; a Restore here sets the final weights (e.g. the best ones)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def overrides(callback: Callback, hook: str) -> bool:
    """True when ``callback`` implements ``hook`` (so the engine can skip no-op calls per step)."""
    return getattr(type(callback), hook) is not getattr(Callback, hook)
