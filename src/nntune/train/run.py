"""Training runs: config → data → model → engine → run folder → summary.

``train(config)`` is the one-call API; :class:`Trainer` also takes a user's own ``nn.Module``
and data (arrays, tensors or a Dataset).
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from nntune.config import Config, SwaConfig, config_to_dict, config_to_yaml, load_config
from nntune.config._load import ConfigSource
from nntune.data import DataBundle, RawDataset, prepare_data
from nntune.data.user import default_workers
from nntune.errors import ConfigError, DataError, RunFolderError, TrainingError
from nntune.metrics import summary_metrics
from nntune.models import count_parameters
from nntune.optim import Horizon, Schedule, needs_closure
from nntune.records import RunResult
from nntune.train.averaging import WeightAverage
from nntune.train.batches import BatchSizes, LoaderBatches, TensorBatches
from nntune.train.build import (
    RunParts,
    as_reconstruction,
    build_parts,
    check_components,
    is_reconstruction,
    resolve_for_data,
)
from nntune.train.callbacks import (
    Callback,
    Checkpoints,
    EarlyStopping,
    MetricsLog,
    NanGuard,
    ProgressBar,
    build_callbacks,
)
from nntune.train.callbacks.doctor import DoctorProbe
from nntune.train.callbacks.snapshots import Snapshots, cycle_end_epochs
from nntune.train.callbacks.tracking import Tracking, check_trackers, hyperparameters
from nntune.train.checkpoint import load_checkpoint, write_json_atomic, write_text_atomic
from nntune.train.code import write_code
from nntune.train.distributed import (
    DataParallel,
    Shard,
    device_for,
    from_environment,
    init_process_group,
    is_main_process,
    sync_batchnorm,
)
from nntune.train.engine import Engine, EngineSettings, horizon, resolve_precision
from nntune.train.evaluate import evaluate
from nntune.train.rundir import (
    CONFIG,
    LAST,
    METRICS,
    SUMMARY,
    existing_run_dir,
    new_run_dir,
)
from nntune.train.strategy import STRATEGIES, build_strategy
from nntune.train.transfer import Freeze, load_matching, load_matching_weights

ArrayLike = np.ndarray | torch.Tensor
UserData = tuple[ArrayLike, ArrayLike] | Dataset


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


DATA_CHECK_ITEMS = 2000  # items of a torch Dataset the doctor's data checks read


def normalized(x: torch.Tensor, image: dict[str, Any]) -> torch.Tensor:
    """uint8 images as an image run's model reads them (see nntune.models.image_input)."""
    from nntune.models.image_input import ImageInput

    with torch.no_grad():
        return ImageInput(image["mean"], image["std"])(x)


def text_summary(text: dict[str, Any]) -> dict[str, Any]:
    """A text run's facts without its vocabulary (that stays in the checkpoint)."""
    tokenizer = text["tokenizer"]
    return {
        "columns": text["columns"],
        "tokenizer": {"name": tokenizer["kind"], **tokenizer["options"]},
        "vocab_size": text["vocab_size"],
        "max_length": text["max_length"],
        **text["checks"],
    }


