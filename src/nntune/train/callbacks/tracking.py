"""Experiment tracking (``train.log_to``): TensorBoard and MLflow get the same scalars,
hyperparameters and final metrics as the run folder.

- scalars: every numeric value of each metrics.jsonl line, under its metrics.jsonl name, at
  step = the epoch (the epoch itself is the x axis, not a scalar);
- hyperparameters: the resolved config flattened to dotted keys (``optimizer.lr``), without
  the ``search:`` block; lists are written as JSON text;
- final metrics: summary.json's ``val`` and ``test`` dicts as ``final/val_<metric>`` and
  ``final/test_<metric>`` (not ``val_<metric>``, which is the per-epoch series).

TensorBoard writes to ``<run folder>/tensorboard/`` with ``torch.utils.tensorboard``; the
hyperparameters go to its hparams plugin together with the final metrics. MLflow writes to
``train.mlflow_uri``, by default a SQLite store ``<run folder>/mlflow.db`` (MLflow 3 refuses its
old ``./mlruns`` file store unless told otherwise). The MLflow run id is kept in
``<run folder>/tracking.json``, so a resumed run goes on logging to the same MLflow run, and
the resumed TensorBoard writer purges the epochs that are trained again.

tensorboard and mlflow are optional packages, imported here only when a run asks for them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nntune.errors import ConfigError
from nntune.packages import require
from nntune.records import EpochRecord
from nntune.train.callbacks.base import Callback, Decision, TrainState
from nntune.train.checkpoint import read_json, write_json_atomic

TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"
TRACKING = "tracking.json"  # the MLflow run of a run folder, reused on resume

# tracker → the module it needs (nntune.packages says what to pip install)
MODULES = {"tensorboard": "torch.utils.tensorboard", "mlflow": "mlflow"}
# MLflow's limits on a parameter (mlflow.utils.validation) and on one log_batch call
MLFLOW_KEY_LENGTH = 250
MLFLOW_VALUE_LENGTH = 6000
MLFLOW_PARAMS_PER_BATCH = 100

Scalar = bool | int | float | str


def default_mlflow_uri(run_dir: Path) -> str:
    """The MLflow store of a run folder when ``train.mlflow_uri`` is not given."""
    return f"sqlite:///{(run_dir / MLFLOW_DB).resolve()}"


def check_trackers(log_to: Sequence[str], mlflow_uri: str | None) -> None:
    """Import the trackers ``log_to`` names, and reach an explicit MLflow store; errors name
    ``train.log_to`` (or ``train.mlflow_uri``). Called before the run folder is created."""
    for tracker in log_to:
        if tracker == "mlflow":
            _quiet_mlflow_telemetry()
        require(
            MODULES[tracker],
            f"train.log_to = {list(log_to)}: {tracker}",
            otherwise=f"remove {tracker} from train.log_to",
        )
    if "mlflow" in log_to and mlflow_uri is not None:
        _mlflow_client(mlflow_uri)


def hyperparameters(config: dict[str, Any]) -> dict[str, Scalar]:
    """The resolved config (as config_to_dict gives it) flattened to dotted keys, scalars only:
    lists and None become JSON text; the ``search`` block is left out."""
    flat: dict[str, Scalar] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(node, (bool, int, float, str)):
            flat[prefix] = node
        else:
            flat[prefix] = json.dumps(node)

    walk({k: v for k, v in config.items() if k != "search"}, "")
    return flat


def param_text(value: Scalar) -> str:
    """How a hyperparameter is written as an MLflow parameter (a string): JSON, strings as is."""
    return value if isinstance(value, str) else json.dumps(value)


def epoch_scalars(record: EpochRecord) -> dict[str, float]:
    """The numeric values of a metrics.jsonl line, by name (the epoch is the step)."""
    return {
        key: float(value)
        for key, value in record.to_json().items()
        if key != "epoch"
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    }


def final_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """summary.json's val and test metrics as ``final/val_<metric>``, ``final/test_<metric>``."""
    found: dict[str, float] = {}
    for split in ("val", "test"):
        for name, value in (summary.get(split) or {}).items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                found[f"final/{split}_{name}"] = float(value)
    return found


