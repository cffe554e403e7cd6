"""``cross_validate``: k-fold, repeated k-fold and leave-one-out cross-validation of a config.

The pool is the data a normal run trains and validates on: the dataset's training part. When
the dataset has a test split of its own, or ``data.test_split`` > 0 carves one off (with the
config's seed, exactly as ``nntune train`` does), that test part stays untouched and unused;
``data.limit`` shrinks the pool (stratified, as in training).

The pool is cut into folds: scikit-learn's ``StratifiedKFold`` (classification) or ``KFold``
(regression), their ``Repeated*`` versions for ``repeats`` > 1, or ``LeaveOneOut``; shuffled
with the config's seed. Each fold is one training of the config: its training rows go through
the normal data preparation (:func:`nntune.data.prepare_data`), so ``data.val_split`` still
carves a validation part out of them when > 0 (early stopping and ``val_*`` monitors keep
working; ``--set data.val_split=0`` trains on all of the fold's training rows), and the
held-out fold is the run's test part. The rows are handed over raw (before preprocessing), so
every fold fits its preprocessing (standardize, impute, pca_whiten...) on its own training
part only: nothing of the held-out fold leaks into the statistics it is scaled with.

Reported: every test metric per fold, their mean and sample standard deviation (ddof 1), and
the pooled metrics computed once over all held-out predictions together (for leave-one-out,
where one fold is one sample, the pooled values are the meaningful ones).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nntune.config import Config
from nntune.config._load import ConfigSource
from nntune.errors import ConfigError, TrainingError
from nntune.evaluate.compare import DEFAULT_METRIC, Overrides, _check_metric, parse_metric
from nntune.optim import infer_mode
from nntune.train.objects import with_objects

MAX_LOO_SAMPLES = 500
METHODS = (
    "stratified_kfold",
    "kfold",
    "repeated_stratified_kfold",
    "repeated_kfold",
    "leave_one_out",
)
Progress = Callable[[str], None]
# called after each fold's training with the fold's record and the finished Trainer
FoldHook = Callable[[dict[str, Any], Any], None]


def cross_validate(
    config: ConfigSource,
    overrides: Overrides = None,
    folds: int = 5,
    repeats: int = 1,
    loo: bool = False,
    *,
    metric: str | None = None,
    progress: Progress | None = None,
    on_fold: FoldHook | None = None,
    model: Any = None,
    data: Any = None,
    loss: Any = None,
    metrics: Any = None,
) -> dict[str, Any]:
    """Cross-validate ``config`` (a YAML path, a mapping or a Config; ``overrides`` as for
    ``--set``) with ``folds`` folds, ``repeats`` times (``loo``: leave-one-out instead).

    ``metric`` is the headline (default: test_accuracy, or test_rmse for regression);
    ``progress`` receives one line per finished fold; ``on_fold(record, trainer)`` sees each
    fold's record and its finished :class:`~nntune.train.Trainer` (its ``bundle.pipeline`` is
    the preprocessing fitted on that fold). No run folders are written.

    Returns ``{"folds", "repeats", "method", "metric", "higher_is_better", "task",
    "n_samples", "mean", "std", "values", "pooled", "metrics": {name: {"mean", "std"}},
    "per_fold": [...], "note", "seconds"}``. Raises :class:`~nntune.errors.ConfigError` on bad
    arguments (folds < 2, more folds than samples of a class, leave-one-out on more than
    500 samples) before anything trains.
    ``model``, ``data``, ``loss``, ``metrics``: your own objects given in Python (a model
    class or factory, data as (x, y), a dict of splits, a DataFrame or a Dataset; see
    :mod:`nntune.train.objects`).
    """
    _check_counts(folds, repeats, loo)
    cfg = with_objects(config, overrides, model=model, data=data, loss=loss, metrics=metrics)
    wanted = parse_metric(metric) if metric is not None else None
    if wanted is not None and wanted[0] != "test":
        raise ConfigError(
            f"--metric {metric}: cross-validation scores the held-out fold; use "
            f"test_{wanted[1]} (or a bare metric name)"
        )
    pool, labels, note = _pool(cfg)
    task = str(pool.task)
    wanted = wanted or parse_metric(DEFAULT_METRIC[task])
    _check_metric(wanted, task)
    method, splits, n_folds = _splits(cfg, labels, task, folds, repeats, loo)

    started = time.perf_counter()
    per_fold: list[dict[str, Any]] = []
    held_y: list[np.ndarray] = []
    held_out: list[np.ndarray] = []
    total = n_folds * (1 if loo else repeats)
    for i, (train_idx, test_idx) in enumerate(splits):
        repeat, fold = divmod(i, n_folds)
        clock = time.perf_counter()
        trainer, summary, y_true, outputs = _train_fold(
            cfg, _fold_data(pool, train_idx, test_idx), i
        )
        bundle = trainer.bundle
        record = {
            "repeat": repeat,
            "fold": fold,
            "n_train": len(bundle.y_train),
            "n_val": 0 if bundle.y_val is None else len(bundle.y_val),
            "n_test": len(y_true),
            "metrics": dict(summary["test"] or {}),
            "epochs_run": summary["epochs_run"],
            "seconds": round(time.perf_counter() - clock, 3),
        }
        per_fold.append(record)
        held_y.append(y_true)
        held_out.append(outputs)
        if on_fold is not None:
            on_fold(record, trainer)
        if progress is not None:
            value = record["metrics"].get(wanted[1])
            shown = "undefined" if value is None else f"{value:.4f}"
            progress(
                f"cv: [{i + 1}/{total}] repeat {repeat} fold {fold}: "
                f"{'_'.join(wanted)} {shown} ({record['seconds']:.2f} s)"
            )

    names = list(per_fold[0]["metrics"])
    values = [r["metrics"].get(wanted[1]) for r in per_fold]
    mean, std = _mean_std(values)
    return {
        "folds": n_folds,
        "repeats": 1 if loo else repeats,
        "method": method,
        "metric": "_".join(wanted),
        "higher_is_better": infer_mode(wanted[1]) == "max",
        "task": task,
        "n_samples": len(labels),
        "mean": mean,
        "std": std,
        "values": values,
        "pooled": _pooled(task, per_fold, held_y, held_out),
        "metrics": {
            n: dict(
                zip(
                    ("mean", "std"), _mean_std([r["metrics"].get(n) for r in per_fold]), strict=True
                )
            )
            for n in names
        },
        "per_fold": per_fold,
        "seed": cfg.seed,
        "note": note,
        "seconds": round(time.perf_counter() - started, 3),
    }


# --- pieces -------------------------------------------------------------------------------------


def _check_counts(folds: int, repeats: int, loo: bool) -> None:
    for key, value, low in (("--folds", folds, 2), ("--repeats", repeats, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{key} {value}: give a whole number ≥ {low}")
    if loo and repeats != 1:
        raise ConfigError(
            f"--loo with --repeats {repeats}: leave-one-out has a single way to split the "
            "data, repeating it gives the same folds; drop --repeats"
        )


def _pool(config: Config) -> tuple[Any, np.ndarray, str]:
    """The raw training part of the config's data (a RawDataset with ``task`` set), its class
    codes (classification; zeros for regression) and a note on what was left out."""
    from nntune.data.datasets import RawDataset
    from nntune.data.pipeline import encode_targets, infer_task, load_raw
    from nntune.data.splits import split_off, subsample

    data = config.data
    raw = load_raw(data)
    # task and class codes as prepare_data finds them, so the test part is the one it holds out
    y_all = raw.y if raw.y_test is None else np.concatenate([raw.y, raw.y_test])
    task = data.task if data.task != "auto" else (raw.task or infer_task(y_all))
    codes_all, _ = encode_targets(y_all, task, raw.class_names)
    codes = codes_all[: len(raw.y)] if task == "classification" else np.zeros(len(raw.y))
    strat = codes if task == "classification" else codes.astype(np.float32)
    positions = np.arange(len(raw.y))
    if raw.x_test is not None:
        n_test = len(raw.x_test)
        note = f"the dataset's own test split ({n_test} samples) is left out, unused"
    elif data.test_split > 0:
        positions, held = split_off(
            strat, data.test_split, config.seed, "data.test_split", "a test part"
        )
        note = (
            f"data.test_split = {data.test_split}: its test part ({len(held)} samples, the same "
            "as nntune train holds out) is left out, unused"
        )
    else:
        note = "data.test_split is 0: the whole dataset is the pool"
    if data.limit is not None:
        positions = positions[subsample(strat[positions], data.limit, config.seed + 2)]
    pool = RawDataset(
        name=raw.name,
        x=_rows(raw.x, positions),
        y=raw.y[positions],
        task=task,
        class_names=raw.class_names,
    )
    return pool, codes[positions], note


def _rows(x: pd.DataFrame | np.ndarray, idx: np.ndarray) -> pd.DataFrame | np.ndarray:
    if isinstance(x, pd.DataFrame):
        return x.iloc[idx].reset_index(drop=True)
    return np.asarray(x)[idx]


def _splits(
    config: Config, labels: np.ndarray, task: str, folds: int, repeats: int, loo: bool
) -> tuple[str, Iterator[tuple[np.ndarray, np.ndarray]], int]:
    """The method's name, the (train, held-out) positions of every fold, folds per repeat."""
    from sklearn import model_selection as ms

    n = len(labels)
    classification = task == "classification"
    if loo:
        if n > MAX_LOO_SAMPLES:
            raise ConfigError(
                f"--loo: the pool holds {n} samples, so leave-one-out would train {n} models; "
                f"it is allowed up to {MAX_LOO_SAMPLES} samples: use --folds (e.g. 10) or "
                f"shrink the pool with --set data.limit={MAX_LOO_SAMPLES}"
            )
        if classification:
            _check_classes(labels, 2, "--loo (each training part lacks one sample)")
        return "leave_one_out", ms.LeaveOneOut().split(np.zeros(n)), n
    if folds > n:
        raise ConfigError(f"--folds {folds}: the pool holds only {n} samples; use fewer folds")
    seed = config.seed % 2**32
    splitter: Any
    if classification:
        _check_classes(labels, folds, f"--folds {folds}")
        if repeats > 1:
            splitter = ms.RepeatedStratifiedKFold(
                n_splits=folds, n_repeats=repeats, random_state=seed
            )
            method = "repeated_stratified_kfold"
        else:
            splitter = ms.StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            method = "stratified_kfold"
    elif repeats > 1:
        splitter = ms.RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
        method = "repeated_kfold"
    else:
        splitter = ms.KFold(n_splits=folds, shuffle=True, random_state=seed)
        method = "kfold"
    return method, splitter.split(np.zeros(n), labels if classification else None), folds


