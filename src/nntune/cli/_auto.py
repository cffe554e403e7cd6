"""``nntune auto DATA``."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import typer

from nntune.cli._app import app, progress_printer, stderr, stdout


@app.command("auto")
def auto_command(
    data: str = typer.Argument(
        ...,
        help="a .csv/.parquet/.npz file or a built-in dataset name (nntune list datasets)",
        metavar="DATA",
        show_default=False,
    ),
    target: str | None = typer.Option(
        None,
        "--target",
        help="the target column of a table (default: one named target/label/y/class)",
    ),
    budget: str = typer.Option(
        "10m", "--budget", help="wall-clock budget: seconds or a duration such as 90s, 10m, 1h30m"
    ),
    task: str = typer.Option(
        "auto", "--task", help="auto (inferred from the target), classification or regression"
    ),
    layout: str = typer.Option(
        "auto",
        "--layout",
        help="how an .npz's x is read: auto (guessed from its shape), NCL, NLC (series), "
        "NCHW, NHW (images)",
    ),
    seeds: int = typer.Option(3, "--seeds", help="seeds the final recipe is retrained with"),
    seed: int = typer.Option(0, "--seed", help="seed of the search and of the final model"),
    out: Path | None = typer.Option(
        None, "--out", help="folder for everything auto writes (default: runs/<data>-auto-<time>)"
    ),
    export: bool = typer.Option(
        True, "--export/--no-export", help="export the final model to ONNX"
    ),
    json_out: bool = typer.Option(False, "--json", help="print auto.json only"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress lines"),
) -> None:
    """From a data set to a tuned, diagnosed, evaluated and exported model within a budget:
    data profile → LR range test → doctor probe (repaired if sick) → search with pruning →
    retrain of the best config on several seeds → ablation if time remains → test metrics with
    confidence intervals → report.html, best.yaml and model.onnx."""
    from nntune.auto import Auto

    printer = progress_printer(quiet or json_out)
    # on a terminal, a live line shows the running stage under the finished ones
    live = stderr.status("auto: starting") if printer and stderr.is_terminal else None

    def say(line: str) -> None:
        assert printer is not None
        printer(line)
        if live is not None:
            live.update(line)

    runner = Auto(
        data,
        target=target,
        budget=budget,
        task=task,
        layout=layout,
        out=out,
        seed=seed,
        seeds=seeds,
        export=export,
        progress=say if printer else None,
    )
    if printer is not None:
        say(f"auto: writing to {runner.folder} (budget {runner.clock.total:.0f} s)")
    try:
        with live if live is not None else nullcontext():
            result = runner.run()
    except KeyboardInterrupt:
        stderr.print(
            f"interrupted: the finished stages are in {runner.folder} (auto.json, report.html)",
            markup=False,
        )
        raise
    if json_out:
        print(json.dumps(result, indent=2))
    elif not quiet:
        for line in result_lines(result):
            stdout.print(line, markup=False)
    failed = [stage for stage in result["stages"] if stage["status"] == "failed"]
    for stage in failed:
        stderr.print(f"auto: stage {stage['stage']} failed: {stage.get('note')}", markup=False)
    logs = sorted({stage["traceback"] for stage in failed if "traceback" in stage})
    if logs:  # a bug, not the input's fault: exit 1, with the finished stages kept
        stderr.print(f"auto: the tracebacks are in {', '.join(logs)}", markup=False)
        raise typer.Exit(1)


def result_lines(result: dict) -> list[str]:
    final = result.get("final") or {}
    metrics = final.get("metrics") or {}
    lines = [
        f"folder   {Path(result['start_config']).parent if result.get('start_config') else '-'}"
    ]
    for key in ("accuracy", "f1", "auc", "rmse", "mae", "r2"):
        if metrics.get(key) is None:
            continue
        interval = (final.get("ci") or {}).get(key)
        shown = f"test {key:<8} {metrics[key]:.4f}"
        if interval:
            level = int(100 * interval["level"])
            shown += f"  ({level}% CI {interval['low']:.4f}-{interval['high']:.4f})"
        seeds = ((result.get("retrain") or {}).get("test") or {}).get(key)
        if seeds and len(seeds["values"]) > 1:
            shown += f"  seeds {seeds['mean']:.4f} ± {seeds['std']:.4f} (n={len(seeds['values'])})"
        lines.append(shown)
    lines.append(
        f"time     {result.get('seconds', 0):.0f} s of {result.get('budget_seconds', 0):.0f} s"
    )
    if result.get("report"):
        lines.append(f"report   {result['report']}")
    if result.get("reproduce"):
        lines.append(f"again    {result['reproduce']}")
    return lines