def doctor_findings(
    config: Config, bundle: DataBundle, engine: Engine, probe: DoctorProbe, failure: str | None
) -> dict[str, Any]:
    """What the doctor's detectors find in this run: ``{"healthy", "problems", "probe"}``."""
    from nntune.diagnose.data_checks import data_checks
    from nntune.diagnose.detectors import RunFacts, detect

    stats = probe.finish()
    others = [x for x in (bundle.x_val, bundle.x_test) if x is not None]
    # the whole training part held in memory; of a torch Dataset, a sample of its items
    in_memory = bundle.train_dataset is None
    x_train, y_train = bundle.train_sample(len(bundle.x_train) if in_memory else DATA_CHECK_ITEMS)
    if bundle.image:  # images are checked as the model sees them, normalized
        x_train, others = (
            normalized(x_train, bundle.image),
            [normalized(x, bundle.image) for x in others],
        )
    if bundle.text:  # token ids are no features to scale: what tokenizing found
        from nntune.diagnose.data_checks import text_checks

        data = text_checks(y_train, bundle.task, bundle.text)
    elif bundle.series:  # NaN padding is no missing value; the channels are the features
        from nntune.diagnose.data_checks import series_checks

        data = series_checks(x_train, y_train, bundle.task, others)
    else:
        data = data_checks(x_train, y_train, bundle.task, others)
    facts = RunFacts(
        history=engine.state.history.to_json(),
        task=bundle.task,
        epochs=config.train.epochs,
        probe=stats,
        failure=failure,
        data=data,
        n_classes=bundle.n_outputs if bundle.task == "classification" else None,
    )
    if bundle.image:  # what reading the folder found
        facts.data["empty_class_folders"] = len(bundle.image.get("empty_classes") or [])
        facts.data["skipped_files"] = int(bundle.image.get("skipped") or 0)
    problems = detect(facts)
    from nntune.diagnose.remedies import remedies_for

    for problem in problems:
        problem.remedies = [label for label, _ in remedies_for(problem.kind, config)]
    seconds = engine.elapsed
    overhead = stats.overhead_seconds if stats else 0.0
    return {
        "healthy": not problems,
        "problems": [p.to_json() for p in problems],
        "probe": {
            "epochs": engine.state.epoch,
            "seconds": round(seconds, 3),
            "overhead_seconds": overhead,
            "overhead_percent": round(100.0 * overhead / seconds, 2) if seconds > 0 else None,
            **(stats.to_json() if stats else {}),
        },
        "data": facts.data,
    }


def make_batches(
    config: Config,
    bundle: DataBundle,
    loader: Dataset | None,
    full_batch: bool,
    device: torch.device,
    shard: Shard | None = None,
) -> TensorBatches | LoaderBatches:
    """Training batches: in-memory tensors (fast path) or a DataLoader over a user's Dataset,
    with the configured batch size rule."""
    train = config.train
    growth = train.batch_schedule
    sizes = BatchSizes(
        train.batch_size,
        factor=growth.factor if growth else 1.0,
        every=growth.every if growth else 1,
        cap=growth.max if growth else None,
        lr_scaling=growth.lr_scaling if growth else "none",
    )
    if loader is not None:
        workers = default_workers(config.data)
        return LoaderBatches(loader, sizes, device, num_workers=workers, shard=shard)
    x_train, y_train = bundle.x_train.to(device), bundle.y_train.to(device)
    if full_batch:
        return TensorBatches(x_train, y_train, len(x_train))
    return TensorBatches(x_train, y_train, sizes, train.random_batch_size, shard)


def check_combinations(
    config: Config,
    parts: RunParts,
    device: torch.device,
    loader: bool,
    shard: Shard | None = None,
    n_train: int = 0,
) -> None:
    """Settings that are valid alone but not together (the schema checks each one alone)."""
    train, optimizer = config.train, config.optimizer.name
    if shard is not None:
        check_distributed(config, shard.world, loader, n_train)
    if needs_closure(parts.optimizer):
        for key, bad in (
            ("train.accumulate", train.accumulate > 1),
            ("train.grad_clip", train.grad_clip is not None),
            ("train.precision", train.precision not in ("fp32", "auto")),
        ):
            if bad:
                raise ConfigError(
                    f"{key} cannot be used with optimizer {optimizer}: it re-evaluates the loss "
                    "on the whole batch to choose its own step; remove the setting"
                )
    if parts.full_batch and (train.batch_schedule or train.random_batch_size):
        raise ConfigError(
            f"optimizer {optimizer} trains on the whole training set per step: "
            "train.batch_schedule and train.random_batch_size do not apply to it"
        )
    if train.random_batch_size is not None and (loader or train.accumulate > 1):
        raise ConfigError(
            "train.random_batch_size needs in-memory data and train.accumulate: 1 "
            "(a Dataset is batched by a DataLoader of one batch size)"
        )
    if train.precision == "fp16" and device.type != "cuda":
        raise ConfigError(
            f"train.precision = fp16 needs a CUDA device (this run is on {device.type}); "
            "use bf16 on CPU, or fp32"
        )


