"""Search methods at an equal wall-clock budget: TPE+ASHA vs random search vs TPE, no pruning.

Each (method, repeat) runs a fresh ``nntune tune`` study of ``examples/mnist1d.yaml`` with the
default space (the config's ``search.space`` emptied) on ``val_accuracy``, in a temporary folder,
with ``seed`` = the repeat index. One JSON line per method: best validation accuracy at the
budget (best complete trial), the wall-clock time from the study's start until an epoch of any
trial (pruned ones too) first reached the target validation accuracy (trial start + the epoch's
training seconds; the epoch a deadline cut short is left out; null if never; the median
counts a miss as infinite), trials complete/pruned.
Then the ratio of TPE+ASHA's median time to target over random search's, and the best TPE+ASHA
config retrained with K seeds (test accuracy).
Usage: python bench/tune.py [--budget 480] [--repeats 3] [--methods tpe_asha,random,tpe]
       [--target 0.985] [--epochs E] [--retrain-seeds 3] [--config examples/mnist1d.yaml]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna

import nntune
from nntune.search import TuneOptions, tune
from nntune.search.study import make_storage

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"tpe_asha": ("tpe", "asha"), "random": ("random", "none"), "tpe": ("tpe", "none")}


def time_to_target(study_dir: Path, study_name: str, started: float, target: float) -> dict:
    """Earliest second after ``started`` at which an epoch reached ``target``, the best
    validation accuracy of any epoch, and how many trials were pruned by the deadline."""
    storage = make_storage(f"journal:{study_dir / 'study.journal'}")
    study = optuna.load_study(study_name=study_name, storage=storage)
    first, seen, by_deadline = math.inf, None, 0
    for trial in study.get_trials(deepcopy=False):
        metrics = Path(trial.user_attrs.get("run_dir", "-")) / "metrics.jsonl"
        if trial.datetime_start is None or not metrics.exists():
            continue
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        if trial.user_attrs.get("pruned_by") == "deadline":
            by_deadline += 1
            rows = rows[:-1]  # the epoch cut short by the deadline, logged after it
        start = trial.datetime_start.timestamp()  # naive local time, like time.time()
        for row in rows:
            value = row.get("val_accuracy")
            if value is None:
                continue
            seen = value if seen is None else max(seen, value)
            if value >= target:
                first = min(first, start + row["seconds"] - started)
    return {
        "time_to_target_s": round(first, 1) if math.isfinite(first) else None,
        "best_val_accuracy_seen": seen,
        "pruned_by_deadline": by_deadline,
    }


def run_study(args: argparse.Namespace, method: str, repeat: int, root: Path) -> dict:
    sampler, pruner = METHODS[method]
    overrides: dict[str, object] = {
        "search.space": {},
        "search.metric": "val_accuracy",
        "search.direction": "auto",
        # each method searches from scratch: the recipe as every study's first trial would hand
        # all of them the same head start and measure the recipe, not the search
        "search.start_from_config": False,
        "seed": repeat,
    }
    if args.epochs is not None:
        overrides["train.epochs"] = args.epochs
    name = f"{method}-r{repeat}"
    options = TuneOptions(
        out=root / name, study=name, timeout=args.budget, sampler=sampler, pruner=pruner, quiet=True
    )
    started = time.time()
    result = tune(args.config, overrides, options)
    return {
        "best_val_accuracy": result.best_value,
        "best_config": result.best_config,
        "complete": result.n_complete,
        "pruned": result.n_pruned,
        "failed": result.n_failed,
        "wall_s": round(time.time() - started, 1),
        **time_to_target(result.study_dir, name, started, args.target),
    }


def censored_median(values: list[float | None]) -> float | None:
    """Median with a miss (None) counted as infinite; None when the median is a miss."""
    median = statistics.median([math.inf if v is None else v for v in values])
    return round(median, 1) if math.isfinite(median) else None


def mean(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.mean(known), 4) if known else None


def summarize(args: argparse.Namespace, method: str, runs: list[dict]) -> dict:
    times = [r["time_to_target_s"] for r in runs]
    return {
        "bench": "tune",
        "method": method,
        "sampler_pruner": "+".join(METHODS[method]),
        "budget_s": args.budget,
        "repeats": len(runs),
        "epochs": args.epochs,
        "target": args.target,
        "best_val_accuracy_mean": mean([r["best_val_accuracy"] for r in runs]),
        "best_val_accuracy_values": [r["best_val_accuracy"] for r in runs],
        "best_val_accuracy_seen_values": [r["best_val_accuracy_seen"] for r in runs],
        "time_to_target_s_values": times,
        "time_to_target_s_median": censored_median(times),
        "reached_target": sum(t is not None for t in times),
        "trials_complete_mean": mean([r["complete"] for r in runs]),
        "trials_pruned_mean": mean([r["pruned"] for r in runs]),
        "trials_pruned_by_deadline_mean": mean([r["pruned_by_deadline"] for r in runs]),
        "trials_failed_total": sum(r["failed"] for r in runs),
        "wall_s_values": [r["wall_s"] for r in runs],
    }


def retrain(best_config: Path, seeds: int) -> dict:
    accuracies = []
    for seed in range(seeds):
        result = nntune.train(best_config, {"seed": seed}, write=False, progress=False)
        accuracies.append(result.test["accuracy"])
    return {
        "bench": "tune-retrain",
        "seeds": list(range(seeds)),
        "test_accuracy_mean": round(statistics.mean(accuracies), 4),
        "test_accuracy_std": round(statistics.stdev(accuracies), 4) if seeds > 1 else 0.0,
        "test_accuracy_values": accuracies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "mnist1d.yaml")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds per study")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--target", type=float, default=0.985)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--retrain-seeds", type=int, default=3, help="0: no retraining")
    args = parser.parse_args()
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        sys.exit(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    medians: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        best: dict | None = None  # the best tpe_asha run over the repeats
        for method in methods:
            runs = [run_study(args, method, r, Path(tmp)) for r in range(args.repeats)]
            line = summarize(args, method, runs)
            medians[method] = line["time_to_target_s_median"]
            print(json.dumps(line), flush=True)
            if method == "tpe_asha":
                scored = [r for r in runs if r["best_val_accuracy"] is not None]
                best = max(scored, key=lambda r: r["best_val_accuracy"], default=None)
        if medians.get("tpe_asha") and medians.get("random"):
            ratio = round(medians["tpe_asha"] / medians["random"], 3)
            print(json.dumps({"bench": "tune-ratio", "tpe_asha_over_random_time_to_target": ratio}))
        if args.retrain_seeds > 0 and best is not None and best["best_config"] is not None:
            line = retrain(best["best_config"], args.retrain_seeds)
            line["best_val_accuracy"] = best["best_val_accuracy"]
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
