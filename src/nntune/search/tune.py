"""``nntune tune``: a study folder, worker processes, and what a user reads at the end.

runs/<study>/
    config.yaml      the base config the study searches around (a re-run must match it)
    study.journal    the embedded Optuna storage (unless --storage names a database)
    trials/NNNN/     each trial's run folder
    best.yaml        the best trial's fully resolved config, trainable as is (with folds: refit)
    trials.csv       one row per trial (Optuna's trials_dataframe)
    summary.json     best value and params, counts, seconds, importances (and retrain)
    report.html      the study report (nntune.report): summary, trials, Optuna's plots
    study.html       the same page, under the name `nntune tune` has always written
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from nntune.config import (
    Config,
    ValFold,
    config_to_dict,
    config_to_yaml,
    load_config,
    validate_config,
)
from nntune.errors import ConfigError, NntuneError
from nntune.records import StudyResult
from nntune.report import report_after
from nntune.search.choice import choose_search, component_name
from nntune.search.folds import SMALL_VALIDATION, refit_blocker, resolve_folds, validation_rows
from nntune.search.space import (
    candidate_names,
    component_of,
    config_point,
    decode_params,
    default_space,
    grid_space,
    parse_space,
)
from nntune.search.study import (
    PRUNERS,
    RUN_OBJECTIVES,
    SAMPLERS,
    Job,
    check_driver,
    directions_for,
    make_storage,
    open_study,
    options_of,
    run_worker,
    sweep,
    trial_config,
)
from nntune.train.build import check_components, logged_keys, resolve_for_data
from nntune.train.checkpoint import write_json_atomic, write_text_atomic
from nntune.train.objects import names_objects, with_objects
from nntune.train.run import available_cores

STATES = optuna.trial.TrialState


@dataclass
class TuneOptions:
    trials: int | None = None
    timeout: float | None = None
    sampler: str = "auto"  # search/choice.py: GP on flat spaces, else TPE
    pruner: str = "auto"
    storage: str | None = None
    study: str | None = None
    workers: int = 1
    out: Path | None = None
    runs_root: Path = Path("runs")
    retrain_best: int = 0
    quiet: bool = False
    # when the timeout's clock started (time.time()); None: when tune() is called. The CLI
    # passes its process's start, so --timeout S is the command's own wall clock
    started: float | None = None

    def __post_init__(self) -> None:  # paths given as strings from Python
        self.out = Path(self.out) if self.out is not None else None
        self.runs_root = Path(self.runs_root)


def _check_options(options: TuneOptions) -> None:
    if options.sampler not in SAMPLERS:
        raise ConfigError(f"--sampler {options.sampler!r}: allowed: {', '.join(SAMPLERS)}")
    if options.pruner not in PRUNERS:
        raise ConfigError(f"--pruner {options.pruner!r}: allowed: {', '.join(PRUNERS)}")
    if options.trials is not None and options.trials < 1:
        raise ConfigError(f"--trials {options.trials}: must be at least 1")
    if options.timeout is not None and options.timeout <= 0:
        raise ConfigError(f"--timeout {options.timeout}: must be a positive number of seconds")
    if options.workers < 1:
        raise ConfigError(f"--workers {options.workers}: must be at least 1")
    if options.retrain_best < 0:
        raise ConfigError(f"--retrain-best {options.retrain_best}: must be 0 or more")
    storage = options.storage
    if storage is not None and not storage.startswith(("sqlite:///", "postgresql")):
        raise ConfigError(
            f"--storage {storage!r}: give a sqlite:///path.db or postgresql://user@host/db URL "
            "(default: a journal file in the study folder)"
        )
    if storage is not None:
        check_driver(storage)  # before the study folder exists


def plan_study(
    config: Config, options: TuneOptions, started: float | None = None
) -> tuple[Job, Path]:
    """The job of this study: space, objectives, storage and folder, all checked up front."""
    from nntune.data import prepare_data
    from nntune.data.pipeline import load_raw

    config = check_components(config)
    raw = load_raw(config.data)
    bundle = prepare_data(config.data, config.seed, raw)  # errors in the data now, not per trial
    folds, folds_reason = resolve_folds(config, raw, bundle)
    if folds:  # and that the training part can be cut into k folds
        folded = ValFold(folds=folds, index=0)
        try:
            prepare_data(config.data.model_copy(update={"val_fold": folded}), config.seed, raw)
        except NntuneError as err:
            if config.search.folds != "auto":
                raise ConfigError(f"search.folds = {folds}: {err}") from None
            folds, folds_reason = None, f"one split: {folds} folds cannot be cut ({err})"
    # trials read the resolved value: an int, or None for one split
    config = config.model_copy(update={"search": config.search.model_copy(update={"folds": folds})})
    resolved = resolve_for_data(config, bundle)
    space = dict(config.search.space) or default_space(
        config, bundle.task, small=validation_rows(bundle) < SMALL_VALIDATION
    )
    params = parse_space(space)
    objectives = list(config.search.objectives or [config.search.metric])
    logged = logged_keys(bundle.task, list(resolved.train.metrics or []), bundle.x_val is not None)
    for objective in objectives:
        if objective not in logged and objective not in RUN_OBJECTIVES:
            key = "search.objectives" if config.search.objectives else "search.metric"
            raise ConfigError(
                f"{key}: {objective!r} is not logged by this config; choose from "
                f"{', '.join([*logged, *RUN_OBJECTIVES])}"
            )
    directions = directions_for(objectives, config.search.direction)
    base = config_to_dict(config)
    for param in params:  # every searched key must name a config field
        located = component_of(param.key)
        if located is not None and located[1] != "name":
            # an option of a component: some component the study may pick must take it
            component, option = located
            current = component_name(base, component)
            names = candidate_names(params, component, current)
            if not any(option in (options_of(component, n) or set()) for n in names):
                raise ConfigError(
                    f"search.space.{param.key}: no {component} this study can pick "
                    f"({', '.join(sorted(names))}) takes the option '{option}'"
                )
            continue
        first = param.grid_values()[0] if param.kind != "choice" else param.choices[0]
        try:
            check_components(trial_config(base, {param.key: first}, "check"))
        except NntuneError as err:
            raise ConfigError(f"search.space.{param.key}: {err}") from None
    name = options.study or config.name or "study"
    study_dir = options.out or options.runs_root / name
    storage = options.storage or f"journal:{(study_dir / 'study.journal').resolve()}"
    grid_size = None
    if options.sampler == "grid":
        grid_size = math.prod(len(v) for v in grid_space(params).values())
    # the budget counts from the command's start (data preparation included)
    deadline = (started or time.time()) + options.timeout if options.timeout else None
    cores = available_cores()
    choice = choose_search(
        options.sampler,
        options.pruner,
        params,
        base,
        options_of,
        workers=options.workers,
        objectives=len(objectives),
    )
    job = Job(
        config=base,
        space=space,
        study=name,
        storage=storage,
        study_dir=str(study_dir.resolve()),
        objectives=objectives,
        directions=directions,
        sampler=choice.sampler,
        pruner=choice.pruner,
        gp_startup=choice.gp_startup,
        gp_until=choice.gp_until,
        choice=choice.reason,
        folds=folds,
        folds_reason=folds_reason,
        refit_blocker=None if folds else refit_blocker(raw, bundle),
        trials=options.trials,
        deadline=deadline,
        seed=config.seed,
        workers=options.workers,
        threads=config.train.threads or max(1, cores // options.workers),
        quiet=options.quiet,
        grid_size=grid_size,
    )
    return job, study_dir


def _prepare_folder(study_dir: Path, config: Config) -> None:
    """A new study folder gets the base config; an existing one must hold the same."""
    saved = study_dir / "config.yaml"
    if saved.exists():
        before = config_to_dict(load_config(saved))
        now = config_to_dict(config)
        differ = sorted(
            k
            for k in set(before) | set(now)
            if k not in ("search", "name") and before.get(k) != now.get(k)
        )
        if differ:
            raise ConfigError(
                f"study folder {study_dir} holds a study of a different config (sections "
                f"{', '.join(differ)} differ from its config.yaml); use another --study name "
                "or --out folder"
            )
        return
    if study_dir.exists() and any(study_dir.iterdir()):
        raise ConfigError(
            f"{study_dir} exists and is not a study folder (no config.yaml); choose another "
            "--study name or --out"
        )
    study_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(saved, config_to_yaml(config))


def tune(
    config: str | Path | Mapping[str, Any] | Config,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    options: TuneOptions | None = None,
    *,
    model: Any = None,
    data: Any = None,
    loss: Any = None,
    metrics: Any = None,
    **kwargs: Any,
) -> StudyResult:
    """Search hyperparameters of ``config``; returns the study's result (also in
    ``<study folder>/summary.json``). Other keyword arguments are :class:`TuneOptions` fields;
    ``model``, ``data``, ``loss``, ``metrics``: your own objects given in Python (see
    :mod:`nntune.train.objects`); they live in this process, so the study runs one worker."""
    options = options or TuneOptions(**kwargs)
    started = options.started or time.time()
    _check_options(options)
    base = with_objects(config, overrides, model=model, data=data, loss=loss, metrics=metrics)
    if names_objects(base) and options.workers > 1:
        raise ConfigError(
            f"--workers {options.workers}: objects given in Python (model=, data=...) live in "
            "this process; run the study with workers=1, or name their code as path.py:name"
        )
    job, study_dir = plan_study(base, options, started)
    _prepare_folder(study_dir, base)
    # the parent creates the study (and a database's tables) before any worker starts: workers
    # racing to create the schema collide on PostgreSQL
    study = open_study(job, parse_space(job.space))
    _start_from_config(study, job, base, options)
    interrupted = False
    try:
        if options.workers == 1:
            run_worker(job)
        else:
            _run_workers(job, study_dir, options.workers)
    except KeyboardInterrupt:
        interrupted = True
    result = write_outputs(job, study_dir, time.time() - started)
    if options.retrain_best and not interrupted and result.best_config is not None:
        retrain = retrain_best(result.best_config, options.retrain_best, study_dir)
        summary = json.loads((study_dir / "summary.json").read_text())
        summary["retrain"] = retrain
        write_json_atomic(study_dir / "summary.json", summary)
        report_after(study_dir)
        result.retrain = retrain
        result.summary = summary  # what summary.json holds now (--json prints it)
    if interrupted:
        raise KeyboardInterrupt
    return result


def _start_from_config(study: optuna.Study, job: Job, base: Config, options: TuneOptions) -> None:
    """Enqueue the config's own point as a new study's first trial (search.start_from_config;
    the grid sampler keeps to its grid)."""
    if not base.search.start_from_config or options.sampler == "grid" or study.trials:
        return
    point = config_point(parse_space(job.space), config_to_dict(base))
    if point:
        study.enqueue_trial(point, user_attrs={"start": "the config's own values"})


def _run_workers(job: Job, study_dir: Path, workers: int) -> None:
    """N worker processes (not threads: the GIL and torch's thread pool), each with cores/N
    torch threads; their progress lines pass through."""
    jobs_dir = study_dir / ".jobs"
    jobs_dir.mkdir(exist_ok=True)
    procs = []
    for index in range(workers):
        job.worker = index
        path = jobs_dir / f"worker{index}.json"
        path.write_text(job.to_json())
        procs.append(subprocess.Popen([sys.executable, "-m", "nntune.search.worker", str(path)]))
    try:
        codes = [proc.wait() for proc in procs]
    except KeyboardInterrupt:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            proc.wait()
        raise
    failed = [c for c in codes if c not in (0, 130)]
    if failed:
        raise NntuneError(f"{len(failed)} of {workers} worker processes failed (exit {failed})")


# --- outputs ------------------------------------------------------------------------------------


def _best_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    try:
        return list(study.best_trials)
    except ValueError:
        return []


def write_outputs(job: Job, study_dir: Path, seconds: float) -> StudyResult:
    """best.yaml, trials.csv, summary.json and study.html from the study's current state."""
    storage = make_storage(job.storage)
    study = optuna.load_study(study_name=job.study, storage=storage)
    # the plots and importances log "too few trials" warnings; the summary says as much
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sweep(study)
    params = parse_space(job.space)
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(t.state == state for t in trials) for state in STATES}
    multi = len(job.objectives) > 1
    best = _best_trials(study)
    # one objective: the best trial; several: the first of the Pareto front
    best_trial = (study.best_trial if not multi else best[0]) if best else None
    best_config = None
    best_params: dict[str, Any] = {}
    refit: dict[str, Any] | None = None
    if best_trial is not None:
        best_params = decode_params(params, best_trial.params)
        run_dir = best_trial.user_attrs.get("run_dir")
        source = Path(run_dir) / "config.yaml" if run_dir else None
        best_config = study_dir / "best.yaml"
        base = load_config(job.config)
        if source is not None and source.exists():
            resolved = load_config(source)
            resolved.name = f"{job.study}-best"
            # a trial scored by k folds ran fold 0 there: best.yaml keeps the base's own split
            resolved.data.val_fold = base.data.val_fold
        else:
            resolved = trial_config(job.config, best_params, f"{job.study}-best")
        if base.search.refit and job.refit_blocker is not None:
            refit = {"skipped": job.refit_blocker}
        elif base.search.refit:
            attrs = best_trial.user_attrs  # studies written before one-split refits: fold_epoch
            epochs = attrs.get("refit_epoch", attrs.get("fold_epoch"))
            resolved, refit = refit_config(resolved, epochs)
        write_text_atomic(best_config, config_to_yaml(resolved))
    frame = study.trials_dataframe()
    frame.to_csv(study_dir / "trials.csv", index=False)
    importances = _importances(study, multi)
    summary: dict[str, Any] = {
        "study": job.study,
        "storage": job.storage if not job.storage.startswith("journal:") else "journal file",
        "metric": job.objectives[0] if not multi else None,
        "objectives": job.objectives,
        "directions": job.directions,
        "sampler": job.sampler,
        "pruner": job.pruner if not multi else "none",
        "search_choice": job.choice,
        # search.folds: the folds each trial was scored by (null: one split), and why
        "folds": job.folds,
        "folds_reason": job.folds_reason,
        "best_value": best_trial.values[0] if best_trial is not None and not multi else None,
        "best_params": best_params,
        "best_trial": best_trial.number if best_trial is not None else None,
        "best_config": str(best_config) if best_config else None,
        "refit": refit,
        "n_trials": len(trials),
        "n_complete": counts[STATES.COMPLETE],
        "n_pruned": counts[STATES.PRUNED],
        "n_failed": counts[STATES.FAIL],
        "seconds": round(seconds, 2),
        "importances": importances,
    }
    if multi:
        summary["pareto_front"] = [
            {
                "trial": t.number,
                "values": dict(zip(job.objectives, t.values, strict=True)),
                "params": decode_params(params, t.params),
            }
            for t in best
        ]
    failures = [
        {"trial": t.number, "reason": t.user_attrs.get("fail_reason", "unknown")}
        for t in trials
        if t.state == STATES.FAIL
    ]
    if failures:
        summary["failures"] = failures
    write_json_atomic(study_dir / "summary.json", summary)
    report_after(study_dir)
    return StudyResult(
        study=job.study,
        best_value=summary["best_value"],
        best_params=best_params,
        best_config=best_config,
        n_complete=summary["n_complete"],
        n_pruned=summary["n_pruned"],
        n_failed=summary["n_failed"],
        seconds=summary["seconds"],
        importances=importances,
        study_dir=study_dir,
        summary=summary,
    )


