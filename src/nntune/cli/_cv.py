"""``nntune cv CONFIG --folds K``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from nntune.cli._app import app, progress_printer, stdout


@app.command("cv")
def cv_command(
    config: Path = typer.Argument(..., help="YAML config", metavar="CONFIG", show_default=False),
    folds: int = typer.Option(5, "--folds", help="number of folds K (≥ 2)"),
    repeats: int = typer.Option(1, "--repeats", help="repeat the K folds R times, reshuffled"),
    loo: bool = typer.Option(
        False, "--loo", help="leave-one-out instead of K folds (pools of ≤ 500 samples)"
    ),
    set_: list[str] = typer.Option([], "--set", help="override a config key (YAML value)"),
    metric: str | None = typer.Option(
        None,
        "--metric",
        help="headline metric (default: test_accuracy, or test_rmse for regression)",
    ),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON only"),
    quiet: bool = typer.Option(False, "--quiet", help="no line per finished fold"),
) -> None:
    """Cross-validate a config: stratified K-fold (KFold for regression), repeated K-fold or
    leave-one-out over the dataset's training part; its test part stays unused. Each fold
    trains the config (data.val_split still applies) and scores the held-out fold, with
    preprocessing fitted on the fold's training rows only.
    """
    from nntune.evaluate.cv import cross_validate

    result = cross_validate(
        config,
        set_,
        folds=folds,
        repeats=repeats,
        loo=loo,
        metric=metric,
        progress=progress_printer(quiet),
    )
    if json_out:
        print(json.dumps(result, indent=2))
        return
    stdout.print(result_table(result))
    for line in result_lines(result):
        stdout.print(line, markup=False)


def _f(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def result_table(result: dict[str, Any]) -> Table:
    title = (
        f"{result['method']}: {result['folds']} folds × {result['repeats']} repeat(s), "
        f"{result['n_samples']} samples"
    )
    table = Table(title=Text(title))
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    table.add_column("pooled", justify="right")
    for name, entry in result["metrics"].items():
        table.add_row(
            Text(f"test_{name}"),
            Text(_f(entry["mean"])),
            Text(_f(entry["std"])),
            Text(_f(result["pooled"].get(name))),
        )
    return table


def result_lines(result: dict[str, Any]) -> list[str]:
    name = result["metric"].removeprefix("test_")
    values = " ".join(_f(v) for v in result["values"])
    return [
        f"{result['metric']}  {_f(result['mean'])} ± {_f(result['std'])} (sample std); "
        f"pooled {_f(result['pooled'].get(name))}",
        f"per fold  {values}",
        f"note      {result['note']}",
    ]
