"""Small-budget search quality of nntune's default tuner on a suite of quick tasks.

Each task is a small, deliberately untuned start config (every key the default search space
holds is set explicitly, so the start config *is* a point of the space, and nntune's first
trial is exactly it) that trains in well under a second on one core; its search space is the
one nntune builds when the config has no ``search.space`` (``default_space``):

- ``digits``: scikit-learn's 8x8 digits, mlp [64], 20 epochs;
- ``breast_cancer``: mlp [64], 20 epochs;
- ``wine``: mlp [64], 20 epochs;
- ``diabetes``: regression, mlp [32], 30 epochs (test metric RMSE, lower is better);
- ``mnist1d``: MNIST-1D, ``data.limit: 1000`` training samples, resnet1d [16, 32], 10 epochs.

All of them fix ``data.split_seed: 0``, so every study of a task searches the same training,
validation and test rows (one problem per task: the seeds vary the sampler, the weights'
initialization and the batch order, not the data), and use ``train.threads: 1``: on 2 cores
shared with other work, two torch threads made a 0.05 s wine training take 8 s.

Methods, each a fresh study per seed (``seed`` = the study's seed and the trials' training
seed), all optimizing the default search metric ``val_loss`` (``search.metric``'s default):

- ``nntune``: ``nntune.search.tune(config)`` with no options: what a user gets with no flags
  (``--sampler auto --pruner auto``: on these flat spaces Optuna's GPSampler with 4 random
  start-up trials and no pruning, see ``nntune.search.choice``; the start config enqueued as the
  first trial), except that every task config sets ``search.folds: null``: on these small sets
  the default (auto) would score each trial by 5 folds, and the suite compares search engines
  on one objective per training (the folds' effect is ``bench/tune_zero_config.py``'s to
  measure);
- ``random``: the same with ``sampler="random", pruner="none"``
  (``nntune tune --sampler random --pruner none``; the start config is its first trial too);
- ``optuna``: Optuna used directly with its defaults: ``optuna.create_study`` with its default
  ``TPESampler`` (seeded) and no pruning (the objective reports nothing), on the same space
  (nntune's ``parse_space``/``suggest``/``trial_config`` turn a trial into a config), each
  trial a ``nntune.train(config_dict, out=..., progress=False)`` whose value is the best
  epoch's ``val_loss`` (the value an nntune trial gets); a config nntune rejects is a failed
  trial (``catch=(NntuneError,)``) as in nntune's studies; no start config is enqueued;
- ``nntune-tpe-asha``, ``nntune-tpe``, ``nntune-gp`` (only when named in ``--methods``):
  nntune's tuner with ``sampler="tpe", pruner="asha"`` (its default before ``auto``), with
  ``sampler="tpe", pruner="none"``, and with ``sampler="gp", pruner="none"`` (a named ``gp``
  keeps Optuna's 10 random start-up trials);
- ``flaml``: FLAML's CFO (``flaml.tune.run`` with ``search_alg=CFO(seed=seed, ...)``, flaml
  2.8.0, an optional bench-only install: ``pip install --no-deps flaml==2.8.0``, as ``make
  bench`` does) on the same space (nntune's kinds as ``flaml.tune`` domains, each point turned
  into a config by ``suggest``/``trial_config``) and the same trials and values as ``optuna``
  (a rejected config or a training without a finite value is reported to FLAML as ``inf``);
  no pruning; no ``low_cost_partial_config`` (every trial costs the same epochs: there is no
  low-cost point), the start config is CFO's start point (``points_to_evaluate``, FLAML's way
  to warm-start its local search) and so the first trial, as in ``nntune``'s studies; see
  ``run_flaml``. Without flaml installed the method prints one ``skipped`` line (with the pip
  command) and nothing else.

Budgets count full-training equivalents: a budget of N allows N x the task's epochs of
training, summed over the study's trials in order, each trial costing the epochs it trained
(``epochs_run`` of its run folder's summary.json: a pruned trial costs only its epochs). One
study per (task, method, seed) runs until it has spent the largest budget, and every budget is
scored on the prefix of its trials that fits: the samplers and pruners decide only from the
trials before, so with one worker that prefix is exactly the study a smaller budget would have
run; the trial that crosses a budget is left out (nntune's deadline records a trial it cuts as
pruned, without a value). ``tune()`` has no epoch budget, so the script stops it by wrapping
``nntune.search.study.counted_trials`` (the worker's "is the study full?" count) to report the
study full once the epochs are spent; a study that overspends by more than one trial fails the
run (the hook no longer works).

Scores per study and budget: ``val_best``, the best complete trial's value; ``regret``,
Bayesmark-style normalized regret ``(val_best - opt) / (random_mean - opt)``, where ``opt`` is the
best value any study of the task found (at any budget) and ``random_mean`` the mean
``val_best`` of the ``random`` studies at that budget (so random search scores 1 on average and
the best found 0; signs flip for a maximized metric); when random search's mean is itself the
optimum (one seed, a tiny budget) there is no random scale and the start config's validation
value (mean over the retrain seeds) takes its place (``regret_scale: "start"``); and
``test_mean``: the chosen trial's resolved config (its run folder's config.yaml) retrained on
seeds 0..K-1 (``--retrain-seeds``, default 3; same split), mean test accuracy (classification)
or test RMSE (regression). The start config retrained on the same seeds is the reference
(``start_test_mean``). Identical chosen configs are retrained once.

Lines (stdout, one JSON object each, ``"bench": "tune_suite"``), per task in order:

- ``kind: "start"``: ``task``, ``test_metric``, ``start_test_mean``/``_std``/``_values``, and
  ``start_val``: the start config's best ``val_loss`` (mean over the retrain seeds);
- ``kind: "study"``, one per task x method x seed x budget: ``method``, ``seed``, ``budget``
  (full-training equivalents), ``budget_epochs``, ``epochs`` (spent inside the budget),
  ``trials``, ``complete``, ``pruned``, ``failed`` (inside the budget), ``val_best``,
  ``regret``, ``regret_scale``, ``chosen_trial``, ``test_mean`` and ``test_values`` (its
  retrain), ``seconds`` (wall clock from the study's start to the end of the last trial inside
  the budget, sampler and data preparation included), ``study_seconds`` (the whole study,
  budget overshoot and tune's summary and report included), ``folder``;
- ``kind: "summary"``, one per task x method x budget: ``seeds``, ``metric``, ``direction``,
  ``median_regret``, ``mean_regret``, ``regret_values``, ``regret_scale``, ``val_best``
  (median over seeds), ``val_best_values``, ``random_mean`` and ``opt`` (the normalization),
  ``test_metric``, ``test_mean`` (mean over seeds of each study's retrain mean), ``test_std``,
  ``test_values``, ``start_test_mean``, ``start_test_std``, ``seconds`` (median),
  ``seconds_values``, ``trials_mean``, ``pruned_mean``, ``epochs_mean``;
- ``kind: "skipped"``: ``method``, ``reason`` (flaml, when it is not installed);
- ``kind: "timeout"``, one per ``--timeouts`` S (default 15 and 60; none with ``--quick``):
  ``nntune tune`` run as a command with ``--timeout S`` on the last task's start config:
  ``wall`` (seconds, process start to exit, torch's import included) and ``over`` (wall - S);
- ``kind: "total"`` last: ``seconds`` (the whole run), ``tasks``, ``methods``, ``budgets``,
  ``seeds``, ``retrain_seeds``, ``out``, ``commit`` (``git describe --always --dirty``),
  ``load_average_1min`` (before, after: other work on the machine slows the trainings).

Study folders go to ``--out/studies-<time>/<task>/<method>-s<seed>/`` (a new folder per
invocation, so no study continues an older one); trials' checkpoints are deleted once a study
is scored (``--keep-checkpoints`` keeps them: mnist1d's are 250 kB a trial). Progress goes to
stderr.

Usage: python bench/tune_suite.py [--tasks digits,breast_cancer,wine,diabetes,mnist1d]
       [--methods nntune,random,optuna,flaml] [--budgets 10,20,50] [--seeds 10]
       [--retrain-seeds 3] [--out runs/tune-suite] [--keep-checkpoints] [--quick]
``--quick``: a smoke run: wine, 1 seed, budget 3, methods nntune and random (the flags given
with it still win); about 15 s on 2 cores.

Measured on 2 cores: ``--quick`` takes about 9 s (the study lines' ``seconds`` under 2 s
each). The full default run has not been timed yet; from per-trial costs (0.05-0.45 s a
training, about 0.15 s of study overhead a trial) it was estimated at 45-55 minutes before
the flaml method ran studies (they cost about what the optuna method's do).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from unittest import mock

import optuna
import torch
import yaml

import nntune
import nntune.search.study as study_module
from nntune.config import Config, config_to_dict, validate_config
from nntune.data import prepare_data
from nntune.errors import NntuneError
from nntune.optim import infer_mode
from nntune.search import TuneOptions, tune
from nntune.search.folds import SMALL_VALIDATION, validation_rows
from nntune.search.space import Param, config_point, default_space, parse_space, suggest
from nntune.search.study import make_storage, options_of, trial_config
from nntune.train.build import check_components

ROOT = Path(__file__).resolve().parents[1]
METRIC = "val_loss"  # search.metric's default: what a user's study optimizes
METHODS = ("nntune", "random", "optuna", "flaml", "nntune-tpe-asha", "nntune-tpe", "nntune-gp")
DEFAULT_METHODS = METHODS[:4]
# nntune's own tuner with other options (candidates for its defaults; not in a default run)
VARIANTS: dict[str, dict[str, Any]] = {
    "nntune": {},
    "random": {"sampler": "random", "pruner": "none"},
    "nntune-tpe-asha": {"sampler": "tpe", "pruner": "asha"},  # the default until 2026-12-06
    "nntune-tpe": {"sampler": "tpe", "pruner": "none"},
    "nntune-gp": {"sampler": "gp", "pruner": "none"},  # Optuna's 10 random start-up trials
}
STATES = optuna.trial.TrialState


def _config(
    dataset: str, task: str, arch: str, hidden: list[int], lr: float, epochs: int, batch: int
) -> dict[str, Any]:
    """A start config with every key of the default space set (lr, optimizer, weight decay,
    dropout, batch size, schedule, widths, label smoothing), so that it is one point of the
    space: nntune enqueues exactly it as the first trial, and retraining it is the reference."""
    loss: dict[str, Any] = (
        {"name": "cross_entropy", "label_smoothing": 0.0}
        if task == "classification"
        else {"name": "mse"}
    )
    return {
        "seed": 0,
        "data": {"dataset": dataset, "task": task, "split_seed": 0},
        "model": {"arch": arch, "hidden": hidden, "dropout": 0.0},
        "loss": loss,
        "optimizer": {"name": "adamw", "lr": lr, "weight_decay": 1e-4},
        "schedule": {"name": "constant"},
        "train": {"epochs": epochs, "batch_size": batch, "threads": 1},
        # one split, not search.folds: auto's 5 folds on these small sets: the suite compares
        # search engines on one objective per training (Optuna-direct and FLAML score the
        # same split); what folds do for a zero-config user is bench/tune_zero_config.py's
        "search": {"folds": None},
    }


TASKS: dict[str, dict[str, Any]] = {
    "digits": _config("digits", "classification", "mlp", [64], 1e-3, 20, 64),
    "breast_cancer": _config("breast_cancer", "classification", "mlp", [64], 1e-3, 20, 32),
    "wine": _config("wine", "classification", "mlp", [64], 1e-3, 20, 32),
    "diabetes": _config("diabetes", "regression", "mlp", [32], 1e-2, 30, 32),
    "mnist1d": _config("mnist1d", "classification", "resnet1d", [16, 32], 3e-3, 10, 64),
}
TASKS["mnist1d"]["data"]["limit"] = 1000  # a subset: a full training in about 0.4 s


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def emit(line: dict[str, Any]) -> None:
    print(json.dumps({"bench": "tune_suite", **line}), flush=True)


def rounded(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


# --- a study's trials and what they cost ---------------------------------------------------------


@dataclass
class TrialRecord:
    number: int
    state: str  # complete | pruned | fail
    value: float | None  # the trial's value (complete trials only)
    epochs: int  # epochs it trained: what it cost of the budget
    end: float  # seconds from the study's start to the trial's end
    run_dir: str | None


@dataclass
class StudyRecord:
    task: str
    method: str
    seed: int
    folder: Path
    trials: list[TrialRecord]
    seconds: float  # the whole study, as the caller waited for it


def run_epochs(run_dir: str | None) -> int | None:
    """Epochs a run folder's training ran (summary.json's epochs_run; metrics.jsonl's lines for
    a run that wrote no summary); None when the folder has neither."""
    if run_dir:
        summary = Path(run_dir) / "summary.json"
        if summary.exists():
            return int(json.loads(summary.read_text()).get("epochs_run") or 0)
        metrics = Path(run_dir) / "metrics.jsonl"
        if metrics.exists():
            return sum(1 for line in metrics.read_text().splitlines() if line.strip())
    return None


def trained_epochs(trial: optuna.trial.FrozenTrial) -> int:
    """Epochs a trial trained, from its run folder, else the epochs it reported to Optuna."""
    epochs = run_epochs(trial.user_attrs.get("run_dir"))
    return len(trial.intermediate_values) if epochs is None else epochs


class EpochLedger:
    """Epochs a study's finished trials trained (each finished trial read once)."""

    def __init__(self, budget_epochs: int) -> None:
        self.budget_epochs = budget_epochs
        self.known: dict[int, int] = {}
        self.asked = 0  # how often nntune's worker asked whether the study is full

    def spent(self, study: optuna.Study) -> int:
        for trial in study.get_trials(deepcopy=False):
            if trial.state.is_finished() and trial.number not in self.known:
                self.known[trial.number] = trained_epochs(trial)
        return sum(self.known.values())

    def full(self, study: optuna.Study) -> bool:
        return self.spent(study) >= self.budget_epochs

    def counting(self, original: Callable[[optuna.Study], int]) -> Callable[[optuna.Study], int]:
        """nntune's count of a study's trials, but "full" (more than any --trials) once the
        budget is spent: the worker then stops between trials, as at its --trials limit."""

        def counted(study: optuna.Study) -> int:
            self.asked += 1
            return sys.maxsize if self.full(study) else original(study)

        return counted