def check_distributed(config: Config, world: int, loader: bool = True, n_train: int = 0) -> None:
    """What data-parallel training cannot do (every rank must take the same steps). Checked
    from the config alone by ``nntune train --nproc`` before it starts the processes."""
    from nntune.optim import OPTIMIZERS
    from nntune.train.distributed import check_device

    train, optimizer = config.train, config.optimizer.name
    where = f"under torchrun ({world} processes)"
    check_device(train.device, world)
    if config.stages:
        raise ConfigError(
            f"stages: staged training does not run {where} yet; run each stage as its own "
            "nntune train with --init-from the previous stage's run folder"
        )
    if "full_batch" in OPTIMIZERS.get(optimizer, key="optimizer").tags:
        raise ConfigError(
            f"optimizer {optimizer} cannot train {where}: it steps on the whole training set; "
            "train it in one process"
        )
    if train.random_batch_size is not None:
        raise ConfigError(
            f"train.random_batch_size cannot be used {where}: every rank must take the same "
            "steps; use train.batch_size (per process) or train.batch_schedule"
        )
    if not loader and n_train < 2 * world:
        raise DataError(
            f"{n_train} training samples cannot be shared by {world} processes "
            "(each needs two per batch)"
        )


def check_world_size(run_dir: Path, payload: dict[str, Any] | None, world: int) -> None:
    """A run resumes with the number of processes it was trained with (its batches depend on
    it). ``payload`` is the loaded last.pt (None: read it)."""
    if payload is None:
        payload = load_checkpoint(existing_run_dir(run_dir) / LAST)
    saved = int((payload.get("engine") or {}).get("world_size", 1))
    if saved != world:
        how = "in one process" if saved == 1 else f"with --nproc {saved}"
        raise RunFolderError(
            f"--resume {run_dir}: the run was trained by {saved} process(es) and this is "
            f"{world}; the batches differ with the number of processes, so resume it {how}"
        )