def refit_config(config: Config, epochs: int | None) -> tuple[Config, dict[str, Any]]:
    """best.yaml refit on the whole training part, and what summary.json says of it.

    The search chose a training length: with folds the best point of the folds' mean curve,
    with one split the epochs that trained the weights the best trial kept (study.py
    kept_epochs). The final model trains on the whole training part (the
    validation part joins it) for that many epochs, the schedule spanning them, with no
    validation part to stop on: what scikit-learn's searches do with refit. Small data sets
    need it most (on wine, 142 rows, the fold-sized split left 113 to train on and the refit
    halved the test errors), larger ones still gain the rows the split held out
    (docs/tune.md has the measurements).
    A config that needs a validation part for more than stopping keeps its split."""
    why = refit_obstacle(config)
    if epochs is None:
        why = "the best trial has no refit epoch (its first objective is not logged per epoch)"
    if why is not None:
        return config, {"skipped": why}
    raw = config_to_dict(config)
    raw["data"].update({"val_split": 0.0, "val_fold": None})
    raw["train"].update({"epochs": epochs, "early_stopping": None, "monitor": None})
    return validate_config(raw), {"epochs": epochs, "val_split": 0.0}


def refit_obstacle(config: Config) -> str | None:
    """Why ``config`` needs its validation part for more than stopping (None: a refit on the
    whole training part can replace its split)."""
    watched = str(config.schedule.options.get("monitor", "val_loss"))
    if config.stages:
        return "staged training: each stage has its own epochs"
    if config.schedule.name == "plateau" and watched.startswith("val_"):
        return f"the plateau schedule watches {watched}"
    return None