def records_of(study: optuna.Study, started: float) -> list[TrialRecord]:
    names = {STATES.COMPLETE: "complete", STATES.PRUNED: "pruned", STATES.FAIL: "fail"}
    records = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if trial.state not in names:
            continue  # waiting or running: never part of a finished study's budget
        complete = trial.state == STATES.COMPLETE and trial.value is not None
        # Optuna's datetimes are naive local time, like time.time()'s epoch seconds
        end = trial.datetime_complete.timestamp() - started if trial.datetime_complete else 0.0
        records.append(
            TrialRecord(
                number=trial.number,
                state=names[trial.state],
                value=float(trial.value) if complete and trial.value is not None else None,
                epochs=trained_epochs(trial),
                end=end,
                run_dir=trial.user_attrs.get("run_dir"),
            )
        )
    return records


def task_config(task: str, seed: int, name: str) -> dict[str, Any]:
    config = copy.deepcopy(TASKS[task])
    config.update(seed=seed, name=name)
    return config


def timeout_check(task: str, seconds: int, folder: Path) -> dict[str, Any]:
    """``nntune tune cfg --timeout S`` as a user runs it (the ``nntune`` command, a process of
    its own, torch's import included) on the task's start config: its wall clock against S."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{task}-{seconds}.yaml"
    config.write_text(yaml.safe_dump(task_config(task, 0, f"{task}-timeout-{seconds}")))
    command = [sys.executable, "-m", "nntune", "tune", str(config), "--timeout", str(seconds)]
    command += ["--out", str(folder / f"{task}-{seconds}"), "--quiet"]
    began = time.time()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 600)
    wall = time.time() - began
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return {
        "kind": "timeout",
        "task": task,
        "timeout": seconds,
        "wall": round(wall, 2),
        "over": round(wall - seconds, 2),
    }


def run_nntune(task: str, method: str, seed: int, budget_epochs: int, folder: Path) -> StudyRecord:
    """A study by nntune's own tuner: the default (``nntune``) or random search without pruning
    (``random``), stopped once ``budget_epochs`` are spent."""
    name = f"{task}-{method}-s{seed}"
    choices = VARIANTS[method]
    epochs = int(TASKS[task]["train"]["epochs"])
    # a ceiling the budget reaches first (a trial that trains trains at least one epoch; the
    # slack is for trials that fail before training), unless the hook below stopped working
    cap = budget_epochs + 100
    options = TuneOptions(trials=cap, out=folder, study=name, quiet=True, **choices)
    ledger = EpochLedger(budget_epochs)
    counted = ledger.counting(study_module.counted_trials)
    started = time.time()
    with mock.patch.object(study_module, "counted_trials", counted):
        tune(task_config(task, seed, name), options=options)
    seconds = time.time() - started
    storage = make_storage(f"journal:{(folder / 'study.journal').resolve()}")
    study = optuna.load_study(study_name=name, storage=storage)
    trials = records_of(study, started)
    spent = sum(t.epochs for t in trials)
    if not ledger.asked or spent > budget_epochs + epochs:
        raise RuntimeError(
            f"{name}: {spent} epochs spent for a budget of {budget_epochs}, the hook asked "
            f"{ledger.asked} times: nntune.search.study.run_worker no longer stops at the "
            "count of counted_trials, which this script wraps to stop a study at its budget"
        )
    return StudyRecord(task, method, seed, folder, trials, seconds)


def task_space(task: str, base: Config) -> list[Param]:
    """The space nntune.search.tune builds for the task's config (a small table's includes the
    linear candidate), so that every method searches the same one."""
    bundle = prepare_data(base.data, base.seed)
    small = validation_rows(bundle) < SMALL_VALIDATION
    return parse_space(default_space(base, str(TASKS[task]["data"]["task"]), small=small))


def run_optuna(task: str, seed: int, budget_epochs: int, folder: Path) -> StudyRecord:
    """Optuna's defaults on nntune's default space: TPE, no pruning, no start config."""
    name = f"{task}-optuna-s{seed}"
    # the base as nntune's tuner holds it (check_components fills in options and canonical
    # names), so the space and the trial configs are the ones nntune's trials get
    base_dict = config_to_dict(check_components(validate_config(task_config(task, seed, name))))
    base = validate_config(base_dict)
    params = task_space(task, base)
    minimize = infer_mode(METRIC) == "min"
    ledger = EpochLedger(budget_epochs)

    def objective(trial: optuna.Trial) -> float:
        overrides = suggest(trial, params, base, options_of)
        config = trial_config(base_dict, overrides, f"{name}-trial{trial.number:04d}")
        out = folder / "trials" / f"{trial.number:04d}"
        trial.set_user_attr("run_dir", str(out))
        result = nntune.train(config_to_dict(config), out=out, progress=False)
        values = [v for v in result.history.values(METRIC) if v is not None and math.isfinite(v)]
        if not values:
            return math.nan  # Optuna records a NaN value as a failed trial
        return min(values) if minimize else max(values)

    def stop_when_spent(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if ledger.full(study):
            study.stop()

    started = time.time()
    study = optuna.create_study(
        study_name=name,
        direction="minimize" if minimize else "maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    study.optimize(objective, callbacks=[stop_when_spent], catch=(NntuneError,))
    seconds = time.time() - started
    return StudyRecord(task, "optuna", seed, folder, records_of(study, started), seconds)


FLAML_PIP = "pip install --no-deps flaml==2.8.0"  # numpy, its one requirement, is here already


def flaml_installed() -> bool:
    return importlib.util.find_spec("flaml") is not None


class FlamlPoint:
    """A config FLAML sampled, answering nntune's ``suggest`` as an Optuna trial would: each
    ``suggest_*`` returns the point's value of that key, so the parameters that apply, their
    order and the decoding of encoded choices are exactly those of the optuna method."""

    def __init__(self, point: dict[str, Any]) -> None:
        self.point = point

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        # FLAML may hand back numpy scalars (np.str_, np.int64): return the choice itself
        return next((c for c in choices if c == self.point[name]), self.point[name])

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        # 12 significant digits: the start point comes back from FLAML as 1.0000000000000002e-4
        return min(high, max(low, float(f"{float(self.point[name]):.12g}")))

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        return min(high, max(low, int(self.point[name])))  # FLAML rounds its integers


def flaml_space(params: list[Param]) -> dict[str, Any]:
    """nntune's parameters as flaml.tune domains: uniform/loguniform as tune.uniform/loguniform,
    int/logint as tune.randint/lograndint (whose upper bound is exclusive, hence high + 1),
    choices as tune.choice of the Optuna-encoded values (lists and mappings as JSON text; FLAML
    orders a choice whose values are all numbers, like the batch sizes, and treats the others
    as unordered). The space is flat: a conditional parameter (``when``, an option the chosen
    component does not take) is sampled on every trial and ignored where it does not apply."""
    from flaml import tune as flaml_tune

    space: dict[str, Any] = {}
    for param in params:
        if param.kind == "choice":
            space[param.key] = flaml_tune.choice(param.encoded_choices)
            continue
        assert param.bounds is not None
        low, high = param.bounds
        if param.kind == "uniform":
            space[param.key] = flaml_tune.uniform(low, high)
        elif param.kind == "loguniform":
            space[param.key] = flaml_tune.loguniform(low, high)
        elif param.kind == "int":
            space[param.key] = flaml_tune.randint(int(low), int(high) + 1)
        else:
            space[param.key] = flaml_tune.lograndint(int(low), int(high) + 1)
    return space


class BudgetSpent(Exception):
    """Raised by the FLAML study's evaluation function once the budget's epochs are spent."""


def run_flaml(task: str, seed: int, budget_epochs: int, folder: Path) -> StudyRecord:
    """FLAML's CFO on nntune's default space: ``flaml.tune.run(objective, config=space,
    search_alg=CFO(..., seed=seed), num_samples=-1)``, the trials as the optuna method's.

    Start point: CFO is a local search from one point, FLAML's low-cost one when given
    (``low_cost_partial_config``), a random point otherwise. Here no hyperparameter changes
    what a trial costs of the budget (every trial trains all its epochs, and epochs are what
    the budgets count), so there is no low-cost point to give (a smaller width or a bigger
    batch is cheaper only in seconds). What a user who has a recipe gives CFO is that recipe
    as ``points_to_evaluate`` (FLAML's AutoML passes its ``starting_points`` this way; CFO
    starts its local search from the best of them): the start config is the study's first
    trial, as in nntune's studies (the optuna method enqueues none).

    Budget: no pruning, so trials run in order until their epochs reach ``budget_epochs``; the
    evaluation function raises ``BudgetSpent`` before training a trial once they have, which
    ends ``tune.run`` (the trials are recorded here as they finish, not read from FLAML's
    analysis). A config nntune rejects (NntuneError) or a training without a finite value is a
    failed trial, reported to FLAML as the worst value (inf for a minimized metric), as
    FLAML's docs advise for a config that failed because it is bad."""
    import warnings

    with warnings.catch_warnings():  # "flaml.automl is not available": only tune is used
        warnings.simplefilter("ignore")
        from flaml import tune as flaml_tune
        from flaml.tune.searcher.blendsearch import CFO

    name = f"{task}-flaml-s{seed}"
    base_dict = config_to_dict(check_components(validate_config(task_config(task, seed, name))))
    base = validate_config(base_dict)
    params = task_space(task, base)
    minimize = infer_mode(METRIC) == "min"
    worst = math.inf if minimize else -math.inf
    trials: list[TrialRecord] = []
    started = time.time()

    def objective(point: dict[str, Any]) -> dict[str, float]:
        if sum(t.epochs for t in trials) >= budget_epochs:
            raise BudgetSpent
        number = len(trials)
        out = folder / "trials" / f"{number:04d}"
        value: float | None = None
        try:
            overrides = suggest(cast(optuna.Trial, FlamlPoint(point)), params, base, options_of)
            config = trial_config(base_dict, overrides, f"{name}-trial{number:04d}")
            result = nntune.train(config_to_dict(config), out=out, progress=False)
            values = [v for v in result.history.values(METRIC) if v is not None]
            values = [v for v in values if math.isfinite(v)]
            if values:
                value = float(min(values) if minimize else max(values))
        except NntuneError:
            pass
        trials.append(
            TrialRecord(
                number=number,
                state="fail" if value is None else "complete",
                value=value,
                epochs=run_epochs(str(out)) or 0,
                end=time.time() - started,
                run_dir=str(out) if out.exists() else None,
            )
        )
        return {METRIC: worst if value is None else value}

    space = flaml_space(params)
    start = config_point(params, base_dict)
    algorithm = CFO(
        metric=METRIC,
        mode="min" if minimize else "max",
        space=space,
        points_to_evaluate=[start] if start else None,
        seed=seed,
    )
    try:
        flaml_tune.run(
            objective,
            config=space,
            metric=METRIC,
            mode="min" if minimize else "max",
            search_alg=algorithm,
            num_samples=-1,
            verbose=0,
        )
    except BudgetSpent:
        pass
    else:  # FLAML stopped by itself (100 suggestions in a row it could not make)
        say(f"{name}: FLAML stopped after {sum(t.epochs for t in trials)} epochs")
    seconds = time.time() - started
    return StudyRecord(task, "flaml", seed, folder, trials, seconds)