def swa_schedule(parts: RunParts, swa: SwaConfig, first_epoch: int, lr: float) -> Any:
    """The configured schedule, then an anneal to the SWA lr from the first averaged epoch."""
    from nntune.optim import SwaSchedule

    def build(h: Horizon) -> Schedule:
        inner = parts.schedule(h)
        start = h.steps_for(first_epoch)
        anneal = h.steps_for(first_epoch + swa.anneal_epochs) - start
        assert swa.lr is not None
        return SwaSchedule(inner, start, swa.lr / lr, anneal, swa.anneal)

    return build


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"train.device = {name}, but no CUDA device is available (use cpu or auto)"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"train.device = {name}, but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Train from a config, optionally with your own model and/or data.

    >>> Trainer("examples/mnist1d.yaml", overrides=["train.epochs=3"]).fit()  # doctest: +SKIP
    >>> Trainer({"train": {"epochs": 5}}, model=my_net, data=(X, y)).fit()   # doctest: +SKIP

    ``data``/``val_data``/``test_data`` are ``(x, y)`` arrays or tensors, which go through the
    config's splits and preprocessing like any dataset (a given ``val_data``/``test_data``
    replaces the corresponding split), or a ``torch.utils.data.Dataset``, which is used as is
    (no preprocessing), batched by a DataLoader.
    """

    def __init__(
        self,
        config: ConfigSource | None = None,
        overrides: Sequence[str] | Mapping[str, Any] | None = None,
        *,
        model: nn.Module | None = None,
        data: UserData | None = None,
        val_data: UserData | None = None,
        test_data: UserData | None = None,
        out: str | Path | None = None,
        runs_root: str | Path = "runs",
        resume: str | Path | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool = False,
        write: bool = True,
        init_weights: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        self.source = config
        self.overrides = overrides
        self.user_model = model
        self.data = data
        self.val_data = val_data
        self.test_data = test_data
        self.out = Path(out) if out is not None else None
        self.runs_root = Path(runs_root)
        self.resume = Path(resume) if resume is not None else None
        self.callbacks = list(callbacks)
        self.progress = progress
        self.write = write
        self.run_dir: Path | None = None
        # what the doctor's detectors found (train.doctor: true), also after a failed run
        self.doctor: dict[str, Any] | None = None
        self.failed_summary: dict[str, Any] | None = None  # summary.json of a failed run
        self.init_report: dict[str, Any] | None = None  # what train.init_from loaded
        # weights to start from (a stage's predecessor), matched like train.init_from
        self.init_weights = init_weights
        if (val_data is not None or test_data is not None) and data is None:
            raise DataError("val_data/test_data need data (the training data) too")

    # --- the whole run ------------------------------------------------------------------------

    def fit(self) -> RunResult:
        config = self._config()
        shard = from_environment()
        if shard is not None:
            check_distributed(config, shard.world)
        if config.stages:
            from nntune.train.staged import fit_stages

            return fit_stages(self, config)
        config = check_components(config)
        if shard is None:
            device = resolve_device(config.train.device)
        else:
            device = device_for(shard, config.train.device)
            init_process_group(device)
        # the processes of one node share its cores
        local = shard.local_world if shard else 1
        torch.set_num_threads(config.train.threads or max(1, available_cores() // local))
        seed_everything(config.seed)
        bundle, loader = self._bundle(config)
        if is_reconstruction(config):
            bundle = as_reconstruction(bundle)
        config = resolve_for_data(config, bundle)
        if self.resume is not None and (shard is None or shard.main):
            self._check_resume_config(config)  # rank 0 reads the run folder (multi-node: its own)
        parts = build_parts(config, bundle, device, self.user_model)
        check_combinations(config, parts, device, loader is not None, shard, len(bundle.x_train))
        if config.train.sync_bn:
            synced = sync_batchnorm(parts.model, device) if shard else _batchnorms(parts.model)
            if synced == 0:
                raise ConfigError(
                    "train.sync_bn: true, but the model has no BatchNorm layer to synchronize "
                    "(set model.norm: batch, or remove train.sync_bn)"
                )
        self.init_report = None
        if config.train.init_from is not None and self.resume is None:
            # before the weight average copies the model: it starts from these weights too
            self.init_report = load_matching_weights(parts.model, config.train.init_from)
        if self.init_weights is not None and self.resume is None:
            self.init_report = {
                "source": "the previous stage",
                **load_matching(parts.model, self.init_weights, "the previous stage"),
            }
        entry = STRATEGIES.get(config.strategy.name, key="strategy")
        strategy = build_strategy(
            entry.name,
            entry.parse_options(config.strategy.options, "strategy"),
            {"task": bundle.task, "bundle": bundle, "device": device},
        )
        freeze = (
            Freeze(parts.model, config.train.freeze, config.train.freeze_until)
            if config.train.freeze
            else None
        )
        clip = config.train.grad_clip
        l1, l2 = config.regularization.penalties()
        settings = EngineSettings(
            epochs=config.train.epochs,
            task=bundle.task,
            metrics=list(config.train.metrics or []),
            accumulate=config.train.accumulate,
            clip_norm=clip.norm if clip else None,
            clip_value=clip.value if clip else None,
            clip_agc=clip.agc if clip else None,
            agc_eps=clip.agc_eps if clip else 1e-3,
            l1=l1,
            l2=l2,
            weight_decay=parts.weight_decay,
            # auto with a closure optimizer (L-BFGS, Newton) is fp32: they take no autocast
            precision=(
                "fp32"
                if needs_closure(parts.optimizer)
                else resolve_precision(config.train.precision, device)
            ),
            channels_last=config.train.channels_last,
        )
        if settings.l1 or settings.l2:
            from nntune.optim import decayed_parameters

            settings.penalized = list(decayed_parameters(parts.model))
        batches = make_batches(config, bundle, loader, parts.full_batch, device, shard)
        schedule = parts.schedule
        average = None
        if config.train.ema is not None:
            ema = config.train.ema
            average = WeightAverage(parts.model, "ema", decay=ema.decay, warmup=ema.warmup)
        elif config.train.swa is not None:
            swa = config.train.swa
            first = swa.start_epoch(config.train.epochs)
            average = WeightAverage(parts.model, "swa", start_epoch=first)
            if swa.lr is not None:
                schedule = swa_schedule(parts, swa, first, parts.optimizer.param_groups[0]["lr"])
        val = None
        if bundle.x_val is not None and bundle.y_val is not None:
            val = (bundle.x_val.to(device), bundle.y_val.to(device))

        engine_horizon = horizon(batches, settings)
        schedule(engine_horizon)  # schedule errors now, before any file exists
        # experiment trackers log what the run folder holds: only runs that write one track
        writes = self.write and (shard is None or shard.main)  # rank 0 alone writes files
        track = config.train.log_to if writes else []
        if track:
            check_trackers(track, config.train.mlflow_uri)  # before any file exists, too
        run_dir = self._shared_run_dir(config, shard) if self.write else None
        self.run_dir = run_dir
        meta = self._meta(config, bundle)
        callbacks: list[Callback] = [NanGuard(config.train.max_nonfinite)]
        if freeze is not None:
            callbacks.append(freeze)
        early = config.train.early_stopping
        if early is not None:
            callbacks.append(
                EarlyStopping(
                    early.monitor, early.patience, early.min_delta, early.restore_best, early.mode
                )
            )
        main = shard is None or shard.main
        probe = DoctorProbe(config.train.probe_every) if config.train.doctor and main else None
        if probe is not None:
            callbacks.append(probe)
        callbacks += self.callbacks
        callbacks += build_callbacks(
            config.train.callbacks,
            {"run_dir": run_dir, "task": bundle.task, "epochs": config.train.epochs},
        )
        monitor = config.train.monitor or "val_loss"
        if writes:
            assert run_dir is not None
            from nntune.optim import infer_mode

            mode = (
                early.mode
                if early and early.monitor == monitor and early.mode != "auto"
                else infer_mode(monitor)
            )
            callbacks.append(
                Checkpoints(
                    run_dir / "checkpoints", monitor, mode, meta, config.train.checkpoint_every
                )
            )
            callbacks.append(MetricsLog(run_dir / METRICS))
            if config.train.snapshots:
                ends = cycle_end_epochs(
                    schedule(engine_horizon), engine_horizon, config.train.epochs
                )
                callbacks.append(Snapshots(run_dir / "checkpoints", ends, meta))
        tracking = None
        if writes and run_dir is not None and track:
            tracking = Tracking(
                run_dir,
                track,
                hyperparameters(config_to_dict(config)),
                config.train.mlflow_uri,
                config.train.mlflow_experiment or config.name or run_dir.name,
            )
            callbacks.append(tracking)
        if self.progress and (shard is None or shard.main):
            callbacks.append(ProgressBar(config.name or "train", monitor))
        parallel = None
        if shard is not None:
            # after init_from: DDP starts every rank from rank 0's weights
            parallel = DataParallel(shard, parts.model, device, find_unused=bool(freeze))
        engine = Engine(
            parts.model,
            parts.loss,
            parts.optimizer,
            schedule,
            batches,
            settings,
            val=val,
            augment=parts.augment,
            callbacks=callbacks,
            seed=config.seed,
            average=average,
            strategy=strategy,
            parallel=parallel,
        )
        if self.resume is not None and run_dir is not None:
            self._load_state(engine, run_dir, writes)
        elif writes and run_dir is not None:
            write_code(run_dir, config)
            write_text_atomic(run_dir / CONFIG, config_to_yaml(config))

        self.bundle = bundle
        self.config = config
        try:
            if tracking is not None:
                tracking.open(engine.state.epoch)  # outside the training time the run measures
            history, summary = self._train(
                engine, config, bundle, parts, device, run_dir if writes else None, probe
            )
            if tracking is not None:
                tracking.finish(summary)
        except TrainingError:
            if tracking is not None and self.failed_summary is not None:
                tracking.finish(self.failed_summary)
            raise
        finally:
            if tracking is not None:
                tracking.close()  # interrupted: the MLflow run is marked KILLED
        self.model = parts.model
        self.bundle = bundle
        self.config = config
        return RunResult(run_dir=run_dir, summary=summary, history=history)

    # --- pieces -------------------------------------------------------------------------------

    def _train(
        self,
        engine: Engine,
        config: Config,
        bundle: DataBundle,
        parts: RunParts,
        device: torch.device,
        run_dir: Path | None,
        probe: DoctorProbe | None,
    ) -> tuple[Any, dict[str, Any]]:
        """Train, then write summary.json (also when training fails: then it is kept in
        ``failed_summary`` and the error goes on)."""
        self.failed_summary = None
        try:
            history = engine.fit()
        except TrainingError as err:
            if probe is not None:
                self.doctor = doctor_findings(config, bundle, engine, probe, str(err))
            if run_dir is not None:
                summary = self._summary(config, bundle, engine, parts, device, run_dir, str(err))
                if self.doctor is not None:
                    summary["doctor"] = self.doctor
                write_json_atomic(run_dir / SUMMARY, summary)
                self.failed_summary = summary
            raise
        summary = self._summary(config, bundle, engine, parts, device, run_dir, None)
        if probe is not None:
            self.doctor = summary["doctor"] = doctor_findings(config, bundle, engine, probe, None)
        if run_dir is not None:
            write_json_atomic(run_dir / SUMMARY, summary)
        return history, summary

    def _config(self) -> Config:
        if self.resume is not None and (self.source is None or is_main_process()):
            run_dir = existing_run_dir(self.resume)
            if self.source is None:
                return load_config(run_dir / CONFIG, self.overrides)
        if self.source is None:
            return load_config({}, self.overrides)
        return load_config(self.source, self.overrides)

    def _check_resume_config(self, config: Config) -> None:
        assert self.resume is not None
        saved = load_config(self.resume / CONFIG)
        mine, theirs = _flatten(config_to_dict(config)), _flatten(config_to_dict(saved))
        differ = sorted(
            k
            for k in set(mine) | set(theirs)
            if mine.get(k) != theirs.get(k) and k not in RESUMABLE_CHANGES
        )
        code = [k.removeprefix("code.") for k in differ if k.startswith("code.")]
        if code:
            raise ConfigError(
                f"--resume {self.resume}: user code changed since the run started: "
                f"{', '.join(code)} (sha256 recorded in its config.yaml under code:); a resumed "
                "run would train on with other code than it began with, so restore the file(s) "
                "or start a new run"
            )
        if differ:
            shown = ", ".join(f"{k}: {theirs.get(k)!r} → {mine.get(k)!r}" for k in differ[:8])
            raise ConfigError(
                f"--resume {self.resume}: the config differs from the run's config.yaml in "
                f"{shown}; resume with the same config (only {', '.join(RESUMABLE_CHANGES)} "
                "may change)"
            )

    def _bundle(self, config: Config) -> tuple[DataBundle, Dataset | None]:
        if self.data is None:
            bundle = prepare_data(config.data, config.seed)
            return bundle, bundle.train_dataset
        if isinstance(self.data, Dataset) and not isinstance(self.data, TensorDataset):
            return _dataset_bundle(self.data, self.val_data, self.test_data, config), self.data
        raw = RawDataset(
            name="user data",
            x=_array(_pair(self.data, "data")[0]),
            y=_array(_pair(self.data, "data")[1]),
        )
        if self.test_data is not None:
            raw.x_test, raw.y_test = (_array(v) for v in _pair(self.test_data, "test_data"))
        val = None
        if self.val_data is not None:
            val = tuple(_array(v) for v in _pair(self.val_data, "val_data"))
        return prepare_data(config.data, config.seed, raw, val=val), None  # type: ignore[arg-type]

    def _run_dir(self, config: Config) -> Path:
        if self.resume is not None:
            run_dir = existing_run_dir(self.resume)
            if not (run_dir / LAST).exists():
                raise RunFolderError(
                    f"--resume {run_dir}: no {LAST} in it (the run stopped before its first "
                    "epoch ended); start it again instead"
                )
            return run_dir
        return new_run_dir(config.name or "run", self.out, self.runs_root)

    def _meta(self, config: Config, bundle: DataBundle) -> dict[str, Any]:
        meta = bundle.meta()
        meta["config"] = config_to_dict(config)
        meta["custom_model"] = type(self.user_model).__name__ if self.user_model else None
        return meta

    def _shared_run_dir(self, config: Config, shard: Shard | None) -> Path:
        """The run folder: rank 0 makes it (or fails to) and tells the other ranks."""
        if shard is None:
            return self._run_dir(config)
        from nntune.train.distributed import broadcast

        made: Path | None = None
        problem = None
        if shard.main:
            try:
                made = self._run_dir(config)
            except RunFolderError as err:
                problem = str(err)
        made, problem = broadcast((made, problem))
        if problem is not None or made is None:
            raise RunFolderError(problem or "rank 0 could not make the run folder")
        return made

    def _load_state(self, engine: Engine, run_dir: Path, writes: bool = True) -> None:
        parallel = engine.parallel
        if parallel is None:
            payload = load_checkpoint(run_dir / LAST)
        else:
            # rank 0 reads last.pt and hands it on: the run folder need not be on shared storage
            from nntune.train.distributed import broadcast

            payload = broadcast(load_checkpoint(run_dir / LAST) if parallel.shard.main else None)
        check_world_size(run_dir, payload, engine.world_size)
        try:
            engine.load_state_dict(payload["engine"])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            raise RunFolderError(
                f"--resume {run_dir}: {LAST} does not match this config's model/optimizer: {err}"
            ) from None
        # metrics.jsonl may hold epochs after the checkpoint (the run was killed): rewrite it
        if writes:
            rows = "".join(json.dumps(r) + "\n" for r in engine.state.history.to_json())
            write_text_atomic(run_dir / METRICS, rows)

    def _summary(
        self,
        config: Config,
        bundle: DataBundle,
        engine: Engine,
        parts: Any,
        device: torch.device,
        run_dir: Path | None,
        error: str | None,
    ) -> dict[str, Any]:
        state = engine.state
        history = state.history
        monitor = config.train.monitor or "val_loss"
        values = [(r.get(monitor), r.epoch) for r in history.records]
        finite = [(v, e) for v, e in values if v is not None and math.isfinite(v)]
        from nntune.optim import infer_mode

        best = None
        if finite:
            pick = min if infer_mode(monitor) == "min" else max
            best = pick(finite, key=lambda pair: pair[0])
        splits: dict[str, dict[str, float | None] | None] = {}
        for name in ("val", "test"):
            part = bundle.split(name)
            if part is None or error is not None:
                splits[name] = None
                continue
            x, y = part
            chosen = summary_metrics(bundle.task, config.train.metrics)
            scores = evaluate(
                parts.model, parts.loss, bundle.task, x.to(device), y.to(device), chosen
            )
            splits[name] = {k: _finite_or_none(v) for k, v in scores.items()}
        seconds = engine.elapsed
        status = "failed" if error else ("stopped" if engine.stop_reason else "completed")
        return {
            "name": config.name,
            "run_dir": str(run_dir) if run_dir else None,
            "status": status,
            "stop_reason": error or engine.stop_reason,
            "restored": engine.restored,
            "task": bundle.task,
            "dataset": bundle.dataset,
            "monitor": monitor,
            "best_epoch": best[1] if best else None,
            "best_value": best[0] if best else None,
            "epochs_run": state.epoch,
            "steps": state.step,
            "skipped_steps": sum(int(r.extra.get("skipped_steps", 0)) for r in history.records),
            "seconds": round(seconds, 4),
            "steps_per_second": round(state.step / seconds, 3) if seconds > 0 else None,
            "parameters": count_parameters(parts.model),
            "val": splits["val"],
            "test": splits["test"],
            "seed": config.seed,
            "device": str(device),
            # data-parallel training: processes, and the batch size of one optimizer step
            "world_size": engine.world_size,
            "global_batch_size": config.train.batch_size
            * engine.world_size
            * config.train.accumulate,
            "threads": torch.get_num_threads(),
            "precision": engine.settings.precision,  # what train.precision resolved to
            "versions": {
                "nntune": _version(),
                "torch": torch.__version__,
                "python": sys.version.split()[0],
            },
            **({"init_from": self.init_report} if self.init_report else {}),
            # an image folder: its size, channels, and the files skipped (on_error: skip)
            **({"images": bundle.image} if bundle.image else {}),
            # a text column: the fitted vocabulary's size, the length, what tokenizing found
            **({"text": text_summary(bundle.text)} if bundle.text else {}),
        }


# only these keys may differ between a run's config.yaml and the config it is resumed with
RESUMABLE_CHANGES = ("train.epochs", "train.threads", "train.checkpoint_every")


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: tree}


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _version() -> str:
    from nntune import __version__

    return __version__


def _pair(data: Any, key: str) -> tuple[Any, Any]:
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        return data.tensors[0], data.tensors[1]
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise DataError(
        f"{key}: expected (x, y) arrays/tensors or a torch Dataset, got {type(data).__name__}"
    )


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _materialize(dataset: Dataset, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        items = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
        xs = torch.stack([torch.as_tensor(x) for x, _ in items])
        ys = torch.stack([torch.as_tensor(y) for _, y in items])
    except (TypeError, ValueError, RuntimeError) as err:
        raise DataError(
            f"{key}: items must be (x, y) pairs of tensors of one shape: {err}"
        ) from None
    return xs, ys


def _dataset_bundle(
    train: Dataset, val: UserData | None, test: UserData | None, config: Config
) -> DataBundle:
    """A bundle for a Dataset used as is: no splits or preprocessing; val/test in memory."""
    x0, y0 = train[0]
    y0 = torch.as_tensor(y0)
    task = config.data.task
    if task == "auto":
        task = "classification" if not y0.is_floating_point() else "regression"
    parts: dict[str, tuple[torch.Tensor, torch.Tensor] | None] = {}
    for key, part in (("val_data", val), ("test_data", test)):
        if part is None:
            parts[key] = None
        elif isinstance(part, Dataset):
            parts[key] = _materialize(part, key)
        else:
            a, b = _pair(part, key)
            parts[key] = (torch.as_tensor(a), torch.as_tensor(b))
    if task == "classification":
        # one pass over the targets: the number of classes sizes a built model and the metrics
        n_outputs = 1 + max(int(torch.as_tensor(train[i][1])) for i in range(len(train)))  # type: ignore[arg-type]
    else:
        n_outputs = int(y0.numel())
    return DataBundle.of_dataset(
        parts["val_data"],
        parts["test_data"],
        task=task,
        n_outputs=n_outputs,
        sample_shape=tuple(torch.as_tensor(x0).shape),
        dataset="user Dataset",
    )


def train(
    config: ConfigSource,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    **options: Any,
) -> RunResult:
    """Train ``config`` (a YAML path, a mapping or a Config) and write a run folder.

    ``overrides`` are ``"key=value"`` strings as for ``--set`` or a ``{dotted_key: value}``
    mapping. Keyword options are those of :class:`Trainer` (``out``, ``resume``, ``model``,
    ``data``, ``callbacks``...).
    """
    return Trainer(config, overrides, **options).fit()
