"""Plain records that travel between layers.

They hold numbers and names only (no tensors, no modules), so every layer can read them and they
serialise to JSON as they are.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EpochRecord:
    """What one epoch of training measured; one line of metrics.jsonl."""

    epoch: int
    step: int
    lr: float
    seconds: float
    train_loss: float
    val_loss: float | None
    grad_norm: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The flat mapping written to metrics.jsonl (metrics and extras at the top level)."""
        row: dict[str, Any] = {
            "epoch": self.epoch,
            "step": self.step,
            "lr": self.lr,
            "seconds": self.seconds,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "grad_norm": self.grad_norm,
        }
        row.update(self.metrics)
        row.update(self.extra)
        return {key: _json_number(value) for key, value in row.items()}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> EpochRecord:
        fixed = {"epoch", "step", "lr", "seconds", "train_loss", "val_loss", "grad_norm"}
        metric_keys = [
            k
            for k, v in row.items()
            if k not in fixed and isinstance(v, (int, float)) and _is_metric_key(k)
        ]
        return cls(
            epoch=int(row["epoch"]),
            step=int(row["step"]),
            lr=float(row["lr"]),
            seconds=float(row["seconds"]),
            train_loss=_float_or_nan(row.get("train_loss")),
            val_loss=row.get("val_loss"),
            grad_norm=row.get("grad_norm"),
            metrics={k: float(row[k]) for k in metric_keys},
            extra={k: v for k, v in row.items() if k not in fixed and k not in metric_keys},
        )

    def get(self, key: str) -> float | None:
        """A logged value by its metrics.jsonl name (``val_loss``, ``val_accuracy``, ``lr``...)."""
        value = self.to_json().get(key)
        return float(value) if isinstance(value, (int, float)) else None


def _is_metric_key(key: str) -> bool:
    return key.startswith(("train_", "val_", "test_"))


def _float_or_nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _json_number(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class History:
    """The epoch records of one run, in order."""

    records: list[EpochRecord] = field(default_factory=list)

    def append(self, record: EpochRecord) -> None:
        self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def values(self, key: str) -> list[float | None]:
        """One logged quantity over the epochs (None where an epoch did not log it)."""
        return [record.get(key) for record in self.records]

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for record in self.records:
            for key in record.to_json():
                seen.setdefault(key, None)
        return list(seen)

    def to_json(self) -> list[dict[str, Any]]:
        return [record.to_json() for record in self.records]

    @classmethod
    def from_json(cls, rows: list[dict[str, Any]]) -> History:
        return cls([EpochRecord.from_json(row) for row in rows])


@dataclass
class RunResult:
    """What a finished (or stopped) training run hands back to its caller."""

    run_dir: Path | None
    summary: dict[str, Any]
    history: History

    @property
    def test(self) -> dict[str, float]:
        return dict(self.summary.get("test") or {})

    @property
    def val(self) -> dict[str, float]:
        return dict(self.summary.get("val") or {})


@dataclass
class Finding:
    """One problem a detector found in a run, with the evidence behind it."""

    kind: str
    severity: str
    evidence: dict[str, float | str]
    remedies: list[str] = field(default_factory=list)
    # the other findings of the run that explain this one (detectors.CAUSES); [] for a cause
    consequence_of: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StudyResult:
    """The outcome of a hyperparameter search."""

    study: str
    best_value: float | None
    best_params: dict[str, Any]
    best_config: Path | None
    n_complete: int
    n_pruned: int
    n_failed: int
    seconds: float
    importances: dict[str, float] = field(default_factory=dict)
    study_dir: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)  # what summary.json holds
    retrain: dict[str, Any] | None = None  # test metrics of best.yaml retrained (--retrain-best)
