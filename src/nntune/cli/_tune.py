"""``nntune tune CONFIG``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nntune.cli._app import app, process_started, stderr, stdout


@app.command("tune")
def tune_command(
    config: Path = typer.Argument(
        ..., help="YAML config file", metavar="CONFIG", show_default=False
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="override a key of the base config (YAML values)"
    ),
    trials: int | None = typer.Option(
        None, "--trials", help="trials the study holds in all (a re-run continues the count)"
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", help="wall-clock budget in seconds; running trials stop at it"
    ),
    sampler: str = typer.Option(
        "auto",
        "--sampler",
        help="auto | tpe | random | grid | gp | cmaes (auto: gp on a flat space, else tpe)",
    ),
    pruner: str = typer.Option(
        "auto",
        "--pruner",
        help="auto | asha | hyperband | median | none (auto: none with gp, else asha)",
    ),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="sqlite:///path.db or postgresql://user@host/db (default: a journal file in the "
        "study folder)",
    ),
    study: str | None = typer.Option(
        None, "--study", help="study name (default: the config's name); re-use it to continue"
    ),
    workers: int = typer.Option(1, "--workers", help="worker processes on this machine"),
    out: Path | None = typer.Option(None, "--out", help="study folder (default: runs/<study>)"),
    retrain_best: int = typer.Option(
        0, "--retrain-best", help="retrain best.yaml with this many seeds; report test mean ± std"
    ),
    json_out: bool = typer.Option(False, "--json", help="print summary.json only"),
    quiet: bool = typer.Option(False, "--quiet", help="no line per trial"),
) -> None:
    """Search hyperparameters with Optuna; write runs/<study>/ with best.yaml and a report."""
    from nntune.search import TuneOptions, tune

    if trials is None and timeout is None:
        trials = 20
        if not json_out and not quiet:
            stderr.print("no --trials or --timeout given: running 20 trials", markup=False)
    options = TuneOptions(
        trials=trials,
        timeout=timeout,
        sampler=sampler,
        pruner=pruner,
        storage=storage,
        study=study,
        workers=workers,
        out=out,
        retrain_best=retrain_best,
        quiet=quiet or json_out,
        started=process_started(),
    )
    try:
        result = tune(config, set_, options)
    except KeyboardInterrupt:
        stderr.print(
            "interrupted; finished trials are kept, the summary is written; run the same "
            "command again to continue the study",
            markup=False,
        )
        raise
    summary = result.summary
    if json_out:
        print(json.dumps(summary, indent=2))
        return
    if quiet:
        return
    for line in study_lines(summary):
        stdout.print(line, markup=False)


def study_lines(summary: dict) -> list[str]:
    lines = [
        f"study    {summary['study']}  ({summary['n_complete']} complete, "
        f"{summary['n_pruned']} pruned, {summary['n_failed']} failed; {summary['seconds']:.0f} s)",
    ]
    if summary.get("best_value") is not None:
        lines.append(
            f"best     {summary['metric']} {summary['best_value']:.4f} "
            f"(trial {summary['best_trial']})"
        )
    if summary.get("folds"):  # why a trial trained k times, and what best_value is a mean of
        lines.append(f"folds    {summary['folds_reason']}")
    if summary.get("pareto_front"):
        lines.append(f"pareto   {len(summary['pareto_front'])} trials on the front")
    for key, value in summary.get("best_params", {}).items():
        lines.append(f"         {key} = {value}")
    if summary.get("importances"):
        shown = ", ".join(f"{k} {v:.2f}" for k, v in list(summary["importances"].items())[:5])
        lines.append(f"matters  {shown}")
    for metric, stats in (summary.get("retrain") or {}).items():
        lines.append(f"retrain  {metric} {stats['mean']:.4f} ± {stats['std']:.4f}")
    refit = summary.get("refit") or {}
    if "epochs" in refit:  # best.yaml has no validation part: say so before it is trained
        lines.append(
            f"refit    best.yaml trains on the whole training part for {refit['epochs']} epochs"
        )
    elif refit:
        lines.append(f"refit    not refit: {refit['skipped']}")
    if summary.get("best_config"):
        lines.append(f"config   {summary['best_config']}  (nntune train {summary['best_config']})")
    return lines
