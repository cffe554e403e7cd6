"""``nntune gradcheck CONFIG``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from nntune.cli._app import app, stdout, working

if TYPE_CHECKING:
    from nntune.diagnose import GradcheckReport

SAMPLES = 8  # training samples the check runs on


@app.command("gradcheck")
def gradcheck_command(
    config: Path = typer.Argument(
        ..., help="YAML config file", metavar="CONFIG", show_default=False
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="override a key: --set model.hidden=[16] (YAML values)"
    ),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON only"),
    max_entries: int = typer.Option(
        200, "--max-entries", min=1, help="entries checked per parameter tensor (chosen at random)"
    ),
    eps: float = typer.Option(1e-6, "--eps", help="finite-difference step"),
    atol: float = typer.Option(1e-5, "--atol", min=0.0, help="absolute tolerance"),
    rtol: float = typer.Option(1e-3, "--rtol", min=0.0, help="relative tolerance"),
) -> None:
    """Check the configured model's gradients against finite differences.

    Builds the model, loss and data exactly as `nntune train` does and compares autograd's
    gradient of the loss on 8 training samples with central finite differences, in float64,
    per parameter tensor (the model in eval mode; augmentation and regularization are not
    applied). Exit status: 0 when every tensor passes, 1 when the check fails, 2 on bad input.
    """
    with working(f"checking the gradients of {config}", quiet=json_out):
        report = run_gradcheck(config, set_, max_entries=max_entries, eps=eps, atol=atol, rtol=rtol)
    if json_out:
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_table(report)
    if not report.passed:
        raise typer.Exit(1)


def run_gradcheck(config_path: Path, overrides: list[str], **options: Any) -> GradcheckReport:
    """The gradient check of a config's model and loss on its first training samples."""
    import torch

    from nntune.config import load_config
    from nntune.data import prepare_data
    from nntune.diagnose import gradcheck
    from nntune.train.build import (
        as_reconstruction,
        build_parts,
        check_components,
        is_reconstruction,
        resolve_for_data,
    )
    from nntune.train.run import available_cores, seed_everything

    # the same steps as Trainer.fit, up to the built parts
    config = check_components(load_config(config_path, overrides))
    torch.set_num_threads(config.train.threads or available_cores())
    seed_everything(config.seed)
    bundle = prepare_data(config.data, config.seed)
    if is_reconstruction(config):
        bundle = as_reconstruction(bundle)
    config = resolve_for_data(config, bundle)
    # on the CPU whatever train.device says: float64 there is exact and deterministic
    parts = build_parts(config, bundle, torch.device("cpu"))
    x, y = bundle.train_sample(SAMPLES)
    return gradcheck(parts.model, x, y, loss=parts.loss, seed=config.seed, **options)


def _print_table(report: GradcheckReport) -> None:
    """The report's table, aligned, one line per tensor (failing ones in red); lines are never
    wrapped or cut, whatever the terminal's width, so parameter names stay whole."""
    for n, (line, tensor) in enumerate(zip(report.table(), [None, *report.tensors], strict=True)):
        style = "bold" if n == 0 else ("" if tensor is None or tensor.passed else "bold red")
        stdout.print(line, style=style, markup=False)
    stdout.print(report.headline(), style="" if report.passed else "bold red", markup=False)
    for note in report.notes:
        stdout.print(f"note: {note}", markup=False)
    for t in report.failed:
        worst = t.worst or {}
        stdout.print(
            f"{t.name}: {t.failed} of {t.checked} entries off; worst at {worst.get('index')}: "
            f"autograd {worst.get('analytic')!r}, finite differences {worst.get('numeric')!r}",
            markup=False,
        )
