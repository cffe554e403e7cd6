"""``nntune auto`` against scikit-learn baselines on the same splits: one JSON line per figure.

For each dataset, ``nntune.auto.auto(name, budget=B)`` runs the whole pipeline (profile, LR
range test, doctor, search, retrain of the best config on seeds 0..K-1, ablation, evaluation,
export) into ``--out/<name>``, which is kept for inspection. Then, for every retrain seed, the
seed's run folder is opened (``nntune.evaluate.evaluation.open_run``) and the exact arrays
nntune trained and tested on are taken from it: its own split (``data.split_seed`` defaults to
the run's seed: test 20 % stratified for classification, validation 20 % of the rest; MNIST-1D
has a fixed test set, so only its train/val split moves with the seed) after the preprocessing
fitted on that seed's training part (e.g. standardize). The baselines are trained on
train + val (the part nntune used for training and model selection; a refit run of a
cross-validated search has no val part, its train part is the whole) and scored on test, with
x flattened to 2-D:

- classification: LogisticRegression(max_iter=5000), RandomForestClassifier,
  HistGradientBoostingClassifier, SVC(); metric test accuracy;
- regression: Ridge(), RandomForestRegressor, HistGradientBoostingRegressor, SVR(); metric
  test RMSE.

Default settings everywhere, with ``random_state`` = the split's seed for the randomized
models. LogisticRegression's ``max_iter=5000`` is only a ceiling: its default of 100 does not
converge on the raw (unscaled) features, but on the standardized ones nntune hands over lbfgs
stops after 15-82 iterations, so the result is the default's.
Units: nntune does not scale regression targets (``data/pipeline.py`` ``encode_targets`` only
casts them to float32, and no preprocess step touches y), so the bundle's ``y`` and the auto
model's RMSE in auto.json are both in the target's original units, as are the baselines'.

The auto model's figure is auto.json's ``retrain`` test metric: the weights each seed's run
ended with (the training summary; auto's evaluate and export stages use the same weights). The
run's ``best.pt`` (best epoch by the run's monitor: val_loss, or train_loss in a refit run) is
also scored on the same test part and reported as ``best_checkpoint`` on the nntune-auto line;
the two are the same model when early stopping restored the best weights, and can differ
otherwise (MNIST-1D's recipe, refit runs).

Lines: one per (dataset, model) ``{"dataset", "model", "metric", "mean", "std", "values",
"splits"}`` (model ``nntune-auto`` or the scikit-learn class name), then one per dataset with
the issue's goal (and the machine's 1-minute load average before and after auto, since other work
slows the trainings): MNIST-1D: the best of all and ≥ 99 %; classification: auto mean ≥ best
baseline mean − max(1 point, that baseline's seed-to-seed std); regression: auto RMSE ≤ 1.03 ×
the best baseline's; ``commit`` is the repository's ``git describe --dirty`` at the start.
``over_budget`` is true when auto took more than 110 % of its budget.
Progress goes to stderr.
Usage: python bench/auto.py [--datasets mnist1d,digits,breast_cancer,wine,diabetes]
       [--budget 600] [--seeds 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.svm import SVC, SVR
from threadpoolctl import threadpool_limits

from nntune.auto import auto
from nntune.evaluate.evaluation import open_run
from nntune.train.evaluate import predict_outputs

DATASETS = "mnist1d,digits,breast_cancer,wine,diabetes"
ROOT = Path(__file__).resolve().parents[1]
OVER_BUDGET = 1.1  # auto's seconds over its budget beyond which the line says so
ONE_POINT = 0.01  # of accuracy
RMSE_SLACK = 1.03


def baselines(task: str, seed: int) -> list[Any]:
    if task == "classification":
        return [
            LogisticRegression(max_iter=5000),
            RandomForestClassifier(random_state=seed),
            HistGradientBoostingClassifier(random_state=seed),
            SVC(),
        ]
    return [
        Ridge(),
        RandomForestRegressor(random_state=seed),
        HistGradientBoostingRegressor(random_state=seed),
        SVR(),
    ]


def flat(x: Any) -> np.ndarray:
    array = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    return array.reshape(len(array), -1).astype(np.float64)


def score(task: str, y: np.ndarray, predicted: np.ndarray) -> float:
    if task == "classification":
        return float(np.mean(predicted.reshape(-1) == y.reshape(-1)))
    error = predicted.reshape(len(y), -1) - y.reshape(len(y), -1)
    return float(np.sqrt(np.mean(error**2)))


def on_split(run_dir: Path, seed: int) -> tuple[str, dict[str, float], float]:
    """The task, each baseline's test metric on the run's own split, and the test metric of
    the run's best.pt checkpoint."""
    opened = open_run(run_dir)
    bundle = opened.bundle
    assert bundle.x_test is not None and bundle.y_test is not None
    parts = [(bundle.x_train, bundle.y_train)]
    if bundle.x_val is not None and bundle.y_val is not None:
        parts.append((bundle.x_val, bundle.y_val))
    x_fit = np.concatenate([flat(x) for x, _ in parts])
    y_fit = np.concatenate([y.cpu().numpy() for _, y in parts])
    x_test, y_test = flat(bundle.x_test), bundle.y_test.cpu().numpy()
    task = bundle.task
    if task == "regression" and y_fit.ndim == 2 and y_fit.shape[1] == 1:
        y_fit = y_fit[:, 0]
    found: dict[str, float] = {}
    for model in baselines(task, seed):
        started = time.monotonic()
        # one OpenMP thread: HistGradientBoosting's threads next to torch's (and other work on
        # the machine) stalled a 300-row fit for 90 s; the results do not depend on it
        with threadpool_limits(1):
            model.fit(x_fit, y_fit)
        found[type(model).__name__] = score(task, y_test, model.predict(x_test))
        say(
            f"  seed {seed} {type(model).__name__}: {found[type(model).__name__]:.4f} "
            f"({time.monotonic() - started:.1f} s)"
        )
    with torch.no_grad():
        outputs = predict_outputs(opened.model, bundle.x_test)
    if task == "classification":
        mine = opened.loss.predict_labels(outputs).cpu().numpy()
    else:
        mine = outputs.float().cpu().numpy()
    return task, found, score(task, y_test, mine)


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "mean": round(statistics.mean(values), 4),
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "values": [round(v, 4) for v in values],
    }


