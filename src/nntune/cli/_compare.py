"""``nntune compare CONFIG_A CONFIG_B``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from nntune.cli._app import app, progress_printer, stdout


@app.command("compare")
def compare_command(
    config_a: Path = typer.Argument(
        ..., help="YAML config A", metavar="CONFIG_A", show_default=False
    ),
    config_b: Path = typer.Argument(
        ..., help="YAML config B", metavar="CONFIG_B", show_default=False
    ),
    seeds: int = typer.Option(5, "--seeds", help="train each config on seeds 0..N-1 (N ≥ 2)"),
    set_: list[str] = typer.Option(
        [], "--set", help="override a key in both configs (YAML values)"
    ),
    metric: str | None = typer.Option(
        None,
        "--metric",
        help="what to compare (default: test_accuracy, or test_rmse for regression)",
    ),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON only"),
    quiet: bool = typer.Option(False, "--quiet", help="no line per finished training"),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="folder for compare.json and report.html (default: runs/<name>-compare-<time>)",
    ),
) -> None:
    """Is config A better than config B? Trains both on the same seeds (same splits) and tests
    the paired differences of a test metric.

    Verdict: two-sided paired t-test at alpha 0.05, direction-aware (lower is better for
    losses and errors). Also reported: Wilcoxon signed-rank test, McNemar's exact test on the
    last seed pair's test predictions, a 95% bootstrap interval of the mean difference and
    Cohen's d of the differences.
    """
    from nntune.evaluate.compare import compare
    from nntune.report import result_folder, save_result

    folder = result_folder(out, f"{config_a.stem}-vs-{config_b.stem}-compare")

    result = compare(
        config_a,
        config_b,
        seeds=seeds,
        overrides=set_,
        metric=metric,
        progress=progress_printer(quiet),
    )
    report = save_result("compare", result, folder)
    if json_out:
        print(json.dumps(result, indent=2))
        return
    stdout.print(result_table(result))
    for line in result_lines(result):
        stdout.print(line, markup=False)
    if report is not None:
        stdout.print(f"report: {report}", markup=False)


def _p(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def result_table(result: dict[str, Any]) -> Table:
    better = "higher" if result["higher_is_better"] else "lower"
    table = Table(title=Text(f"{result['metric']} ({better} is better), seeds {result['seeds']}"))
    table.add_column("config")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    table.add_column("values", justify="left")
    for side in ("a", "b"):
        entry = result[side]
        table.add_row(
            Text(f"{side.upper()}: {entry['config']}"),
            Text(f"{entry['mean']:.4f}"),
            Text(f"{entry['std']:.4f}"),
            Text(" ".join(f"{v:.4f}" for v in entry["values"])),
        )
    return table


def result_lines(result: dict[str, Any]) -> list[str]:
    diff = result["difference"]
    ci = diff["ci95"]
    tests = result["tests"]
    effect = result["effect_size"]
    lines = [
        f"difference  A - B = {diff['mean']:+.4f} (95% bootstrap CI {ci['low']:+.4f} .. "
        f"{ci['high']:+.4f}); Cohen's d {_p(effect['cohens_d'])}",
    ]
    for key, label in (("t_test", "t-test"), ("wilcoxon", "Wilcoxon"), ("mcnemar", "McNemar")):
        test = tests[key]
        why = test.get("reason") or test.get("note")
        lines.append(f"{label:<11} p = {_p(test['p_value'])}" + (f" ({why})" if why else ""))
    lines.append(f"verdict     {result['verdict']} ({result['test']})")
    return lines