def drop_checkpoints(record: StudyRecord) -> None:
    """Trials' checkpoints are never read again (retraining starts from config.yaml)."""
    for trial in record.trials:
        if trial.run_dir:
            shutil.rmtree(Path(trial.run_dir) / "checkpoints", ignore_errors=True)


# --- scoring --------------------------------------------------------------------------------------


@dataclass
class BudgetScore:
    budget: int
    budget_epochs: int
    trials: list[TrialRecord]  # the prefix of the study's trials that fits the budget
    val_best: float | None
    chosen: TrialRecord | None
    seconds: float
    regret: float | None = None
    regret_scale: str | None = None
    test_values: list[float] = field(default_factory=list)


def within(record: StudyRecord, budget: int, epochs: int, minimize: bool) -> BudgetScore:
    """The study as a budget of ``budget`` full trainings would have ended it: its trials in
    order up to (not including) the first that would overspend."""
    limit = budget * epochs
    kept: list[TrialRecord] = []
    spent = 0
    for trial in record.trials:
        if spent + trial.epochs > limit:
            break
        spent += trial.epochs
        kept.append(trial)
    scored = [t for t in kept if t.value is not None]
    sign = 1.0 if minimize else -1.0
    chosen = min(scored, key=lambda t: (sign * float(t.value or 0.0), t.number), default=None)
    return BudgetScore(
        budget=budget,
        budget_epochs=limit,
        trials=kept,
        val_best=chosen.value if chosen else None,
        chosen=chosen,
        seconds=kept[-1].end if kept else 0.0,
    )