def goal(name: str, task: str, auto_mean: float, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if task == "classification":
        best = max(rows, key=lambda m: rows[m]["mean"])
        base = rows[best]
        if name == "mnist1d":
            threshold = max(0.99, base["mean"])
            met = auto_mean >= 0.99 and auto_mean > base["mean"]
            text = "best of all, >= 99% accuracy"
        else:
            threshold = base["mean"] - max(ONE_POINT, base["std"])
            met = auto_mean >= threshold
            text = "accuracy >= best baseline mean - max(1 point, its std)"
    else:
        best = min(rows, key=lambda m: rows[m]["mean"])
        base = rows[best]
        threshold = RMSE_SLACK * base["mean"]
        met = auto_mean <= threshold
        text = "RMSE <= 1.03 x best baseline's"
    return {
        "dataset": name,
        "goal": text,
        "met": bool(met),
        "auto_mean": round(auto_mean, 4),
        "best_baseline": best,
        "best_baseline_mean": base["mean"],
        "best_baseline_std": base["std"],
        "threshold": round(threshold, 4),
        "margin": round(auto_mean - base["mean"], 4),
    }


def commit() -> str | None:
    """The repository's commit (``-dirty`` with uncommitted changes): what was measured."""
    try:
        found = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return found.stdout.strip() or None


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def bench(name: str, args: argparse.Namespace, out: Path) -> None:
    say(f"{name}: nntune auto, budget {args.budget:g} s -> {out}")
    load_before = os.getloadavg()[0]  # other work on the machine slows the trainings
    record = auto(name, budget=args.budget, out=out, seeds=args.seeds, progress=say)
    runs = record["retrain"]["runs"]
    task = record["data"]["task"]
    metric = "accuracy" if task == "classification" else "rmse"
    auto_values = [float(run["test"][metric]) for run in runs]
    per_model: dict[str, list[float]] = {}
    best_checkpoint = []
    for run in runs:
        found_task, found, mine = on_split(Path(run["run"]), int(run["seed"]))
        assert found_task == task, (found_task, task)
        best_checkpoint.append(mine)
        for model, value in found.items():
            per_model.setdefault(model, []).append(value)
    splits = len(runs)
    line = {"dataset": name, "model": "nntune-auto", "metric": metric, **summary(auto_values)}
    line.update(splits=splits, best_checkpoint=summary(best_checkpoint))
    print(json.dumps(line), flush=True)
    rows = {model: summary(values) for model, values in per_model.items()}
    for model, row in rows.items():
        line = {"dataset": name, "model": model, "metric": metric, **row, "splits": splits}
        print(json.dumps(line), flush=True)
    tune = record.get("tune") or {}
    line = goal(name, task, statistics.mean(auto_values), rows)
    line.update(
        auto_seconds=record.get("seconds"),
        budget=record.get("budget_seconds"),
        over_budget=bool(record.get("seconds", 0) > OVER_BUDGET * record["budget_seconds"]),
        status=record.get("status"),
        retrain_seeds=splits,
        trials_complete=tune.get("n_complete"),
        trials_pruned=tune.get("n_pruned"),
        trials_failed=tune.get("n_failed"),
        tune_rounds=tune.get("rounds"),
        stages={
            s["stage"]: [s["status"], s.get("seconds"), *([s["note"]] if "note" in s else [])]
            for s in record["stages"]
        },
        load_average_1min=[round(load_before, 2), round(os.getloadavg()[0], 2)],
        folder=str(out),
        commit=args.commit,
    )
    print(json.dumps(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=DATASETS)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per dataset")
    parser.add_argument("--seeds", type=int, default=3, help="retrain seeds (= splits)")
    parser.add_argument("--out", type=Path, default=None, help="default: a new temp folder")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="nntune-bench-auto-"))
    args.commit = commit()
    say(f"auto folders under {root} (kept)")
    for name in args.datasets.split(","):
        bench(name, args, root / name)


if __name__ == "__main__":
    main()
