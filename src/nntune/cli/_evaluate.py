"""``nntune evaluate RUN_DIR``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from nntune.cli._app import app, stdout, trust_code_option, working


@app.command("evaluate")
def evaluate_command(
    run_dir: Path = typer.Argument(..., help="run folder", metavar="RUN_DIR", show_default=False),
    split: str = typer.Option("test", "--split", help="test | val | train"),
    checkpoint: str = typer.Option(
        "best", "--checkpoint", help="best | last | snapshot-<epoch> (train.snapshots)"
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="torch threads for the evaluation and the timings (default: all)"
    ),
    attack: str | None = typer.Option(
        None, "--attack", help="fgsm | pgd: robust metrics on adversarial inputs"
    ),
    eps: float = typer.Option(0.1, "--eps", help="L-inf budget of --attack (preprocessed units)"),
    steps: int = typer.Option(10, "--steps", help="PGD steps of --attack pgd"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON only"),
    trust_code: bool = trust_code_option(),
) -> None:
    """Every metric of a run's model on one of its splits, per class, plus the model's cost.

    The split is rebuilt exactly as the run was trained (the saved config's data, seed and
    split; the preprocessing fitted on the training part, checked against the saved one).
    Latencies are medians of timed forward passes after warm-up, on CPU.
    """
    from nntune.evaluate import evaluate_run

    with working(f"evaluating {run_dir} on its {split} split", quiet=json_out):
        result = evaluate_run(
            run_dir,
            split=split,
            checkpoint=checkpoint,
            threads=threads,
            attack=attack,
            eps=eps,
            steps=steps,
            trust_code=trust_code,
        )
    if json_out:
        print(json.dumps(result, indent=2))
        return
    for table in result_tables(result):
        stdout.print(table)
    for note in result.get("notes", []):
        stdout.print(f"note: {note}", markup=False)


def _fmt(value: Any) -> Text:
    if value is None:
        return Text("-")
    if isinstance(value, float):
        return Text(f"{value:.4f}")
    return Text(str(value))


def result_tables(result: dict[str, Any]) -> list[Table]:
    title = (
        f"{result['run']}: {result['split']} part ({result['n']} samples), "
        f"{result['checkpoint']} checkpoint, {result['task']}"
    )
    if result.get("attack"):
        shown = ", ".join(f"{k} {v}" for k, v in result["attack"].items())
        title += f"; under attack ({shown}): robust metrics"
    metrics = Table(title=Text(title), show_header=True)
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for name, value in result["metrics"].items():
        metrics.add_row(Text(name), _fmt(value))
    tables = [metrics]
    if result["per_class"]:
        per_class = Table(title="per class")
        for column in ("class", "precision", "recall", "f1", "support"):
            per_class.add_column(column, justify="left" if column == "class" else "right")
        for row in result["per_class"]:
            per_class.add_row(
                *(_fmt(row[k]) for k in ("class", "precision", "recall", "f1")),
                _fmt(row["support"]),
            )
        tables.append(per_class)
    matrix = result.get("confusion_matrix")
    if matrix:
        names = [row["class"] for row in result["per_class"]]
        confusion = Table(title="confusion matrix (rows: true class, columns: predicted)")
        confusion.add_column("")
        for name in names:
            confusion.add_column(Text(name), justify="right")
        for name, row in zip(names, matrix, strict=True):
            confusion.add_row(Text(name), *(Text(str(v)) for v in row))
        tables.append(confusion)
    cost = result.get("cost")
    if cost:
        costs = Table(title="cost")
        costs.add_column("measure")
        costs.add_column("value", justify="right")
        big = next((k for k in cost if k.startswith("latency_ms_per_sample_batch")), None)
        rows = [
            ("parameters", f"{cost['parameters']:,}"),
            ("FLOPs per sample", f"{cost['flops_per_sample']:,}"),
            ("latency, batch 1", f"{cost['latency_ms_batch1']:.3g} ms"),
        ]
        if big is not None:
            size = big.removeprefix("latency_ms_per_sample_batch")
            rows.append((f"latency per sample, batch {size}", f"{cost[big]:.3g} ms"))
        rows.append(("device, threads", f"{cost.get('device')}, {cost.get('threads')}"))
        for label, value in rows:
            costs.add_row(Text(label), Text(value))
        tables.append(costs)
    return tables