class Retrainer:
    """Test metric of a config retrained on seeds 0..K-1 (the task's split), once per config."""

    def __init__(self, seeds: int, test_metric: str) -> None:
        self.seeds = seeds
        self.test_metric = test_metric
        self.done: dict[str, tuple[list[float], list[float]]] = {}

    def __call__(self, config: dict[str, Any]) -> tuple[list[float], list[float]]:
        """(test metric per seed, best validation value per seed)."""
        key = json.dumps(
            {k: v for k, v in config.items() if k not in ("name", "seed")}, sort_keys=True
        )
        if key not in self.done:
            tests, vals = [], []
            for seed in range(self.seeds):
                result = nntune.train(
                    {**config, "seed": seed, "name": "retrain"}, write=False, progress=False
                )
                tests.append(float(result.test[self.test_metric]))
                seen = [v for v in result.history.values(METRIC) if v is not None]
                vals.append(float(min(seen) if infer_mode(METRIC) == "min" else max(seen)))
            self.done[key] = (tests, vals)
        return self.done[key]

    def run_dir(self, run_dir: str) -> list[float]:
        config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
        return self(config)[0]


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), spread


def median_of(values: Sequence[float | None]) -> float | None:
    """Median with a missing value counted as the worst (infinite regret)."""
    if not values:
        return None
    median = statistics.median([math.inf if v is None else v for v in values])
    return median if math.isfinite(median) else None