def _check_classes(labels: np.ndarray, needed: int, what: str) -> None:
    classes, counts = np.unique(labels, return_counts=True)
    small = [int(c) for c, k in zip(classes, counts, strict=True) if k < needed]
    if small:
        raise ConfigError(
            f"{what}: class code(s) {small} have fewer than {needed} samples in the pool "
            f"(smallest: {int(counts.min())}); stratified folds need every class in every "
            "fold: use fewer folds or more data"
        )


def _fold_data(pool: Any, train_idx: np.ndarray, test_idx: np.ndarray) -> Any:
    """The fold as a raw dataset: training rows, and the held-out rows as its test split."""
    from nntune.data.datasets import RawDataset

    return RawDataset(
        name=pool.name,
        x=_rows(pool.x, train_idx),
        y=pool.y[train_idx],
        x_test=_rows(pool.x, test_idx),
        y_test=pool.y[test_idx],
        task=pool.task,
        class_names=pool.class_names,
    )


def _train_fold(
    config: Config, raw: Any, index: int
) -> tuple[Any, dict[str, Any], np.ndarray, np.ndarray]:
    """Train on one fold: the trainer, its summary, the held-out targets and outputs."""
    from nntune.data import prepare_data
    from nntune.evaluate.evaluation import run_loss
    from nntune.train import Trainer
    from nntune.train.evaluate import outputs_for_metrics, predict_outputs

    class FoldTrainer(Trainer):
        # the fold's raw rows go through the config's data preparation: splits (val_split),
        # preprocessing fitted on the training part, encoding; the held-out rows are its test
        # part. data.limit was applied to the pool already.
        def _bundle(self, cfg: Config) -> tuple[Any, None]:
            data = cfg.data.model_copy(update={"limit": None})
            return prepare_data(data, cfg.seed, raw), None

    trainer = FoldTrainer(config, write=False, progress=False)
    try:
        result = trainer.fit()
    except TrainingError as err:
        raise TrainingError(f"cv fold {index}: {err}") from None
    bundle = trainer.bundle
    assert bundle.x_test is not None and bundle.y_test is not None
    model = trainer.model
    device = next(model.parameters()).device
    loss = run_loss(trainer.config, bundle).to(device)
    outputs = outputs_for_metrics(
        loss, bundle.task, predict_outputs(model, bundle.x_test.to(device))
    )
    return (
        trainer,
        result.summary,
        bundle.y_test.cpu().numpy(),
        outputs.detach().float().cpu().numpy(),
    )


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the defined values (None: not enough of them)."""
    defined = [float(v) for v in values if v is not None]
    mean = statistics.fmean(defined) if defined else None
    std = statistics.stdev(defined) if len(defined) >= 2 else None
    return mean, std


def _pooled(
    task: str, per_fold: list[dict[str, Any]], ys: list[np.ndarray], outs: list[np.ndarray]
) -> dict[str, float | None]:
    """Every metric computed once over all held-out predictions together (the loss: the mean
    over all held-out samples, i.e. the fold losses weighted by fold size)."""
    import math

    from nntune.metrics import compute_metrics

    pooled: dict[str, float | None] = {}
    losses = [(r["metrics"].get("loss"), r["n_test"]) for r in per_fold]
    if all(v is not None for v, _ in losses):
        total = sum(n for _, n in losses)
        pooled["loss"] = sum(float(v) * n for v, n in losses) / total if total else None
    else:
        pooled["loss"] = None
    scores = compute_metrics(task, np.concatenate(ys), np.concatenate(outs))
    pooled.update({k: (v if math.isfinite(v) else None) for k, v in scores.items()})
    return pooled
