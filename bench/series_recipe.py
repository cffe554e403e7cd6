"""The trainings behind auto's small-series recipe (docs/benchmarks.md#series): one config
variant of one bench/series.py case per command, one JSON line (test accuracy, seconds).

    python bench/series_recipe.py CASE VARIANT EPOCHS [SEED] [JSON_OVERRIDES]
    python bench/series_recipe.py uni36long review 300 0 '{"data": {"val_split": 0.0,
        "augment": [{"name": "time_warp"}]}}'

CASE is a file bench/series.py wrote (runs/bench-series/data/CASE-0.npz: run that first);
VARIANT one of VARIANTS below; JSON_OVERRIDES may set ``data`` keys, ``optimizer`` keys,
``schedule``, ``batch_size`` and ``train`` keys. Every variant: znorm, Adam at 1e-3, a cosine
schedule, batches of 16, a validation part of 20 % unless ``data.val_split`` says otherwise;
the test accuracy is the last epoch's model's.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REVIEW = {"name": "resnet1d", "kernel_sizes": [8, 5, 3], "stem": False, "downsample": False}
VARIANTS: dict[str, dict[str, Any]] = {
    "review": {"arch": REVIEW, "hidden": [64, 128, 128], "activation": "relu"},
    "review_half": {"arch": REVIEW, "hidden": [32, 64, 64], "activation": "relu"},
    "mnist1d": {
        "arch": {"name": "resnet1d", "kernel_size": 3, "blocks": 1},
        "hidden": [16, 32, 64],
        "activation": "gelu",
    },
    "inception": {"arch": {"name": "inception1d"}, "hidden": [32] * 6, "activation": "relu"},
}


def main() -> None:
    import nntune

    case, variant, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    extra: dict[str, Any] = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    path = ROOT / "runs" / "bench-series" / "data" / f"{case}-0.npz"
    config = {
        "name": f"{case}-{variant}",
        "seed": seed,
        "data": {
            "dataset": str(path),
            "preprocess": ["znorm"],
            "val_split": 0.2,
            **extra.get("data", {}),
        },
        "loss": {"name": "cross_entropy"},
        "model": {**VARIANTS[variant], "norm": "batch"},
        "optimizer": {"name": "adam", "lr": 1e-3, **extra.get("optimizer", {})},
        "schedule": extra.get("schedule", {"name": "cosine", "warmup": 0.02}),
        "train": {
            "epochs": epochs,
            "batch_size": extra.get("batch_size", 16),
            **extra.get("train", {}),
        },
    }
    started = time.perf_counter()
    out = ROOT / "runs" / "bench-series" / "recipe" / f"{case}-{variant}-{epochs}-{seed}"
    result = nntune.train(config, out=out, progress=False)
    line = {"bench": "series_recipe", "case": case, "variant": variant, "epochs": epochs,
            "seed": seed, "overrides": extra, "accuracy": round(result.test["accuracy"], 4),
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
