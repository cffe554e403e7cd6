"""``compare``: is config A better than config B? Both are trained on the same seeds and the
paired differences of a test metric are tested.

The seed drives the data split, the initialisation and the batch order, so seed s of A and seed
s of B see the same split: the measurements are paired. The verdict is the two-sided paired
t-test at α = 0.05 (direction-aware: lower is better for losses and errors); the Wilcoxon
signed-rank test, McNemar's test on the last seed pair's test predictions, a bootstrap
confidence interval of the mean difference and Cohen's d come with it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nntune.config import Config
from nntune.config._load import ConfigSource
from nntune.errors import ConfigError, DataError, TrainingError, did_you_mean
from nntune.evaluate.evaluation import run_loss
from nntune.evaluate.stats import (
    bootstrap_ci,
    cohens_d,
    mcnemar_test,
    paired_t_test,
    wilcoxon_test,
)
from nntune.metrics import METRICS
from nntune.optim import infer_mode
from nntune.train.objects import with_objects

ALPHA = 0.05
DEFAULT_METRIC = {"classification": "test_accuracy", "regression": "test_rmse"}
# data settings that decide which samples land in the test part
SPLIT_KEYS = (
    "dataset",
    "target",
    "features",
    "task",
    "n_samples",
    "noise",
    "limit",
    "val_split",
    "val_fold",
    "test_split",
)
Overrides = Sequence[str] | Mapping[str, Any] | None


def known_metrics() -> list[str]:
    names = ["loss"]
    for table in METRICS.values():
        names += [n for n in table if n not in names]
    return names


def parse_metric(metric: str) -> tuple[str, str]:
    """``test_accuracy`` → ``("test", "accuracy")``; a bare name means the test part."""
    split, _, name = metric.partition("_")
    if split not in ("test", "val") or not name:
        split, name = "test", metric
    known = known_metrics()
    if name not in known:
        allowed = ", ".join(f"test_{n}" for n in known)
        raise ConfigError(
            f"--metric '{metric}' is not a metric{did_you_mean(name, known)}; allowed: "
            f"{allowed} (or val_<name>)"
        )
    return split, name


def compare(
    config_a: ConfigSource,
    config_b: ConfigSource,
    seeds: int = 5,
    overrides: Overrides = None,
    metric: str | None = None,
    *,
    alpha: float = ALPHA,
    progress: Callable[[str], None] | None = None,
    model: Any = None,
    data: Any = None,
    loss: Any = None,
    metrics: Any = None,
) -> dict[str, Any]:
    """Train ``config_a`` and ``config_b`` on seeds 0..seeds-1 (``overrides`` apply to both)
    and test whether their ``metric`` differs (default: test_accuracy for classification,
    test_rmse for regression). ``progress`` receives one line per finished training.

    Returns ``{"verdict": "A better" | "B better" | "no evidence", "metric", "a", "b",
    "p_value", "test", ...}`` (see the module's docstring for the statistics).
    ``model``, ``data``, ``loss``, ``metrics``: your own objects given in Python, for both
    configs (a model class or factory, data as (x, y), a dict of splits, a DataFrame or a
    Dataset; see :mod:`nntune.train.objects`).
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ConfigError(
            f"--seeds {seeds}: a paired comparison needs at least 2 seeds (5 or more to be "
            "useful; the Wilcoxon test needs 6 to reach p < 0.05)"
        )
    wanted = parse_metric(metric) if metric is not None else None
    # both configs checked before anything trains
    objects = {"model": model, "data": data, "loss": loss, "metrics": metrics}
    configs = {
        "A": with_objects(config_a, overrides, **objects),
        "B": with_objects(config_b, overrides, **objects),
    }
    started = time.perf_counter()
    values: dict[str, list[float]] = {"A": [], "B": []}
    last: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    task: str | None = None
    done, total = 0, 2 * seeds
    for seed in range(seeds):
        for side, config in configs.items():
            clock = time.perf_counter()
            keep = seed == seeds - 1
            summary, predictions = _train(config, seed, side, keep)
            if task is None:
                task = summary["task"]
                wanted = wanted or parse_metric(DEFAULT_METRIC[task])
                _check_metric(wanted, task)
            elif summary["task"] != task:
                raise ConfigError(
                    f"config A trains a {task} task and config B a {summary['task']} task; "
                    "compare configs of the same task"
                )
            assert wanted is not None
            values[side].append(_value(summary, wanted, side, seed))
            if keep:
                last[side] = predictions
            done += 1
            if progress is not None:
                progress(
                    f"compare: [{done}/{total}] {side} seed {seed}: "
                    f"{'_'.join(wanted)} {values[side][-1]:.4f} "
                    f"({time.perf_counter() - clock:.2f} s)"
                )
    assert task is not None and wanted is not None
    a, b = np.array(values["A"]), np.array(values["B"])
    diff = a - b
    higher_is_better = infer_mode(wanted[1]) == "max"
    t_test = paired_t_test(a, b)
    p_value = t_test["p_value"]
    verdict = "no evidence"
    if p_value is not None and p_value < alpha:
        a_ahead = float(np.mean(diff)) > 0
        verdict = "A better" if a_ahead == higher_is_better else "B better"
    return {
        "verdict": verdict,
        "metric": "_".join(wanted),
        "higher_is_better": higher_is_better,
        "task": task,
        "alpha": alpha,
        "seeds": list(range(seeds)),
        "a": _side(config_a, configs["A"], values["A"]),
        "b": _side(config_b, configs["B"], values["B"]),
        "difference": {
            "definition": "A - B, per seed",
            "mean": float(np.mean(diff)),
            "std": float(np.std(diff, ddof=1)),
            "values": diff.tolist(),
            "ci95": bootstrap_ci(diff, level=0.95, resamples=10_000, seed=0),
        },
        "p_value": p_value,
        "test": f"paired t-test (scipy.stats.ttest_rel, two-sided) at alpha {alpha}",
        "tests": {
            "t_test": t_test,
            "wilcoxon": wilcoxon_test(a, b),
            "mcnemar": _mcnemar(configs, last, task, seeds - 1),
        },
        "effect_size": cohens_d(diff),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _train(
    config: Config, seed: int, side: str, keep: bool
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray] | None]:
    """Train once without a run folder: the summary, and with ``keep`` the test targets and
    predicted classes (classification only)."""
    from nntune.train import Trainer
    from nntune.train.evaluate import predict_outputs

    trainer = Trainer(config, {"seed": seed}, write=False, progress=False)
    try:
        result = trainer.fit()
    except TrainingError as err:
        raise TrainingError(f"config {side}, seed {seed}: {err}") from None
    summary = result.summary
    bundle = trainer.bundle
    if not keep or bundle.task != "classification" or bundle.x_test is None:
        return summary, None
    assert bundle.y_test is not None
    model = trainer.model
    device = next(model.parameters()).device
    loss = run_loss(trainer.config, bundle).to(device)
    outputs = predict_outputs(model, bundle.x_test.to(device))
    labels = loss.predict_labels(outputs).cpu().numpy()
    return summary, (bundle.y_test.cpu().numpy(), labels)


def _check_metric(wanted: tuple[str, str], task: str) -> None:
    split, name = wanted
    if name != "loss" and name not in METRICS[task]:
        allowed = ", ".join(f"{split}_{n}" for n in ["loss", *METRICS[task]])
        raise ConfigError(f"--metric {split}_{name} is not a {task} metric; allowed: {allowed}")


def _value(summary: dict[str, Any], wanted: tuple[str, str], side: str, seed: int) -> float:
    split, name = wanted
    scores = summary.get(split)
    if scores is None:
        raise DataError(
            f"config {side} has no {split} part (data.{split}_split is 0), so there is no "
            f"{split}_{name}; pick another --metric"
        )
    value = scores.get(name)
    if value is None:
        raise TrainingError(
            f"config {side}, seed {seed}: {split}_{name} is undefined (not finite); the run "
            "diverged or the metric does not apply to this data"
        )
    return float(value)


def _side(source: ConfigSource, config: Config, values: list[float]) -> dict[str, Any]:
    label = str(source) if isinstance(source, (str, Path)) else config.name
    return {
        "config": label,
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values),
        "values": values,
    }


def _mcnemar(
    configs: dict[str, Config],
    last: dict[str, tuple[np.ndarray, np.ndarray] | None],
    task: str,
    seed: int,
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "McNemar's exact test (scipy.stats.binomtest on the discordant pairs)",
        "seed": seed,
        "p_value": None,
    }
    if task != "classification":
        return {**base, "reason": "McNemar's test compares predicted classes: classification only"}
    a, b = last.get("A"), last.get("B")
    if a is None or b is None:
        return {**base, "reason": "no test part"}
    data_a, data_b = configs["A"].data, configs["B"].data
    differ = [k for k in SPLIT_KEYS if getattr(data_a, k) != getattr(data_b, k)]
    if differ or len(a[0]) != len(b[0]) or not np.array_equal(a[0], b[0]):
        why = f" (data.{', data.'.join(differ)} differ)" if differ else ""
        return {**base, "reason": f"the two configs' test parts are not the same samples{why}"}
    return {**mcnemar_test(a[0], a[1], b[1]), "seed": seed}
