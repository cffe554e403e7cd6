"""``ablate``: do the tricks of a recipe matter? Each row removes one trick.

The full recipe and each ablated recipe (the full one with one change) are trained on the same
seeds 0..N-1; the full recipe is trained once per seed and shared by every row. Each row is a
paired comparison with the full recipe: the two-sided paired t-test at α = 0.05 (the helper
``compare`` uses), direction-aware (lower is better for losses and errors):

- "trick helps": removing it makes the metric significantly worse;
- "trick hurts": removing it makes the metric significantly better;
- "no evidence": otherwise.

Without explicit changes the rows are found in the config itself: a non-constant schedule
(→ constant), warmup (→ 0), label smoothing, dropout, weight decay, L1/L2/elastic net (→ 0),
normalization (→ none), residual connections (→ false), each augmentation (the list without
it), gradient clipping, EMA, SWA, early stopping, batch-size schedules (→ null).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from nntune.config import Config, load_config
from nntune.config._load import ConfigSource, parse_override
from nntune.errors import ConfigError, TrainingError
from nntune.evaluate.compare import (
    ALPHA,
    DEFAULT_METRIC,
    _check_metric,
    _value,
    parse_metric,
)
from nntune.evaluate.stats import paired_t_test
from nntune.optim import infer_mode
from nntune.train.objects import with_objects

Overrides = Sequence[str] | Mapping[str, Any] | None
Change = dict[str, Any]

NO_TRICKS = (
    "the config uses no trick that ablate knows how to switch off (schedule, warmup, label "
    "smoothing, dropout, weight decay, L1/L2/elastic net, norm, residual, augmentation, "
    "grad clipping, EMA, SWA, early stopping, batch-size schedules); give rows with --tricks"
)


def find_tricks(config: Config) -> list[tuple[str, Change]]:
    """The tricks ``config`` uses, each as ``(label, {dotted_key: switched-off value})``.

    Component options are read with their defaults filled in (``adamw`` has weight decay 0.01
    even when the config does not say so).
    """
    from nntune.train.build import check_components

    resolved = check_components(config)
    rows: list[tuple[str, Change]] = []
    schedule = resolved.schedule
    if schedule.name != "constant":
        rows.append((f"schedule {schedule.name} → constant", {"schedule": "constant"}))
    if float(schedule.options.get("warmup") or 0) > 0:
        rows.append(("no warmup", {"schedule.warmup": 0}))
    loss = resolved.loss
    if float(loss.options.get("label_smoothing") or 0) > 0:
        rows.append(("no label smoothing", {"loss.label_smoothing": 0.0}))
    model = resolved.model
    if model.dropout > 0:
        rows.append(("no dropout", {"model.dropout": 0.0}))
    if model.norm != "none":
        rows.append((f"no {model.norm} norm", {"model.norm": "none"}))
    if model.residual:
        rows.append(("no residual connections", {"model.residual": False}))
    if float(resolved.optimizer.options.get("weight_decay") or 0) > 0:
        rows.append(("no weight decay", {"optimizer.weight_decay": 0.0}))
    regularization = resolved.regularization
    for key, label in (("l1", "L1"), ("l2", "L2"), ("elastic_net", "elastic net")):
        if getattr(regularization, key) > 0:
            rows.append((f"no {label} penalty", {f"regularization.{key}": 0.0}))
    augment = config.data.augment
    for i, item in enumerate(augment):
        rest = [other.user_form() for j, other in enumerate(augment) if j != i]
        rows.append((f"no augment {item.name}", {"data.augment": rest}))
    train = resolved.train
    for key, label in (
        ("grad_clip", "no grad clipping"),
        ("ema", "no EMA"),
        ("swa", "no SWA"),
        ("early_stopping", "no early stopping"),
        ("batch_schedule", "no batch-size schedule"),
        ("random_batch_size", "no random batch size"),
    ):
        if getattr(train, key) is not None:
            rows.append((label, {f"train.{key}": None}))
    return rows


def split_tricks(text: str) -> list[str]:
    """``"a=1,b=[1, 2],c={x: 1, y: 2}"`` → ``["a=1", "b=[1, 2]", "c={x: 1, y: 2}"]``: commas
    inside brackets, braces or quotes do not split."""
    parts: list[str] = []
    depth, quote = 0, ""
    current: list[str] = []
    for char in text:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    if depth != 0 or quote:
        raise ConfigError(f"--tricks '{text}': unbalanced brackets or quotes")
    return [p.strip() for p in parts if p.strip()]


def parse_tricks(tricks: Iterable[str] | Mapping[str, Any]) -> list[tuple[str, Change]]:
    """Rows from ``key=value`` strings (each may hold several, comma-separated: one row per
    pair) or a ``{dotted_key: value}`` mapping (one row per key)."""
    if isinstance(tricks, Mapping):
        return [(f"{k}={v}", {k: v}) for k, v in tricks.items()]
    rows: list[tuple[str, Change]] = []
    for text in tricks:
        for pair in split_tricks(text):
            try:
                key, value = parse_override(pair)
            except ConfigError as err:
                raise ConfigError(str(err).replace("--set", "--tricks")) from None
            rows.append((pair, {key: value}))
    if not rows:
        raise ConfigError("--tricks is empty: give KEY=VALUE pairs, e.g. model.dropout=0")
    return rows


def ablate(
    config: ConfigSource,
    overrides: Overrides = None,
    seeds: int = 3,
    tricks: Iterable[str] | Mapping[str, Any] | None = None,
    metric: str | None = None,
    *,
    alpha: float = ALPHA,
    progress: Callable[[str], None] | None = None,
    model: Any = None,
    data: Any = None,
    loss: Any = None,
    metrics: Any = None,
) -> dict[str, Any]:
    """Train ``config`` (with ``overrides``) and, per row, the same recipe with one change, on
    seeds 0..seeds-1, and test each row against the full recipe.

    ``tricks``: ``key=value`` strings or a ``{key: value}`` mapping, one row each; default: the
    tricks found in the config (:func:`find_tricks`). ``metric``: default test_accuracy, or
    test_rmse for regression. ``progress`` receives one line per finished training.

    Returns ``{"metric", "seeds", "full": {"mean", "std", "values"}, "rows": [{"trick",
    "change", "mean", "std", "values", "delta", "p_value", "verdict", "summary"}], ...}``;
    ``delta`` is row mean − full mean. With no rows nothing is trained: ``full`` is None and
    ``message`` says why.
    ``model``, ``data``, ``loss``, ``metrics``: your own objects given in Python (a model
    class or factory, data as (x, y), a dict of splits, a DataFrame or a Dataset; see
    :mod:`nntune.train.objects`).
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        raise ConfigError(
            f"--seeds {seeds}: an ablation is a paired comparison and needs at least 2 seeds "
            "(5 or more to be useful)"
        )
    wanted = parse_metric(metric) if metric is not None else None
    base = with_objects(config, overrides, model=model, data=data, loss=loss, metrics=metrics)
    rows = find_tricks(base) if tricks is None else parse_tricks(tricks)
    test = f"paired t-test (scipy.stats.ttest_rel, two-sided) at alpha {alpha}"
    if not rows:
        return {
            "config": base.name,
            "metric": "_".join(wanted) if wanted else None,
            "seeds": seeds,
            "full": None,
            "rows": [],
            "test": test,
            "message": NO_TRICKS,
        }
    # every row's config checked (keys, values, component options) before anything trains
    from nntune.train.build import check_components

    for label, change in rows:
        try:
            check_components(load_config(base, change))
        except ConfigError as err:
            raise ConfigError(f"trick '{label}': {err}") from None

    started = time.perf_counter()
    total = seeds * (1 + len(rows))
    done = 0
    task: str | None = None

    def run(change: Change, seed: int, label: str) -> float:
        nonlocal done, task, wanted
        from nntune.train import train

        clock = time.perf_counter()
        try:
            result = train(base, {**change, "seed": seed}, write=False, progress=False)
        except TrainingError as err:
            raise TrainingError(f"{label}, seed {seed}: {err}") from None
        summary = result.summary
        if task is None:
            task = str(summary["task"])
            wanted = wanted or parse_metric(DEFAULT_METRIC[task])
            _check_metric(wanted, task)
        assert wanted is not None
        value = _value(summary, wanted, label, seed)
        done += 1
        if progress is not None:
            progress(
                f"ablate: [{done}/{total}] {label} seed {seed}: {'_'.join(wanted)} "
                f"{value:.4f} ({time.perf_counter() - clock:.2f} s)"
            )
        return value

    full_values = [run({}, seed, "full recipe") for seed in range(seeds)]
    assert wanted is not None
    higher_is_better = infer_mode(wanted[1]) == "max"
    full_mean = statistics.fmean(full_values)
    out_rows: list[dict[str, Any]] = []
    for label, change in rows:
        values = [run(change, seed, label) for seed in range(seeds)]
        mean = statistics.fmean(values)
        delta = mean - full_mean
        t_test = paired_t_test(np.array(values), np.array(full_values))
        p_value = t_test["p_value"]
        verdict = "no evidence"
        if p_value is not None and p_value < alpha:
            # removing the trick made the metric worse → the trick helps
            verdict = "trick helps" if (delta < 0) == higher_is_better else "trick hurts"
        out_rows.append(
            {
                "trick": label,
                "change": change,
                "mean": mean,
                "std": statistics.stdev(values),
                "values": values,
                "delta": delta,
                "p_value": p_value,
                "verdict": verdict,
                "summary": _summary(delta, higher_is_better, "_".join(wanted)),
                **({"reason": t_test["reason"]} if "reason" in t_test else {}),
            }
        )
    return {
        "config": base.name,
        "metric": "_".join(wanted),
        "higher_is_better": higher_is_better,
        "seeds": seeds,
        "full": {
            "mean": full_mean,
            "std": statistics.stdev(full_values),
            "values": full_values,
        },
        "rows": out_rows,
        "test": test,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _summary(delta: float, higher_is_better: bool, metric: str) -> str:
    """Direction-aware wording of what removing the trick did."""
    if delta == 0:
        return f"removing it leaves mean {metric} unchanged"
    worse = (delta < 0) == higher_is_better
    return (
        f"removing it {'worsens' if worse else 'improves'} mean {metric} by {abs(delta):.4g} "
        f"(so the trick {'helps' if worse else 'hurts'} on average)"
    )