Table = dict[tuple[str, int], list[tuple[StudyRecord, BudgetScore]]]


def score_task(
    task: str,
    studies: list[StudyRecord],
    budgets: list[int],
    retrain: Retrainer,
    start_val: float,
) -> tuple[Table, dict[int, dict[str, float | None]]]:
    """Every study at every budget, with its regret and its chosen config's retrain; and per
    budget the normalization (random search's mean ``val_best``, the best value found)."""
    epochs = int(TASKS[task]["train"]["epochs"])
    minimize = infer_mode(METRIC) == "min"
    sign = 1.0 if minimize else -1.0  # regret works in sign-space, where lower is better
    table: Table = {}
    for record in studies:
        for budget in budgets:
            scored = within(record, budget, epochs, minimize)
            table.setdefault((record.method, budget), []).append((record, scored))
    found = [s.val_best for rows in table.values() for _, s in rows if s.val_best is not None]
    opt = min((sign * v for v in found), default=None)
    norms: dict[int, dict[str, float | None]] = {}
    for budget in budgets:
        randoms = [
            sign * s.val_best
            for _, s in table.get(("random", budget), [])
            if s.val_best is not None
        ]
        random_mean = statistics.mean(randoms) if randoms else None
        scale, scale_name = None, None
        if opt is not None and random_mean is not None and random_mean > opt:
            scale, scale_name = random_mean - opt, "random"
        elif opt is not None and random_mean is not None and sign * start_val > opt:
            # random search found the optimum in every seed (one seed, a tiny budget): no
            # random scale; the untuned start config's value is the "1" instead
            scale, scale_name = sign * start_val - opt, "start"
        norms[budget] = {
            "random_mean": None if random_mean is None else sign * random_mean,
            "opt": None if opt is None else sign * opt,
        }
        for (_, row_budget), rows in table.items():
            if row_budget != budget:
                continue
            for _, scored in rows:
                if scored.val_best is not None and scale is not None and opt is not None:
                    scored.regret = (sign * scored.val_best - opt) / scale
                    scored.regret_scale = scale_name
                if scored.chosen is not None and scored.chosen.run_dir:
                    scored.test_values = retrain.run_dir(scored.chosen.run_dir)
    return table, norms


