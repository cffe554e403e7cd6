"""The table of ``bench/tune_suite.py``'s runs, merged: regret rescaled over every method.

``tune_suite.py`` scores a study's normalized regret against the methods of its own run (the
best value any of them found is 0, random search's mean is 1). Runs of different methods,
made one after the other or side by side (on 2 cores a study of each method is a process of
its own), are merged here from their ``study`` lines: a (task, method, seed, budget) that
several files hold is taken once (the runs are seeded, so random search's studies are the same
in every file that has them), ``opt`` becomes the best ``val_best`` over all of them, and the
regrets are recomputed with tune_suite's formula (Bayesmark's ``(val_best - opt) /
(random_mean - opt)``; the study lines carry every number it needs). The retrained test metrics
are each study's own and need no rescaling.

Prints one JSON line per task x method x budget (``"bench": "tune_suite_table"``: ``median_regret``,
``regret_values``, ``val_best`` (median), ``test_mean``/``test_std`` over the seeds' retrain
means, ``start_test_mean``/``start_test_std``, ``seeds``) and, with ``--markdown``, the docs'
tables instead.

    .venv/bin/python bench/tune_suite_table.py runs/tune-suite/*.jsonl --markdown
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scipy import stats

MINIMIZED = True  # tune_suite's search metric is val_loss
MARKS = {"better": " +", "worse": " −", "": ""}


def read_lines(paths: Sequence[Path]) -> tuple[dict[tuple, dict], dict[str, dict]]:
    """Study lines by (task, method, seed, budget), first file first; start lines by task."""
    studies: dict[tuple, dict] = {}
    starts: dict[str, dict] = {}
    for path in paths:
        for text in path.read_text().splitlines():
            if not text.strip():
                continue
            line = json.loads(text)
            if line.get("bench") != "tune_suite":
                continue
            if line["kind"] == "start":
                starts.setdefault(line["task"], line)
            elif line["kind"] == "study":
                key = (line["task"], line["method"], line["seed"], line["budget"])
                studies.setdefault(key, line)
    return studies, starts


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def against_start(lines: Sequence[dict], start: dict) -> tuple[float | None, str]:
    """The issue's two tests of a method's retrained configs against the start config's: a
    paired one-sided t-test over (study, retrain seed) pairs (the chosen config and the start
    config trained with the same seed on the same split), and "never worse": the mean no worse
    than the start's mean by more than one standard error. Returns (p, verdict): "better" for
    p < 0.05, "worse" when the mean is beyond one SE on the wrong side, else ""."""
    starts = start.get("start_test_values") or []
    lower = start.get("test_metric") == "rmse"
    pairs = [
        (value, starts[seed])
        for line in lines
        for seed, value in enumerate(line.get("test_values") or [])
        if seed < len(starts)
    ]
    if len(pairs) < 2 or len(starts) < 2:
        return None, ""
    chosen, base = zip(*pairs, strict=True)
    gains = [(b - c) if lower else (c - b) for c, b in pairs]
    p = (
        1.0
        if all(g == 0 for g in gains)
        else float(stats.ttest_rel(chosen, base, alternative="less" if lower else "greater").pvalue)
    )
    means = [line["test_mean"] for line in lines if line.get("test_mean") is not None]
    se = statistics.stdev(starts) / len(starts) ** 0.5
    shortfall = (statistics.mean(means) - statistics.mean(starts)) * (-1 if lower else 1)
    verdict = "better" if p < 0.05 else "worse" if shortfall < -se else ""
    return p, verdict


def summarize(studies: dict[tuple, dict], starts: dict[str, dict]) -> list[dict[str, Any]]:
    sign = 1.0 if MINIMIZED else -1.0
    rows: list[dict[str, Any]] = []
    for task in dict.fromkeys(key[0] for key in studies):
        mine = {k: v for k, v in studies.items() if k[0] == task}
        found = [sign * v["val_best"] for v in mine.values() if v["val_best"] is not None]
        opt = min(found)
        start = starts.get(task, {})
        for budget in sorted({k[3] for k in mine}):
            randoms = [
                sign * v["val_best"]
                for k, v in mine.items()
                if k[1] == "random" and k[3] == budget and v["val_best"] is not None
            ]
            random_mean = statistics.mean(randoms) if randoms else None
            scale = None
            if random_mean is not None and random_mean > opt:
                scale = random_mean - opt
            elif start.get("start_val") is not None and sign * start["start_val"] > opt:
                scale = sign * start["start_val"] - opt
            for method in dict.fromkeys(k[1] for k in mine):
                lines = [v for k, v in mine.items() if k[1] == method and k[3] == budget]
                if not lines:
                    continue
                regrets = [
                    (sign * v["val_best"] - opt) / scale
                    for v in lines
                    if v["val_best"] is not None and scale is not None
                ]
                tests = [v["test_mean"] for v in lines if v["test_mean"] is not None]
                test_mean, test_std = mean_std(tests)
                vals = [v["val_best"] for v in lines if v["val_best"] is not None]
                p, verdict = against_start(lines, start)
                rows.append(
                    {
                        "bench": "tune_suite_table",
                        "task": task,
                        "method": method,
                        "budget": budget,
                        "seeds": len(lines),
                        "median_regret": round(statistics.median(regrets), 3) if regrets else None,
                        "regret_values": [round(r, 3) for r in regrets],
                        "val_best": round(statistics.median(vals), 6) if vals else None,
                        "test_metric": start.get("test_metric"),
                        "test_mean": None if test_mean is None else round(test_mean, 4),
                        "test_std": None if test_std is None else round(test_std, 4),
                        "start_test_mean": start.get("start_test_mean"),
                        "start_test_std": start.get("start_test_std"),
                        "paired_p": None if p is None else round(p, 4),
                        "vs_start": verdict,
                        "seconds": round(statistics.median(v["seconds"] for v in lines), 1),
                        "trials_mean": round(statistics.mean(v["trials"] for v in lines), 1),
                    }
                )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """Two tables: median regret, and the retrained test metric (mean ± std over seeds)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cells = {(r["task"], r["budget"], r["method"]): r for r in rows}
    keys = list(dict.fromkeys((r["task"], r["budget"]) for r in rows))
    head = "| task | budget | " + " | ".join(methods) + " |"
    rule = "| --- | --- | " + " | ".join("---" for _ in methods) + " |"
    regret, test = [head, rule], [head.replace("| budget |", "| budget | start |"), rule + " --- |"]
    for task, budget in keys:
        row = [cells.get((task, budget, m)) for m in methods]
        regret.append(
            f"| {task} | {budget} | "
            + " | ".join("" if r is None else f"{r['median_regret']:.2f}" for r in row)
            + " |"
        )
        first = next(r for r in row if r is not None)
        start = f"{first['start_test_mean']:.4g} ± {first['start_test_std']:.2g}"
        test.append(
            f"| {task} | {budget} | {start} | "
            + " | ".join(
                ""
                if r is None
                else f"{r['test_mean']:.4g} ± {r['test_std']:.2g}{MARKS[r['vs_start']]}"
                for r in row
            )
            + " |"
        )
    legend = (
        "(+: better than the start config by a paired one-sided t-test, p < 0.05; "
        "−: worse than it by more than one standard error)"
    )
    return "\n".join(
        ["Median normalized regret:", "", *regret, "", "Retrained test:", "", *test, "", legend]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="tune_suite.py outputs (JSON lines)")
    parser.add_argument("--markdown", action="store_true", help="the docs' tables")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    rows = summarize(*read_lines(args.files))
    if not rows:
        parser.error("no tune_suite study lines in these files")
    if args.markdown:
        print(markdown(rows))
    else:
        for row in rows:
            print(json.dumps(row))


if __name__ == "__main__":
    main()
