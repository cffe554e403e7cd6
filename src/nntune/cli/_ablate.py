"""``nntune ablate CONFIG``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from nntune.cli._app import app, progress_printer, stdout


@app.command("ablate")
def ablate_command(
    config: Path = typer.Argument(..., help="YAML config", metavar="CONFIG", show_default=False),
    seeds: int = typer.Option(3, "--seeds", help="train every row on seeds 0..N-1 (N ≥ 2)"),
    tricks: str | None = typer.Option(
        None,
        "--tricks",
        help="rows as KEY=VALUE pairs, comma-separated, YAML values (commas inside [] or {} "
        "do not split); default: the config's own tricks, each switched off",
    ),
    trick: list[str] = typer.Option(
        [], "--trick", help="one row KEY=VALUE (repeatable; adds to --tricks)"
    ),
    set_: list[str] = typer.Option([], "--set", help="override a key of the recipe (YAML values)"),
    metric: str | None = typer.Option(
        None,
        "--metric",
        help="what to measure (default: test_accuracy, or test_rmse for regression)",
    ),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON only"),
    quiet: bool = typer.Option(False, "--quiet", help="no line per finished training"),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="folder for ablate.json and report.html (default: runs/<name>-ablate-<time>)",
    ),
) -> None:
    """Do the recipe's tricks matter? Trains the full recipe and, per row, the recipe with one
    trick switched off, on the same seeds, and tests each row against the full recipe
    (two-sided paired t-test at alpha 0.05, direction-aware).
    """
    from nntune.evaluate.ablate import ablate, split_tricks
    from nntune.report import result_folder, save_result

    folder = result_folder(out, f"{config.stem}-ablate")
    rows: list[str] | None = None
    if tricks is not None or trick:
        rows = [*(split_tricks(tricks) if tricks is not None else []), *trick]
    result = ablate(
        config,
        overrides=set_,
        seeds=seeds,
        tricks=rows,
        metric=metric,
        progress=progress_printer(quiet),
    )
    report = save_result("ablate", result, folder)
    if json_out:
        print(json.dumps(result, indent=2))
        return
    if not result["rows"]:
        stdout.print(result["message"], markup=False)
        if report is not None:
            stdout.print(f"report: {report}", markup=False)
        return
    stdout.print(result_table(result))
    for row in result["rows"]:
        stdout.print(f"{row['trick']}: {row['summary']}; {row['verdict']}", markup=False)
    stdout.print(f"verdicts: {result['test']}", markup=False)
    if report is not None:
        stdout.print(f"report: {report}", markup=False)


def _p(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _change(change: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in change.items())


def result_table(result: dict[str, Any]) -> Table:
    better = "higher" if result["higher_is_better"] else "lower"
    table = Table(title=Text(f"{result['metric']} ({better} is better), seeds {result['seeds']}"))
    for name, justify in (
        ("trick", "left"),
        ("change", "left"),
        ("mean", "right"),
        ("std", "right"),
        ("Δ vs full", "right"),
        ("p", "right"),
        ("verdict", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    full = result["full"]
    table.add_row(
        Text("full recipe"),
        Text("-"),
        Text(f"{full['mean']:.4f}"),
        Text(f"{full['std']:.4f}"),
        Text(""),
        Text(""),
        Text(""),
    )
    for row in result["rows"]:
        table.add_row(
            Text(row["trick"]),
            Text(_change(row["change"])),
            Text(f"{row['mean']:.4f}"),
            Text(f"{row['std']:.4f}"),
            Text(f"{row['delta']:+.4f}"),
            Text(_p(row["p_value"])),
            Text(row["verdict"]),
        )
    return table
