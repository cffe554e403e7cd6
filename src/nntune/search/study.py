"""One search worker: asks Optuna for trials, trains each with the nntune engine, tells results.

The loop uses Optuna's ask-and-tell interface rather than ``study.optimize`` so that nntune owns
what a trial's end means: pruned by the pruner or by the deadline (recorded as PRUNED), failed
with a reason (a bad sampled combination, NaN: FAIL, the study goes on), interrupted (FAIL,
then the worker stops), and how many trials the study may hold in all (``--trials`` counts the
study's total: asking for a trial and counting the study's trials happen under one file lock,
so local workers never overshoot).
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import json
import math
import os
import signal
import socket
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch

from nntune.config import Config, apply_overrides, validate_config
from nntune.errors import ConfigError, NntuneError, TrainingError
from nntune.optim import infer_mode
from nntune.packages import require
from nntune.records import EpochRecord
from nntune.search.choice import GP_DEFAULT_STARTUP
from nntune.search.space import Param, grid_space, suggest
from nntune.train.build import REGISTRIES
from nntune.train.callbacks.base import Callback, Decision, Stop, TrainState

SAMPLERS = ("auto", "tpe", "random", "grid", "gp", "cmaes")
PRUNERS = ("auto", "asha", "hyperband", "median", "none")
# objectives that are not logged metrics but properties of the run
RUN_OBJECTIVES = {"parameters": "minimize", "seconds": "minimize"}
HEARTBEAT_SECONDS = 10.0

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class Job:
    """Everything a worker process needs (written as JSON for worker subprocesses)."""

    config: dict[str, Any]  # the base config (resolved user form)
    space: dict[str, dict[str, Any]]
    study: str
    storage: str  # an Optuna storage URL, or journal:<path> for the embedded file
    study_dir: str
    objectives: list[str]
    directions: list[str]
    sampler: str = "tpe"
    pruner: str = "asha"
    trials: int | None = None
    deadline: float | None = None  # time.time() at which the search ends
    seed: int = 0
    worker: int = 0
    workers: int = 1
    threads: int = 1
    quiet: bool = False
    grid_size: int | None = None
    gp_startup: int = GP_DEFAULT_STARTUP  # GPSampler's random start-up trials (search/choice.py)
    gp_until: int | None = None  # complete trials after which a gp study goes on with TPE
    choice: str = "as given"  # why this sampler and pruner (search/choice.py)
    folds: int | None = None  # search.folds resolved (search/folds.py): None is one split
    folds_reason: str = "as given"
    # why a one-split study's best.yaml keeps its split (search/folds.py refit_blocker)
    refit_blocker: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls(**json.loads(text))


# --- Optuna objects from names -----------------------------------------------------------------


def database_url(url: str) -> str:
    """``postgresql://`` with the driver nntune installs (psycopg2): SQLAlchemy 2.1 reads a bare
    ``postgresql://`` as psycopg 3."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def check_driver(url: str) -> None:
    """The database driver of a storage URL is installed (before SQLAlchemy's ImportError)."""
    if database_url(url).startswith("postgresql+psycopg2://"):
        require("psycopg2", f"--storage {url}")


