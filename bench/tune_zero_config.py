"""Zero-config quality: a 5-minute ``nntune tune`` study with no flags against scikit-learn.

Issue 22's goal: on every table task of the tune suite (``bench/tune_suite.py``: digits,
breast_cancer, wine, diabetes), the retrained result of a zero-config study (the suite's start
config with no ``search:`` block and no ``train.threads``, as a user has it;
``nntune tune cfg.yaml --timeout 300 --retrain-best 3``: default space, sampler, pruner and
search.folds) is at
least the best of scikit-learn's default LogisticRegression, SVC, RandomForest and
HistGradientBoosting (Ridge, SVR, RandomForestRegressor, HistGradientBoostingRegressor for the
regression) on the same split: each fits nntune's training and validation parts together (it
has no use for a validation part) and scores nntune's test part; LogisticRegression/Ridge and
SVC/SVR standardize first (``make_pipeline(StandardScaler(), ...)``: how they are used), the
trees take the features as they are. Randomized models average seeds 0-2.

One JSON line per task (``"bench": "tune_zero_config"``): ``nntune_mean``/``_std``/``_values``
(test accuracy, or RMSE for diabetes: lower is better), ``baselines`` (each model's score),
``best_baseline``, ``met`` and the study's ``seconds``, ``trials``, ``sampler``.

    .venv/bin/python bench/tune_zero_config.py [--timeout 300] [--tasks digits,wine] [--folds none]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, root_mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tune_suite import ROOT, TASKS

from nntune.config import load_config
from nntune.data import prepare_data
from nntune.search import TuneOptions, tune

TABLE_TASKS = ("digits", "breast_cancer", "wine", "diabetes")


def user_config(task: str, folds: str | None = "auto") -> dict[str, Any]:
    config = copy.deepcopy(TASKS[task])
    config["name"] = f"{task}-zero-config"
    config["train"].pop("threads", None)
    # a user's config has no search block (the suite's one-split setting goes): search.folds
    # is its default, auto, unless --folds names another value to compare with
    config.pop("search", None)
    if folds != "auto":
        config["search"] = {"folds": None if folds in (None, "none") else int(folds)}
    return config


def baselines(config: dict[str, Any]) -> dict[str, float]:
    bundle = prepare_data(load_config(config).data, int(config["seed"]))
    assert bundle.x_val is not None and bundle.y_val is not None and bundle.x_test is not None
    x = np.concatenate([bundle.x_train.numpy(), bundle.x_val.numpy()])
    y = np.concatenate([bundle.y_train.numpy(), bundle.y_val.numpy()])
    x_test, y_test = bundle.x_test.numpy(), bundle.y_test.numpy()  # type: ignore[union-attr]
    regression = bundle.task == "regression"
    if regression:
        y, y_test = y.ravel(), y_test.ravel()
        models: dict[str, Any] = {
            "ridge": lambda s: make_pipeline(StandardScaler(), Ridge()),
            "svr": lambda s: make_pipeline(StandardScaler(), SVR()),
            "random_forest": lambda s: RandomForestRegressor(random_state=s),
            "hist_gradient_boosting": lambda s: HistGradientBoostingRegressor(random_state=s),
        }
    else:
        models = {
            "logistic_regression": lambda s: make_pipeline(StandardScaler(), LogisticRegression()),
            "svc": lambda s: make_pipeline(StandardScaler(), SVC()),
            "random_forest": lambda s: RandomForestClassifier(random_state=s),
            "hist_gradient_boosting": lambda s: HistGradientBoostingClassifier(random_state=s),
        }
    scores = {}
    for name, make in models.items():
        seeds = (0, 1, 2) if name in ("random_forest", "hist_gradient_boosting") else (0,)
        values = []
        for seed in seeds:
            predicted = make(seed).fit(x, y).predict(x_test)
            if regression:
                values.append(float(root_mean_squared_error(y_test, predicted)))
            else:
                values.append(float(accuracy_score(y_test, predicted)))
        scores[name] = round(statistics.mean(values), 4)
    return scores


def run(task: str, timeout: float, out: Path, folds: str = "auto") -> dict[str, Any]:
    config = user_config(task, folds)
    regression = config["data"]["task"] == "regression"
    scores = baselines(config)
    started = time.time()
    options = TuneOptions(timeout=timeout, out=out / task, quiet=True, retrain_best=3)
    result = tune(config, options=options)
    metric = "test_rmse" if regression else "test_accuracy"
    retrain = result.summary["retrain"][metric]
    best = min(scores.values()) if regression else max(scores.values())
    met = retrain["mean"] <= best if regression else retrain["mean"] >= best
    return {
        "bench": "tune_zero_config",
        "task": task,
        "metric": metric,
        "timeout": timeout,
        "folds": folds,
        "folds_used": result.summary.get("folds"),
        "nntune_mean": round(retrain["mean"], 4),
        "nntune_std": round(retrain["std"], 4),
        "nntune_values": [round(v, 4) for v in retrain["values"]],
        "baselines": scores,
        "best_baseline": best,
        "met": met,
        "seconds": round(time.time() - started, 1),
        "trials": result.summary["n_trials"],
        "sampler": result.summary["sampler"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--tasks", default=",".join(TABLE_TASKS))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "tune-zero-config")
    parser.add_argument(
        "--folds",
        default="auto",
        help="search.folds for the study: auto (the default: 5 on these small sets), none, or k",
    )
    args = parser.parse_args()
    out = args.out / time.strftime("%Y%m%d-%H%M%S")
    for task in args.tasks.split(","):
        if task not in TABLE_TASKS:
            parser.error(f"--tasks: {task!r}; allowed: {', '.join(TABLE_TASKS)}")
        print(json.dumps(run(task, args.timeout, out, args.folds)), flush=True)


if __name__ == "__main__":
    main()