def report_task(
    task: str,
    table: Table,
    norms: dict[int, dict[str, float | None]],
    retrain: Retrainer,
    start_tests: list[float],
) -> None:
    start_mean, start_std = mean_std(start_tests)
    for (method, budget), rows in table.items():
        for record, scored in rows:
            emit(
                {
                    "kind": "study",
                    "task": task,
                    "method": method,
                    "seed": record.seed,
                    "budget": budget,
                    "budget_epochs": scored.budget_epochs,
                    "epochs": sum(t.epochs for t in scored.trials),
                    "trials": len(scored.trials),
                    "complete": sum(t.state == "complete" for t in scored.trials),
                    "pruned": sum(t.state == "pruned" for t in scored.trials),
                    "failed": sum(t.state == "fail" for t in scored.trials),
                    "val_best": rounded(scored.val_best),
                    "regret": rounded(scored.regret, 4),
                    "regret_scale": scored.regret_scale,
                    "chosen_trial": scored.chosen.number if scored.chosen else None,
                    "test_mean": rounded(mean_std(scored.test_values)[0], 4),
                    "test_values": [round(v, 4) for v in scored.test_values],
                    "seconds": round(scored.seconds, 2),
                    "study_seconds": round(record.seconds, 2),
                    "folder": str(record.folder),
                }
            )
    for (method, budget), rows in table.items():
        scores = [s for _, s in rows]
        regrets = [s.regret for s in scores]
        known = [r for r in regrets if r is not None]
        vals = [s.val_best for s in scores]
        tests = [m for m in (mean_std(s.test_values)[0] for s in scores) if m is not None]
        test_mean, test_std = mean_std(tests)
        seconds = [s.seconds for s in scores]
        meta = norms[budget]
        emit(
            {
                "kind": "summary",
                "task": task,
                "method": method,
                "budget": budget,
                "seeds": len(rows),
                "metric": METRIC,
                "direction": "minimize" if infer_mode(METRIC) == "min" else "maximize",
                "median_regret": rounded(median_of(regrets), 4),
                "mean_regret": rounded(statistics.mean(known), 4) if known else None,
                "regret_values": [rounded(r, 4) for r in regrets],
                "regret_scale": next((s.regret_scale for s in scores if s.regret_scale), None),
                "val_best": rounded(median_of(vals)),
                "val_best_values": [rounded(v) for v in vals],
                "random_mean": rounded(meta["random_mean"]),
                "opt": rounded(meta["opt"]),
                "test_metric": retrain.test_metric,
                "test_mean": rounded(test_mean, 4),
                "test_std": rounded(test_std, 4),
                "test_values": [round(v, 4) for v in tests],
                "start_test_mean": rounded(start_mean, 4),
                "start_test_std": rounded(start_std, 4),
                "seconds": round(statistics.median(seconds), 2),
                "seconds_values": [round(s, 2) for s in seconds],
                "trials_mean": round(statistics.mean(len(s.trials) for s in scores), 2),
                "pruned_mean": round(
                    statistics.mean(sum(t.state == "pruned" for t in s.trials) for s in scores), 2
                ),
                "epochs_mean": round(
                    statistics.mean(sum(t.epochs for t in s.trials) for s in scores), 1
                ),
            }
        )