def make_storage(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    check_driver(url)
    try:
        with warnings.catch_warnings():
            # heartbeats and the retry callback are marked experimental/deprecated in Optuna 5
            # but are its only mechanism for trials of dead workers on other machines
            warnings.simplefilter("ignore")
            retry = optuna.storages.RetryFailedTrialCallback(max_retry=3)
            # Optuna 4.9 renamed failed_trial_callback to heartbeat_stale_trial_callback
            parameters = inspect.signature(optuna.storages.RDBStorage).parameters
            callback = (
                "heartbeat_stale_trial_callback"
                if "heartbeat_stale_trial_callback" in parameters
                else "failed_trial_callback"
            )
            options: dict[str, Any] = {callback: retry}
            return optuna.storages.RDBStorage(
                database_url(url),
                heartbeat_interval=int(HEARTBEAT_SECONDS),
                grace_period=int(3 * HEARTBEAT_SECONDS),
                **options,
            )
    except (ImportError, ModuleNotFoundError) as err:
        raise ConfigError(
            f"--storage {url}: the database driver is missing ({err}); for PostgreSQL: "
            "pip install 'nntune[postgres]'"
        ) from None
    except Exception as err:  # sqlalchemy's errors: a bad URL, no server, wrong credentials
        raise ConfigError(f"--storage {url}: cannot open the study storage: {err}") from None


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its ``study.stop()`` when the grid is done: that works only
    inside ``study.optimize``; the worker stops at the grid's size itself."""

    def after_trial(self, *args: Any, **kwargs: Any) -> None:
        pass


class _GPThenTPESampler(optuna.samplers.BaseSampler):
    """GPSampler while the study holds fewer than ``until`` complete trials, TPE after (see
    search/choice.py). Each trial keeps the sampler picked when it started, so its relative and
    independent samples come from one model."""

    def __init__(self, gp: Any, tpe: Any, until: int) -> None:
        self._gp, self._tpe, self._until = gp, tpe, until
        self._picked: dict[int, Any] = {}

    def _for(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> Any:
        if trial.number not in self._picked:
            complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            picked = self._gp if len(complete) < self._until else self._tpe
            self._picked[trial.number] = picked
            # which model proposed the trial: trials.csv's system_attrs_sampler column
            name = "gp" if picked is self._gp else "tpe"
            study._storage.set_trial_system_attr(trial._trial_id, "sampler", name)
        return self._picked[trial.number]

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, Any]:
        return self._for(study, trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return self._for(study, trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: Any,
    ) -> Any:
        return self._for(study, trial).sample_independent(
            study, trial, param_name, param_distribution
        )

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._for(study, trial).before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._for(study, trial).after_trial(study, trial, state, values)
        self._picked.pop(trial.number, None)

    def reseed_rng(self) -> None:
        self._gp.reseed_rng()
        self._tpe.reseed_rng()


def _tpe(seed: int, workers: int) -> Any:
    with warnings.catch_warnings():
        # group=True (conditional spaces) is marked experimental; it is what makes per-choice
        # options work, and a warning on every run says nothing to act on
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            multivariate=True, group=True, seed=seed, constant_liar=workers > 1
        )


def make_sampler(
    name: str,
    params: list[Param],
    seed: int,
    workers: int,
    multi: bool,
    gp_startup: int = GP_DEFAULT_STARTUP,
    gp_until: int | None = None,
) -> Any:
    """The Optuna sampler of a concrete name (``auto`` is resolved by search/choice.py first)."""
    samplers = optuna.samplers
    if name == "tpe":
        return _tpe(seed, workers)
    if name == "random":
        return samplers.RandomSampler(seed=seed)
    if name == "grid":
        return _GridSampler(grid_space(params), seed=seed)
    if name == "gp":
        gp = samplers.GPSampler(
            seed=seed, n_startup_trials=gp_startup, warn_independent_sampling=False
        )
        return gp if gp_until is None else _GPThenTPESampler(gp, _tpe(seed, workers), gp_until)
    if name == "cmaes":
        if multi:
            raise ConfigError("--sampler cmaes optimizes one objective; use tpe, random or grid")
        return samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ConfigError(f"--sampler {name!r}: allowed: {', '.join(SAMPLERS)}")


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    pruners = optuna.pruners
    if name == "asha":
        # first rung at ~1/9 of the epochs (rungs E/9, E/3, E with η = 3): the first epochs of a
        # warmup or one-cycle schedule say little about where a trial ends (min_resource 1
        # pruned 30 of 31 MNIST-1D trials at epoch 1-3 in bench/tune.py)
        return pruners.SuccessiveHalvingPruner(min_resource=max(1, epochs // 9), reduction_factor=3)
    if name == "hyperband":
        return pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    if name == "median":
        return pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if name == "none":
        return pruners.NopPruner()
    raise ConfigError(f"--pruner {name!r}: allowed: {', '.join(PRUNERS)}")


def open_study(job: Job, params: list[Param]) -> optuna.Study:
    multi = len(job.objectives) > 1
    sampler = make_sampler(
        job.sampler,
        params,
        job.seed + job.worker,
        job.workers,
        multi,
        gp_startup=job.gp_startup,
        gp_until=job.gp_until,
    )
    epochs = int(job.config.get("train", {}).get("epochs", 20))
    pruner = make_pruner("none" if multi else job.pruner, epochs)
    return optuna.create_study(
        study_name=job.study,
        storage=make_storage(job.storage),
        sampler=sampler,
        pruner=pruner,
        directions=job.directions,  # type: ignore[arg-type]
        load_if_exists=True,
    )


# --- trial states --------------------------------------------------------------------------------


@contextlib.contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    """Serializes count-then-ask among the workers of this machine."""
    study_dir.mkdir(parents=True, exist_ok=True)
    with open(study_dir / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards ``--trials``: every trial of the study except those waiting to
    run and failed ones that were re-queued (a retry replaces its failed trial)."""
    trials = study.get_trials(deepcopy=False)
    replaced = set()
    for trial in trials:
        # retries by nntune's sweep (journal file) or by Optuna's RetryFailedTrialCallback
        # (databases; it records the original in the "failed_trial" system attribute)
        original = trial.user_attrs.get("retry_of", trial.system_attrs.get("failed_trial"))
        if original is not None:
            replaced.add(original)
    return sum(
        t.state != optuna.trial.TrialState.WAITING and t.number not in replaced for t in trials
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_trials(study: optuna.Study) -> list[int]:
    """Fail and re-queue RUNNING trials whose worker process on this host is gone (a SIGKILLed
    worker leaves its trial RUNNING in a journal file; RDB storages use Optuna's heartbeat)."""
    host = socket.gethostname()
    swept = []
    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != host or "pid" not in attrs or _alive(int(attrs["pid"])):
            continue
        storage.set_trial_user_attr(trial._trial_id, "fail_reason", "worker process died")
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        swept.append(trial.number)
    return swept


# --- the trial ----------------------------------------------------------------------------------


class DeferredInterrupt:
    """Ctrl-C in a worker. A storage write cut half-way can leave a journal entry half written
    or a lock file behind, so SIGINT only sets a flag, and the worker raises KeyboardInterrupt
    at safe points: between training steps (:class:`TrialReporter`) and between trials. A
    second Ctrl-C raises at once."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def __enter__(self) -> DeferredInterrupt:
        main = threading.current_thread() is threading.main_thread()
        # an ignored SIGINT (nohup, a background job) stays ignored
        if main and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handler(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


class TrialReporter(Callback):
    """Reports the searched metric every epoch; stops the run when the pruner or the deadline
    says so."""

    key = "trial_reporter"

    def __init__(
        self,
        trial: optuna.Trial,
        metric: str | None,
        pruning: bool,
        deadline: float | None,
        interrupt: DeferredInterrupt | None = None,
    ) -> None:
        self.trial = trial
        self.metric = metric
        self.pruning = pruning
        self.deadline = deadline
        self.interrupt = interrupt
        self.pruned: str | None = None

    def after_backward(self, state: TrainState, loss: torch.Tensor) -> Decision:
        if self.interrupt is not None:
            self.interrupt.check()  # a safe point: no storage write is under way
        if self.deadline is not None and time.time() >= self.deadline:
            self.pruned = "deadline"
            return Stop("the search's time budget ran out")
        return None

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> Decision:
        if self.deadline is not None and time.time() >= self.deadline:
            self.pruned = "deadline"
            return Stop("the search's time budget ran out")
        if self.metric is None:
            return None
        value = record.to_json().get(self.metric)
        if value is None or not math.isfinite(value):
            return None
        self.trial.report(float(value), step=record.epoch)
        if self.pruning and self.trial.should_prune():
            self.pruned = "pruner"
            return Stop(f"pruned at epoch {record.epoch}")
        return None


def options_of(component: str, name: str) -> set[str] | None:
    """Option names of the component ``name`` of config field ``component`` (None: unknown)."""
    from nntune.config import COMPONENT_FIELDS

    family = COMPONENT_FIELDS.get(component)
    if family is None:
        return None
    registry = REGISTRIES[family]
    try:
        entry = registry.get(name, key=component)
    except NntuneError:
        return None
    return set(entry.options.model_fields)


def trial_config(base: dict[str, Any], overrides: dict[str, Any], name: str) -> Config:
    """The base config with the trial's values; options a newly chosen component does not take
    (adamw's betas when the trial picks momentum) are dropped."""
    from nntune.config import COMPONENT_FIELDS

    raw = apply_overrides(base, list(overrides.items()))
    for component in COMPONENT_FIELDS:
        if component.endswith("[]"):
            continue
        if f"{component}.name" not in overrides and component not in overrides:
            continue
        node: Any = raw
        *parents, last = component.split(".")
        for part in parents:
            node = node.get(part, {})
        value = node.get(last)
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            allowed = options_of(component, value["name"])
            if allowed is not None:
                node[last] = {k: v for k, v in value.items() if k == "name" or k in allowed}
    raw["name"] = name
    return validate_config(raw)


def best_of_folds(
    curves: Sequence[Sequence[float | None]], direction: str
) -> tuple[float, list[float], int]:
    """The best point of the folds' mean curve, each fold's value there and its epoch (1-based).

    Each curve is one fold's metric per epoch; a fold that stopped early (or did not log an
    epoch) keeps its last finite value. Scoring one training length for all folds, as
    xgboost's and LightGBM's ``cv`` do, rather than the mean of each fold's own best epoch:
    each fold's minimum is picked on that fold's own few validation rows, which rewards noisy
    curves (on wine's 28-row folds the search then kept high-lr, high-dropout trials whose
    retrained models made twice the test errors). One curve: its best finite value."""
    filled: list[list[float | None]] = []
    for curve in curves:
        last: float | None = None
        row: list[float | None] = []
        for value in curve:
            if value is not None and math.isfinite(value):
                last = value
            row.append(last)
        filled.append(row)
    if not filled or not all(filled):
        return math.nan, [], 0
    best, at, best_epoch = math.nan, [], 0
    for epoch in range(max(len(row) for row in filled)):
        points = [row[min(epoch, len(row) - 1)] for row in filled]
        if any(point is None for point in points):
            continue  # a fold has no value yet
        values = [float(point) for point in points if point is not None]
        mean = statistics.fmean(values)
        if math.isnan(best) or (mean > best if direction == "maximize" else mean < best):
            best, at, best_epoch = mean, values, epoch + 1
    return best, at, best_epoch


@dataclass
class TrialOutcome:
    state: optuna.trial.TrialState
    values: list[float] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def run_trial(
    job: Job,
    study: optuna.Study,
    trial: optuna.Trial,
    params: list[Param],
    interrupt: DeferredInterrupt | None = None,
) -> TrialOutcome:
    import nntune

    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    base = job.config
    base_config = validate_config(base)
    try:
        overrides = suggest(trial, params, base_config, options_of)
        config = trial_config(base, overrides, f"{job.study}-trial{trial.number:04d}")
    except NntuneError as err:
        return TrialOutcome(optuna.trial.TrialState.FAIL, attrs={"fail_reason": str(err)})
    out = Path(job.study_dir) / "trials" / f"{trial.number:04d}"
    trial.set_user_attr("run_dir", str(out))
    single = len(job.objectives) == 1
    folds = job.folds
    # per fold, per objective: the metric's epochs (a run-level objective: its one value)
    fold_curves: list[list[list[float | None]]] = []
    attrs: dict[str, Any] = {"run_dir": str(out)}
    for index in range(folds or 1):
        fold_config, fold_dir = config, out
        if folds:
            # fold i validates on the i-th of k parts of the training part; fold 0's run folder
            # is the trial's, the others sit beside it
            fold_config = trial_config(
                base,
                {**overrides, "data.val_fold": {"folds": folds, "index": index}},
                f"{config.name}-fold{index}",
            )
            fold_dir = out if index == 0 else out.with_name(f"{out.name}.fold{index}")
        # the pruner sees the first fold's epochs only: every trial's reports are comparable
        reporting = single and index == 0
        reporter = TrialReporter(
            trial, job.objectives[0] if reporting else None, reporting, job.deadline, interrupt
        )
        try:
            result = nntune.train(fold_config, out=fold_dir, callbacks=[reporter], progress=False)
        except NntuneError as err:
            reason = str(err) if not folds else f"fold {index}: {err}"
            failed = {**attrs, "fail_reason": reason}
            if isinstance(err, TrainingError):
                failed["diverged"] = True  # trained, badly: a result, not an invalid config
            return TrialOutcome(optuna.trial.TrialState.FAIL, attrs=failed)
        if index == 0:
            attrs["test"] = result.summary.get("test", {})
        if reporter.pruned is not None:
            attrs["pruned_by"] = reporter.pruned
            return TrialOutcome(optuna.trial.TrialState.PRUNED, attrs=attrs)
        curves: list[list[float | None]] = [
            [float(result.summary[objective])]
            if objective in RUN_OBJECTIVES
            else result.history.values(objective)
            for objective in job.objectives
        ]
        if not all(any(v is not None and math.isfinite(v) for v in curve) for curve in curves):
            where = f" in fold {index}" if folds else ""
            names = ", ".join(job.objectives)
            attrs["fail_reason"] = f"no finite value of {names} was logged{where}"
            attrs["diverged"] = True
            return TrialOutcome(optuna.trial.TrialState.FAIL, attrs=attrs)
        fold_curves.append(curves)
    # one fold: each objective's best epoch; k folds: the best epoch of the folds' mean curve
    scored = [
        best_of_folds([fold[column] for fold in fold_curves], direction)
        for column, direction in enumerate(job.directions)
    ]
    if folds:
        per_fold = [list(values) for values in zip(*(at for _, at, _ in scored), strict=True)]
        attrs["fold_values"] = [v[0] if single else v for v in per_fold]
    if folds and job.objectives[0] not in RUN_OBJECTIVES:
        attrs["refit_epoch"] = scored[0][2]  # the epochs a refit trains for (search.refit)
    elif not folds:
        attrs["refit_epoch"] = kept_epochs(result.summary)
    values = [value for value, _, _ in scored]
    return TrialOutcome(optuna.trial.TrialState.COMPLETE, values=values, attrs=attrs)


def kept_epochs(summary: dict[str, Any]) -> int:
    """The epochs that trained the weights a one-split run kept: the epoch early stopping
    restored, else all it ran. A refit of that trial trains as many (search.refit): the model
    the trial scored, trained on the validation part too. Not the best epoch of the search's
    metric: with a schedule annealing over the configured epochs that point is noise on a flat
    curve (MNIST-1D's one-cycle recipe peaked in validation accuracy at epoch 36 of 50, and
    36 epochs on the whole training part scored 99.0 % against the split's 99.3 %)."""
    if summary.get("restored") and summary.get("best_epoch"):
        return int(summary["best_epoch"])
    return int(summary["epochs_run"])


def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Any:
    """Optuna's heartbeat thread for a trial of an RDB storage (ask-and-tell does not start it
    by itself), so a killed worker's trial is failed and retried by ``fail_stale_trials`` once
    the grace period passes; a no-op for the journal file (see :func:`sweep_stale_trials`)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    with warnings.catch_warnings():  # "supposed to be used with Study.optimize": see above
        warnings.simplefilter("ignore")
        return get_heartbeat_thread(trial._trial_id, study._storage)


def sweep(study: optuna.Study) -> None:
    """Fail (and re-queue) trials of dead workers: by heartbeat in a database, by process id in
    the journal file."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    if is_heartbeat_enabled(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental in Optuna 5: see make_storage
            optuna.storages.fail_stale_trials(study)
    else:
        sweep_stale_trials(study)


def run_worker(job: Job) -> int:
    """Run trials until the study holds ``job.trials``, the deadline passes, or the grid is
    done. Returns the number of trials this worker finished."""
    torch.set_num_threads(max(1, job.threads))
    from nntune.search.space import parse_space

    params = parse_space(job.space)
    study = open_study(job, params)
    study_dir = Path(job.study_dir)
    limit = job.trials
    if job.grid_size is not None:
        limit = job.grid_size if limit is None else min(limit, job.grid_size)
    finished = 0
    with DeferredInterrupt() as interrupt:
        while True:
            interrupt.check()
            if job.deadline is not None and time.time() >= job.deadline:
                break
            with study_lock(study_dir):
                sweep(study)
                if limit is not None and counted_trials(study) >= limit:
                    break
                trial = study.ask()
            try:
                with heartbeat(study, trial):
                    outcome = run_trial(job, study, trial, params, interrupt)
            except KeyboardInterrupt:
                trial.set_user_attr("fail_reason", "interrupted (Ctrl-C)")
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            outcome = penalized(job, study, outcome)
            for key, value in outcome.attrs.items():
                trial.set_user_attr(key, value)
            if outcome.state == optuna.trial.TrialState.COMPLETE:
                study.tell(trial, outcome.values)
            else:
                study.tell(trial, state=outcome.state)
            finished += 1
            if not job.quiet:
                # stderr: stdout carries only the result (--json)
                line = progress_line(study, trial.number, outcome, job)
                print(line, file=sys.stderr, flush=True)
    return finished


def penalized(job: Job, study: optuna.Study, outcome: TrialOutcome) -> TrialOutcome:
    """A diverged trial of a GP study, told as complete with the worst value seen so far.

    Optuna's GPSampler fits only complete trials: a failed one leaves no trace, so it proposes
    the same diverging point again (bench/tune_suite.py: 1,593 identical failed diabetes trials
    of SGD at lr 0.1 in one study). TPE and random search sample around it instead. The worst
    complete value is the mildest penalty that still says "not here" (it cannot become the best
    trial unless it ties the worst); with no complete trial yet, or several objectives, the
    trial stays failed."""
    if job.sampler != "gp" or len(job.directions) != 1 or not outcome.attrs.get("diverged"):
        return outcome
    complete = optuna.trial.TrialState.COMPLETE
    values = [t.value for t in study.get_trials(deepcopy=False, states=(complete,))]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return outcome
    worst = min(finite) if job.directions[0] == "maximize" else max(finite)
    told = f"diverged: told the sampler the worst value, {worst:g}"
    return TrialOutcome(complete, values=[worst], attrs={**outcome.attrs, "penalized": told})


def progress_line(study: optuna.Study, number: int, outcome: TrialOutcome, job: Job) -> str:
    state = outcome.state.name.lower()
    text = f"trial {number:>4}  {state:<8}"
    if outcome.values is not None:
        text += "  " + "  ".join(
            f"{o} {v:.4g}" for o, v in zip(job.objectives, outcome.values, strict=True)
        )
    elif "fail_reason" in outcome.attrs:
        text += f"  {outcome.attrs['fail_reason'][:120]}"
    elif "pruned_by" in outcome.attrs:
        text += f"  by {outcome.attrs['pruned_by']}"
    if len(job.objectives) == 1:
        with contextlib.suppress(ValueError):
            text += f"  | best {study.best_value:.4g} (trial {study.best_trial.number})"
    return text


def directions_for(objectives: list[str], direction: str) -> list[str]:
    """One direction per objective: the given one for a single metric (auto: from its name),
    inferred from the name for several."""
    if len(objectives) == 1 and direction != "auto":
        return [direction]
    result = []
    for objective in objectives:
        if objective in RUN_OBJECTIVES:
            result.append(RUN_OBJECTIVES[objective])
        else:
            result.append("minimize" if infer_mode(objective) == "min" else "maximize")
    return result
