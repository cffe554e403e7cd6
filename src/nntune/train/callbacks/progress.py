"""A rich progress bar on stderr with the latest losses and metrics."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from nntune.records import EpochRecord
from nntune.train.callbacks.base import Callback, Decision, TrainState


class ProgressBar(Callback):
    key = "progress"

    def __init__(self, title: str, monitor: str | None = None) -> None:
        self.title = title
        self.monitor = monitor
        self._progress: Progress | None = None
        self._task = TaskID(0)
        self._every = 1

    def on_train_begin(self, state: TrainState) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        total = state.epochs * state.steps_per_epoch
        self._task = self._progress.add_task(self.title, total=total, info="", completed=state.step)
        self._every = max(1, state.steps_per_epoch // 10)
        self._progress.start()

    def on_step_end(self, state: TrainState) -> None:
        if self._progress is not None and state.step % self._every == 0:
            self._progress.update(self._task, completed=state.step)

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> Decision:
        if self._progress is None:
            return None
        parts = [f"epoch {record.epoch}/{state.epochs}", f"loss {record.train_loss:.4f}"]
        if record.val_loss is not None:
            parts.append(f"val_loss {record.val_loss:.4f}")
        if self.monitor and self.monitor not in ("val_loss", "train_loss"):
            value = record.get(self.monitor)
            if value is not None:
                parts.append(f"{self.monitor} {value:.4f}")
        self._progress.update(self._task, completed=state.step, info="  ".join(parts))
        return None

    def on_train_end(self, state: TrainState, reason: str) -> Decision:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        return None