# --- the run --------------------------------------------------------------------------------------


def commit() -> str | None:
    """What was measured: the checkout's commit, -dirty when it has uncommitted changes."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", default=None, help=f"default: {','.join(TASKS)}")
    parser.add_argument("--methods", default=None, help=f"default: {','.join(DEFAULT_METHODS)}")
    parser.add_argument(
        "--budgets", default=None, help="full-training equivalents; default 10,20,50"
    )
    parser.add_argument("--seeds", type=int, default=None, help="studies per method; default 10")
    parser.add_argument("--retrain-seeds", type=int, default=3)
    parser.add_argument(
        "--timeouts", default=None, help="nntune tune --timeout S wall-clock checks; default 15,60"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "tune-suite")
    parser.add_argument("--keep-checkpoints", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: wine, 1 seed, budget 3, nntune,random"
    )
    args = parser.parse_args(argv)
    quick = {
        "tasks": "wine",
        "methods": "nntune,random",
        "budgets": "3",
        "seeds": 1,
        "timeouts": "",
    }
    full = {
        "tasks": ",".join(TASKS),
        "methods": ",".join(DEFAULT_METHODS),
        "budgets": "10,20,50",
        "seeds": 10,
        "timeouts": "15,60",
    }
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.tasks = args.tasks.split(",")
    args.methods = args.methods.split(",")
    args.budgets = sorted({int(b) for b in args.budgets.split(",")})
    args.timeouts = [int(t) for t in args.timeouts.split(",") if t]
    unknown = [t for t in args.tasks if t not in TASKS] + [
        m for m in args.methods if m not in METHODS
    ]
    if unknown:
        parser.error(
            f"unknown tasks or methods {unknown}; tasks: {', '.join(TASKS)}; "
            f"methods: {', '.join(METHODS)}"
        )
    if args.seeds < 1 or args.retrain_seeds < 1 or args.budgets[0] < 1:
        parser.error("--seeds, --retrain-seeds and --budgets must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.time()
    load_before = os.getloadavg()[0]
    torch.set_num_threads(1)  # the optuna and flaml methods train in this process
    root = args.out / f"studies-{time.strftime('%Y%m%d-%H%M%S')}"
    say(f"study folders under {root}")
    methods = list(args.methods)
    if "flaml" in methods and not flaml_installed():
        methods.remove("flaml")
        reason = f"flaml is not installed: {sys.executable} -m {FLAML_PIP}"
        emit({"kind": "skipped", "method": "flaml", "reason": reason})
    largest = args.budgets[-1]
    for task in args.tasks:
        epochs = int(TASKS[task]["train"]["epochs"])
        test_metric = "accuracy" if TASKS[task]["data"]["task"] == "classification" else "rmse"
        retrain = Retrainer(args.retrain_seeds, test_metric)
        start_tests, start_vals = retrain(task_config(task, 0, f"{task}-start"))
        start_val = statistics.mean(start_vals)
        start_mean, start_std = mean_std(start_tests)
        emit(
            {
                "kind": "start",
                "task": task,
                "test_metric": test_metric,
                "start_test_mean": rounded(start_mean, 4),
                "start_test_std": rounded(start_std, 4),
                "start_test_values": [round(v, 4) for v in start_tests],
                "start_val": rounded(start_val),
            }
        )
        studies = []
        for method in methods:
            for seed in range(args.seeds):
                folder = root / task / f"{method}-s{seed}"
                if method == "optuna":
                    record = run_optuna(task, seed, largest * epochs, folder)
                elif method == "flaml":
                    record = run_flaml(task, seed, largest * epochs, folder)
                else:
                    record = run_nntune(task, method, seed, largest * epochs, folder)
                if not args.keep_checkpoints:
                    drop_checkpoints(record)
                best = [t.value for t in record.trials if t.value is not None]
                say(
                    f"{task} {method} seed {seed}: {len(record.trials)} trials "
                    f"({sum(t.state == 'pruned' for t in record.trials)} pruned), "
                    f"{sum(t.epochs for t in record.trials)} epochs, best {METRIC} "
                    f"{min(best) if best else float('nan'):.4g}, {record.seconds:.1f} s"
                )
                studies.append(record)
        table, norms = score_task(task, studies, args.budgets, retrain, start_val)
        report_task(task, table, norms, retrain, start_tests)
    for seconds in args.timeouts:
        emit(timeout_check(args.tasks[-1], seconds, root / "timeout"))
    emit(
        {
            "kind": "total",
            "seconds": round(time.time() - started, 1),
            "tasks": args.tasks,
            "methods": args.methods,
            "budgets": args.budgets,
            "seeds": args.seeds,
            "retrain_seeds": args.retrain_seeds,
            "out": str(root),
            "commit": commit(),
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
    )


if __name__ == "__main__":
    main()
