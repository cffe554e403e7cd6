"""Does auto's lr_find stage help? auto's starting recipe trained with its own lr against the
lr the LR range test moved it to (``nntune.auto.pipeline.moved_lr``: toward the suggestion, at
most 3× either way), on the same splits and seeds.

For each data set and split s: ``starting_config(understand(data))`` with ``data.split_seed`` =
s (for a text bag, the tokens auto's probe chooses), ``lr_find(config, steps=100)`` as auto
calls it, then the config trained with seeds 0..k-1 two ways: ``recipe`` (the recipe's lr) and
``moved`` (the range test's). Both score the same test part; each run keeps the recipe's
validation part and early stopping, as auto's search and doctor see it.

Data sets: ``rt`` and ``fortunes`` (bench/text.py's CSVs), ``mnist1d``, ``spirals`` (5,000
generated rows), ``digits``, ``breast_cancer``.

One JSON line per data set, split and way (``test`` per seed, ``mean``, the lrs), then one per
data set (``"figure": "summary"``: the mean paired difference moved - recipe with its standard
error over splits × seeds; for RMSE, lower is better).

    .venv/bin/python bench/lr_move.py [--datasets rt,fortunes,mnist1d,spirals,digits]
        [--splits 2] [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # bench/refit.py's data sets

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "runs" / "bench-lr-move"


def emit(**line: Any) -> None:
    print(json.dumps({"bench": "lr_move", **line}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="rt,fortunes,mnist1d,spirals,digits")
    parser.add_argument("--splits", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    from refit import sources, split_recipe, standard_error, test_metric  # bench/refit.py

    import nntune
    from nntune.auto import recipe
    from nntune.auto.pipeline import moved_lr
    from nntune.auto.tokenizer_probe import choose_tokenizer
    from nntune.config import load_config
    from nntune.doctor.lr_find import lr_find

    root = args.out / time.strftime("%Y%m%d-%H%M%S")
    (args.out / "data").mkdir(parents=True, exist_ok=True)
    for name in args.datasets.split(","):
        data, target, extra = sources(name, args.out / "data")
        facts = recipe.understand(data, target)
        diffs: list[float] = []
        metric = "accuracy"
        for split in range(args.splits):
            config = split_recipe(facts, extra, f"lr-{name}-{split}", split)
            config.pop("search", None)
            checked = load_config(config)
            if facts.kind == "text" and checked.model.arch.name == "bag":  # as auto's data stage
                chosen, _ = choose_tokenizer(config, recipe.bag_tokenizers(facts), split)
                config["data"]["tokenizer"] = chosen
            current = float(config["optimizer"]["lr"])
            found = lr_find(config, steps=100)
            lrs = {"recipe": current, "moved": moved_lr(current, found.suggestion)}
            scored: dict[str, list[float]] = {}
            for way, lr in lrs.items():
                started = time.perf_counter()
                for seed in range(args.seeds):
                    out = root / name / f"split{split}" / f"{way}-seed{seed}"
                    trained = {**config, "seed": seed,
                               "optimizer": {**config["optimizer"], "lr": lr}}  # fmt: skip
                    run = nntune.train(trained, out=out, progress=False)
                    metric, value = test_metric(run.summary)
                    scored.setdefault(way, []).append(value)
                emit(dataset=name, split=split, way=way, lr=lr, suggestion=found.suggestion,
                     metric=metric, test=scored[way], mean=round(statistics.fmean(scored[way]), 4),
                     seconds=round(time.perf_counter() - started, 1))  # fmt: skip
            diffs += [m - r for m, r in zip(scored["moved"], scored["recipe"], strict=True)]
        spread = standard_error(diffs)
        emit(dataset=name, figure="summary", metric=metric,
             moved_minus_recipe=round(statistics.fmean(diffs), 4),
             standard_error=None if spread is None else round(spread, 4),
             pairs=len(diffs))  # fmt: skip


if __name__ == "__main__":
    main()