class Tracking(Callback):
    """Log each epoch to TensorBoard and/or MLflow; :meth:`finish` adds the hyperparameters
    with the final metrics once summary.json exists, :meth:`close` ends an interrupted run.
    Only a run that writes a run folder tracks."""

    key = "tracking"

    def __init__(
        self,
        run_dir: Path,
        log_to: Sequence[str],
        params: dict[str, Scalar],
        mlflow_uri: str | None = None,
        experiment: str = "nntune",
    ) -> None:
        self.run_dir = run_dir
        self.log_to = list(log_to)
        self.params = params
        self.mlflow_uri = mlflow_uri or default_mlflow_uri(run_dir)
        self.experiment = experiment
        self._writer: Any = None  # torch.utils.tensorboard.SummaryWriter
        self._client: Any = None  # mlflow.MlflowClient
        self.run_id: str | None = None
        self._logged_through = 0  # epochs already in the MLflow run (a resumed run skips them)
        self._opened = False
        self._last_epoch = 0

    # --- hooks --------------------------------------------------------------------------------

    def on_epoch_begin(self, state: TrainState) -> None:
        if not self._opened:
            self.open(state.epoch)

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> Decision:
        scalars = epoch_scalars(record)
        self._last_epoch = record.epoch
        if self._writer is not None:
            for name, value in scalars.items():
                self._writer.add_scalar(name, value, record.epoch)
            self._writer.flush()
        if self._client is not None and record.epoch > self._logged_through:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            metrics = [Metric(k, v, now, record.epoch) for k, v in scalars.items()]
            self._client.log_batch(self.run_id, metrics=metrics, synchronous=True)
        return None

    # --- opening and closing ------------------------------------------------------------------

    def open(self, epochs_done: int) -> None:
        """Start (or, with ``epochs_done`` > 0 after a resume, continue) the trackers' runs."""
        self._opened = True
        self._last_epoch = epochs_done
        if "tensorboard" in self.log_to:
            from torch.utils.tensorboard import SummaryWriter

            # a resumed run trains the epochs after its checkpoint again: hide their old events
            purge = epochs_done + 1 if epochs_done > 0 else None
            self._writer = SummaryWriter(
                str(self.run_dir / TENSORBOARD_DIR), purge_step=purge, flush_secs=30
            )
        if "mlflow" in self.log_to:
            self._open_mlflow()

    def _open_mlflow(self) -> None:
        client = _mlflow_client(self.mlflow_uri)
        saved = self.run_dir / TRACKING
        run = None
        if saved.exists():  # a resumed run: the same MLflow run, if the store still has it
            run_id = (read_json(saved).get("mlflow") or {}).get("run_id")
            run = _existing_run(client, run_id) if run_id else None
        if run is not None:
            self.run_id = run.info.run_id
            client.update_run(self.run_id, status="RUNNING")
            done = client.get_metric_history(self.run_id, "step")  # logged every epoch
            self._logged_through = max((m.step for m in done), default=0)
            logged = run.data.params
        else:
            experiment = client.get_experiment_by_name(self.experiment)
            if experiment is not None and experiment.lifecycle_stage == "deleted":
                raise ConfigError(
                    f"train.mlflow_experiment = {self.experiment!r}: this experiment was "
                    f"deleted in {self.mlflow_uri}; restore it (mlflow experiments restore) "
                    "or give another name"
                )
            if experiment is not None:
                experiment_id = experiment.experiment_id
            else:
                # the default store lives in the run folder, and so do its artifacts
                location = None
                if self.mlflow_uri == default_mlflow_uri(self.run_dir):
                    location = (self.run_dir / "mlartifacts").resolve().as_uri()
                experiment_id = client.create_experiment(
                    self.experiment, artifact_location=location
                )
            tags = {"nntune.run_dir": str(self.run_dir.resolve())}
            created = client.create_run(experiment_id, tags=tags, run_name=self.run_dir.name)
            self.run_id = created.info.run_id
            write_json_atomic(
                saved,
                {
                    "mlflow": {
                        "tracking_uri": self.mlflow_uri,
                        "experiment_id": experiment_id,
                        "run_id": self.run_id,
                    }
                },
            )
            logged = {}
        self._client = client
        self._log_params(logged)

    def _log_params(self, logged: dict[str, str]) -> None:
        """The hyperparameters as MLflow params (within MLflow's limits); a resumed run keeps
        the values it started with (MLflow params cannot change), e.g. a longer train.epochs."""
        from mlflow.entities import Param

        params = [
            Param(key[:MLFLOW_KEY_LENGTH], param_text(value)[:MLFLOW_VALUE_LENGTH])
            for key, value in self.params.items()
            if key[:MLFLOW_KEY_LENGTH] not in logged
        ]
        for start in range(0, len(params), MLFLOW_PARAMS_PER_BATCH):
            chunk = params[start : start + MLFLOW_PARAMS_PER_BATCH]
            self._client.log_batch(self.run_id, params=chunk, synchronous=True)

    def finish(self, summary: dict[str, Any]) -> None:
        """After summary.json: hyperparameters with the final metrics, then close the runs."""
        if not self._opened:
            self.open(int(summary.get("epochs_run") or 0))
        final = final_metrics(summary)
        step = int(summary.get("epochs_run") or self._last_epoch)
        if self._writer is not None:
            from torch.utils.tensorboard.summary import hparams

            hparam_values = {
                k: v if isinstance(v, (int, float)) and not isinstance(v, bool) else param_text(v)
                for k, v in self.params.items()
            }
            experiment, start, end = hparams(hparam_values, final)
            for proto in (experiment, start, end):
                self._writer.file_writer.add_summary(proto)
            for name, value in final.items():
                self._writer.add_scalar(name, value, step)
        if self._client is not None:
            from mlflow.entities import Metric, RunTag

            now = int(time.time() * 1000)
            status = summary.get("status")
            tags = [RunTag("nntune.status", str(status))]
            if summary.get("stop_reason"):
                tags.append(RunTag("nntune.stop_reason", str(summary["stop_reason"])[:5000]))
            self._client.log_batch(
                self.run_id,
                metrics=[Metric(k, v, now, step) for k, v in final.items()],
                tags=tags,
                synchronous=True,
            )
            self._client.set_terminated(
                self.run_id, status="FAILED" if status == "failed" else "FINISHED"
            )
            self._client = None
        self.close()

    def close(self, status: str = "KILLED") -> None:
        """Flush and close; an MLflow run still open (training interrupted) gets ``status``."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._client is not None:
            self._client.set_terminated(self.run_id, status=status)
            self._client = None


def _quiet_mlflow_telemetry() -> None:
    # MLflow's usage telemetry would reach out to the network; nntune runs offline
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _import_mlflow() -> Any:
    _quiet_mlflow_telemetry()
    import mlflow

    return mlflow


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Creating a SQLite store logs its schema migrations and raises SQLAlchemy deprecation
    warnings that are MLflow's business, not the user's."""
    loggers = [logging.getLogger(n) for n in ("mlflow.store.db.utils", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mlflow\.")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"sqlalchemy")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _mlflow_client(uri: str) -> Any:
    """An MlflowClient whose store answers; a store that cannot be used is a ConfigError."""
    mlflow = _import_mlflow()
    from mlflow.exceptions import MlflowException

    try:
        with _quiet_mlflow():
            client = mlflow.MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)  # opens (or creates) the store now
    except MlflowException as err:
        raise ConfigError(f"train.mlflow_uri = {uri!r}: MLflow cannot use it: {err}") from None
    return client


def _existing_run(client: Any, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        return None
