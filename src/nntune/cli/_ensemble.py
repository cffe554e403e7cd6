"""``nntune ensemble RUN_DIR RUN_DIR...``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from nntune.cli._app import app, stdout, trust_code_option, working


@app.command("ensemble")
def ensemble_command(
    run_dirs: list[Path] = typer.Argument(
        ...,
        help="two or more run folders, or one with snapshots (train.snapshots)",
        metavar="RUN_DIR...",
        show_default=False,
    ),
    split: str = typer.Option("test", "--split", help="test | val | train"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON only"),
    trust_code: bool = trust_code_option(),
) -> None:
    """Average the members' class probabilities (regression: outputs) and score the ensemble
    against each member on the same split. The runs must share their data and split (train
    several seeds with a fixed data.split_seed when the dataset has no test split of its own)."""
    from nntune.strategies import ensemble_runs

    with working(f"scoring {len(run_dirs)} runs and their ensemble", quiet=json_out):
        result = ensemble_runs(run_dirs, split=split, checkpoint=checkpoint, trust_code=trust_code)
    if json_out:
        print(json.dumps(result, indent=2))
        return
    metric = result["metric"]
    better = "higher" if result["higher_is_better"] else "lower"
    table = Table(title=Text(f"{split} {metric} ({better} is better), {result['n']} samples"))
    table.add_column("model")
    table.add_column(metric, justify="right")
    for member in result["members"]:
        table.add_row(Text(member["run"]), Text(f"{member['metrics'][metric]:.4f}"))
    table.add_row(Text("mean of the members"), Text(f"{result['mean_member']:.4f}"))
    table.add_row(
        Text(f"ensemble ({result['ensemble']['method']})", style="bold"),
        Text(f"{result['ensemble']['metrics'][metric]:.4f}", style="bold"),
    )
    stdout.print(table)
    verdict = "beats" if result["beats_best_member"] else "does not beat"
    stdout.print(
        f"ensemble vs mean member: {result['gain_over_mean_member']:+.4f}; it {verdict} the "
        "best member",
        markup=False,
    )
