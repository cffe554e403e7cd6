"""``nntune lr-find CONFIG``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import typer

from nntune.cli._app import app, stdout, working


@app.command("lr-find")
def lr_find_command(
    config: Path = typer.Argument(
        ..., help="YAML config file", metavar="CONFIG", show_default=False
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="override a key: --set model.hidden=[16] (YAML values)"
    ),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON only"),
    min_lr: float = typer.Option(1e-7, "--min-lr", help="lr of the first step"),
    max_lr: float = typer.Option(10.0, "--max-lr", help="lr of the last step"),
    steps: int = typer.Option(100, "--steps", help="optimizer steps (at least 10)"),
) -> None:
    """Find a learning rate: the LR range test (Smith 2017; fastai's lr_find).

    Builds the model, loss, optimizer and batches exactly as `nntune train` does, then takes
    one optimizer step per mini-batch with the lr growing geometrically from --min-lr to
    --max-lr, and records the loss. It stops early once the smoothed loss exceeds 4x its
    minimum. The suggestion is the lr where the loss falls fastest. Only optimizer.lr is
    overridden; augmentation, L1/L2 penalties, accumulation and the schedule are not applied.
    Nothing is written to disk. Full-batch optimizers (gd, lbfgs, newton) are refused.
    """
    from nntune.doctor.lr_find import lr_find, text_plot

    with working(f"LR range test of {config} ({steps} steps)", quiet=json_out):
        result = lr_find(config, set_, min_lr=min_lr, max_lr=max_lr, steps=steps)
    if json_out:
        print(json.dumps(result.to_json(), indent=2))
        return
    for line in text_plot(result):
        stdout.print(line, markup=False)
    ran = f"{result.optimizer}, {result.steps} of {result.max_steps} steps, {result.seconds:.1f} s"
    stdout.print(f"lr-find   {config} ({ran})", markup=False)
    if result.stop_reason:
        stdout.print(f"stopped   {result.stop_reason}", markup=False)
    how = (
        "steepest descent of the loss"
        if result.method == "steepest"
        else "a tenth of the lr of lowest loss"
    )
    stdout.print(
        f"suggested {result.suggestion:.2g} ({how}; lowest smoothed loss at lr "
        f"{result.min_loss_lr:.2g})",
        style="bold",
        markup=False,
    )
    for note in result.notes:
        stdout.print(f"note      {note}", markup=False)
    command = ["nntune", "train", str(config)]
    for override in set_:
        command += ["--set", override]
    command += ["--set", f"optimizer.lr={result.suggestion:.2g}"]
    stdout.print(f"use it    {shlex.join(command)}", markup=False)
