"""Append one JSON object per epoch to metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from nntune.records import EpochRecord
from nntune.train.callbacks.base import Callback, Decision, TrainState


class MetricsLog(Callback):
    key = "metrics_log"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> Decision:
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        self._handle.write(json.dumps(record.to_json()) + "\n")
        self._handle.flush()
        return None

    def on_train_end(self, state: TrainState, reason: str) -> Decision:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        return None
