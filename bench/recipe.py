"""The default recipe: test accuracy and wall time of ``nntune train examples/mnist1d.yaml``.

Runs the real command in a subprocess (so the wall time includes start-up, data and the final
evaluation) once per seed and prints one JSON line per run, then one with the summary:
test accuracy (mean, min), training seconds (summary.json) and whole-command wall seconds.
Usage: python bench/recipe.py [--seeds 0,1,2] [--config examples/mnist1d.yaml] [--set KEY=VALUE ...]
(``--set`` is passed on to ``nntune train``, e.g. ``--set data.val_split=0`` trains on train + val)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(config: Path, seed: int, out: Path, overrides: list[str]) -> dict:
    start = time.perf_counter()
    sets = [arg for item in overrides for arg in ("--set", item)]
    done = subprocess.run(
        [sys.executable, "-m", "nntune", "train", str(config), "--json", "--out", str(out),
         *sets, "--set", f"seed={seed}"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"nntune train failed ({done.returncode}):\n{done.stderr}")
    summary = json.loads(done.stdout)
    return {
        "bench": "recipe",
        "config": str(config.relative_to(ROOT)) if config.is_relative_to(ROOT) else str(config),
        "seed": seed,
        "overrides": overrides,
        "test_accuracy": summary["test"]["accuracy"],
        "train_seconds": summary["seconds"],
        "wall_seconds": round(wall, 2),
        "epochs": summary["epochs_run"],
        "parameters": summary["parameters"],
        "threads": summary["threads"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "mnist1d.yaml")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            row = run(args.config.resolve(), seed, Path(tmp) / f"seed{seed}", args.overrides)
            print(json.dumps(row), flush=True)
            rows.append(row)
    if len(rows) > 1:
        accuracies = [r["test_accuracy"] for r in rows]
        print(
            json.dumps(
                {
                    "bench": "recipe-summary",
                    "seeds": seeds,
                    "test_accuracy_mean": round(statistics.mean(accuracies), 4),
                    "test_accuracy_min": min(accuracies),
                    "train_seconds_max": max(r["train_seconds"] for r in rows),
                    "wall_seconds_max": max(r["wall_seconds"] for r in rows),
                }
            )
        )


if __name__ == "__main__":
    main()
