"""Snapshot ensembles (Huang et al. 2017): the weights at the end of every lr cycle.

With a schedule that restarts (cosine_restarts, cyclic), the model is at a good minimum where
the lr is lowest, just before it rises again. ``train.snapshots: true`` saves the weights there
as ``checkpoints/snapshot-<epoch>.pt`` (and at the last epoch); ``nntune ensemble RUN_DIR``
averages them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nntune.optim import Horizon, Schedule
from nntune.records import EpochRecord
from nntune.train.callbacks.base import Callback, Decision, TrainState
from nntune.train.checkpoint import clone_tree, save_checkpoint


def cycle_end_epochs(schedule: Schedule, horizon: Horizon, epochs: int) -> list[int]:
    """The epochs that end at a low point of the lr (the lr at their last step is below that
    at the last step of the epochs before and after them), plus the last epoch."""

    def end(epoch: int) -> float:  # the lr factor at the last step of a 1-based epoch
        if horizon.epoch_starts:
            last = (
                horizon.epoch_starts[epoch] - 1
                if epoch < len(horizon.epoch_starts)
                else horizon.total_steps - 1
            )
        else:
            last = epoch * horizon.steps_per_epoch - 1
        return schedule.factor(last)

    ends = [e for e in range(2, epochs) if end(e) < end(e - 1) and end(e) < end(e + 1)]
    return [*ends, epochs]


class Snapshots(Callback):
    key = "snapshots"

    def __init__(self, folder: Path, epochs: list[int], meta: dict[str, Any]) -> None:
        self.folder = folder
        self.epochs = set(epochs)
        self.meta = meta

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> Decision:
        if state.epoch in self.epochs:
            payload = {"model": clone_tree(state.evaluated_weights()), "meta": self.meta}
            save_checkpoint(payload, self.folder / f"snapshot-{state.epoch}.pt")
        return None