def _importances(study: optuna.Study, multi: bool) -> dict[str, float]:
    """Importances by Optuna's default evaluator over the complete trials (shares summing to
    1; of a sample of PLOTTED_TRIALS in a larger study); empty when there are too few trials or
    parameters to tell."""
    complete = study.get_trials(deepcopy=False, states=(STATES.COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        target = (lambda t: t.values[0]) if multi else None
        with warnings.catch_warnings():  # "few trials per regime": the numbers say so anyway
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(plotted_sample(study), target=target)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}
    return {k: round(float(v), 4) for k, v in found.items()}


def folder_storage(study_dir: Path, summary: Mapping[str, Any]) -> str:
    """The storage URL of a study folder's study (its journal file unless a database)."""
    storage = str(summary.get("storage") or "journal file")
    return f"journal:{study_dir / 'study.journal'}" if storage == "journal file" else storage


PLOTTED_TRIALS = 300


def plotted_sample(study: optuna.Study, size: int = PLOTTED_TRIALS) -> optuna.Study:
    """The study itself, or for one of more than ``size`` trials an in-memory copy of ``size``
    of them (the best ones of each objective and a seeded sample of the rest, in their order).
    Optuna's plots deep-copy every trial and draw every line: a 2,343-trial study's report
    took 48 s after a 300-s search; importances, coordinates and contours read as well from a
    sample (the history plot keeps every trial)."""
    trials = study.get_trials(deepcopy=False)
    if len(trials) <= size:
        return study
    import random

    best = {t.number for t in (study.best_trials if len(study.directions) > 1 else [])}
    if len(study.directions) == 1:
        with contextlib.suppress(ValueError):
            best = {study.best_trial.number}
    rest = [t for t in trials if t.number not in best]
    chosen = best | {t.number for t in random.Random(0).sample(rest, size - len(best))}
    sample = optuna.create_study(directions=study.directions)
    sample.add_trials([t for t in trials if t.number in chosen])
    return sample


def study_figures(study_dir: Path, summary: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Optuna's plots of a study folder's study (plotly figures, titled), those its trials
    allow: history and pruning curves (or the Pareto front), importances, parallel
    coordinates, contour. The report (:mod:`nntune.report.study`) lays them out."""
    from optuna import visualization as vis

    storage = make_storage(folder_storage(study_dir, summary))
    study = optuna.load_study(study_name=str(summary["study"]), storage=storage)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "too few trials" warnings
    objectives = list(summary.get("objectives") or [summary.get("metric") or "value"])
    complete = study.get_trials(deepcopy=False, states=(STATES.COMPLETE,))
    multi = len(objectives) > 1
    full, study = study, plotted_sample(study)
    plots: list[tuple[str, Any]] = []
    if multi:
        plots.append(
            ("Pareto front", lambda: vis.plot_pareto_front(study, target_names=objectives))
        )
    else:
        plots += [
            ("Optimization history", lambda: vis.plot_optimization_history(full)),
            ("Intermediate values (pruning)", lambda: vis.plot_intermediate_values(study)),
        ]
    target = (lambda t: t.values[0]) if multi else None
    name = objectives[0]
    plots += [
        (
            "Parameter importances",
            lambda: vis.plot_param_importances(study, target=target, target_name=name),
        ),
        (
            "Parallel coordinates",
            lambda: vis.plot_parallel_coordinate(study, target=target, target_name=name),
        ),
        ("Contour", lambda: vis.plot_contour(study, target=target, target_name=name)),
    ]
    figures: list[tuple[str, Any]] = []
    for title, make in plots:
        if len(complete) < 2 and title != "Optimization history":
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figures.append((title, make()))
        except (ValueError, RuntimeError, ZeroDivisionError, KeyError):
            continue  # a plot that needs more trials or parameters than the study has
    return figures


def retrain_best(best_config: Path, seeds: int, study_dir: Path) -> dict[str, Any]:
    """Train best.yaml with seeds 0..K-1 (the search's best validation value is biased upward;
    fresh seeds and the test split give the honest number)."""
    import nntune

    folder = study_dir / "retrain" / time.strftime("%Y%m%d-%H%M%S")
    values: dict[str, list[float]] = {}
    for seed in range(seeds):
        result = nntune.train(
            best_config, {"seed": seed}, out=folder / f"seed{seed}", progress=False
        )
        for metric, value in result.summary.get("test", {}).items():
            values.setdefault(f"test_{metric}", []).append(float(value))
    return {
        metric: {
            "mean": statistics.mean(vals),
            "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "values": vals,
        }
        for metric, vals in values.items()
    }
