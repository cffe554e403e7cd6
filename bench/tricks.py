"""Do the tricks matter? The MNIST-1D recipe with one trick removed at a time.

Each row trains ``examples/mnist1d.yaml`` with one change, on several seeds, and prints one
JSON line: test accuracy mean ± std (sample std over seeds), min and the mean training seconds.
Rows: the full recipe; schedule one_cycle → constant; no label smoothing; no augmentation
(shift + mixup); no BatchNorm; AdamW → SGD with momentum 0.9 (lr 0.05, the same weight decay).
Every row runs in this process with the same seeds, so rows differ only by their change.
Usage: python bench/tricks.py [--seeds 0,1,2] [--epochs 50] [--rows full,no_bn]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import nntune

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples" / "mnist1d.yaml"

ROWS: dict[str, dict[str, object]] = {
    "full": {},
    "constant_lr": {"schedule": "constant"},
    "no_label_smoothing": {"loss": "cross_entropy"},
    "no_augmentation": {"data.augment": []},
    "no_batchnorm": {"model.norm": "none"},
    "sgd_momentum": {"optimizer": {"name": "momentum", "lr": 0.05, "weight_decay": 1.0e-2}},
}


def run_row(name: str, seeds: list[int], epochs: int | None) -> dict[str, object]:
    accuracies, seconds = [], []
    for seed in seeds:
        overrides = {**ROWS[name], "seed": seed}
        if epochs is not None:
            overrides["train.epochs"] = epochs
        result = nntune.train(RECIPE, overrides, write=False, progress=False)
        accuracies.append(result.test["accuracy"])
        seconds.append(result.summary["seconds"])
    return {
        "bench": "tricks",
        "row": name,
        "change": ROWS[name] or "none (the recipe)",
        "seeds": seeds,
        "epochs": epochs,
        "test_accuracy_mean": round(statistics.mean(accuracies), 4),
        "test_accuracy_std": round(statistics.stdev(accuracies), 4) if len(seeds) > 1 else 0.0,
        "test_accuracy_min": min(accuracies),
        "train_seconds_mean": round(statistics.mean(seconds), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--rows", default=",".join(ROWS))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = args.rows.split(",")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        sys.exit(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    for name in rows:
        print(json.dumps(run_row(name, seeds, args.epochs)), flush=True)


if __name__ == "__main__":
    main()
