"""``nntune compress RUN_DIR`` and ``nntune export RUN_DIR``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from nntune.cli._app import app, fail, progress_printer, stdout, trust_code_option, working


@app.command("compress")
def compress_command(
    run_dir: Path = typer.Argument(..., help="run folder", metavar="RUN_DIR", show_default=False),
    prune: float | None = typer.Option(
        None, "--prune", help="fraction of weights to prune by magnitude, e.g. 0.5"
    ),
    structured: bool = typer.Option(
        False, "--structured", help="prune whole output channels/units (L2 norm) per layer"
    ),
    quantize: str | None = typer.Option(
        None,
        "--quantize",
        help="dynamic: int8 weights of linear/recurrent layers; static: int8 weights and "
        "activations of every supported layer, calibrated on training samples",
    ),
    calibration: int = typer.Option(
        512, "--calibration", help="training samples that calibrate --quantize static"
    ),
    finetune: int = typer.Option(
        0, "--finetune", help="epochs of the run's own recipe after pruning, masks held"
    ),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    out: Path | None = typer.Option(
        None, "--out", help="folder for the compressed run (default: RUN_DIR/compressed)"
    ),
    json_out: bool = typer.Option(False, "--json", help="print compress.json only"),
    trust_code: bool = trust_code_option(),
    quiet: bool = typer.Option(False, "--quiet", help="no line per step"),
) -> None:
    """Prune (and fine-tune), quantize a run's model; a before/after table of test metric,
    parameters, size and latency. The result is a run folder that evaluate, export and
    load_run read like any other."""
    from nntune.compress import compress_run

    result = compress_run(
        run_dir,
        prune_amount=prune,
        structured=structured,
        quantize=quantize,
        finetune=finetune,
        checkpoint=checkpoint,
        out=out,
        progress=progress_printer(quiet or json_out),
        trust_code=trust_code,
        calibration=calibration,
    )
    from nntune.report import report_after

    report = report_after(result["out"])
    if json_out:
        print(json.dumps(result, indent=2))
        return
    stdout.print(steps_table(result))
    stdout.print(f"compressed run: {result['out']}", markup=False)
    if report is not None:
        stdout.print(f"report: {report}", markup=False)


def _cell(value: Any) -> Text:
    if isinstance(value, float):
        return Text(f"{value:.4g}")
    if isinstance(value, int):
        return Text(f"{value:,}")
    return Text(str(value))


def steps_table(result: dict[str, Any]) -> Table:
    steps = result["steps"]
    columns = [k for k in steps[0] if k != "step"]
    table = Table(title=Text(f"{result['run']} on its test split ({result['n_test']} samples)"))
    table.add_column("step")
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for step in steps:
        table.add_row(Text(step["step"]), *(_cell(step[c]) for c in columns))
    return table


@app.command("export")
def export_command(
    run_dir: Path = typer.Argument(..., help="run folder", metavar="RUN_DIR", show_default=False),
    format: str = typer.Option(..., "--format", help="onnx | torchscript"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="file to write (default: RUN_DIR/export/model.onnx or model.torchscript.pt)",
    ),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON only"),
    trust_code: bool = trust_code_option(),
) -> None:
    """Export a run's model to ONNX or TorchScript and verify the file: run it (onnxruntime
    for ONNX) on the test split and match nntune's predictions (classes exactly,
    probabilities within 1e-4). The model takes preprocessed features."""
    from nntune.compress.export import ExportError, export_run

    try:
        with working(f"exporting {run_dir} to {format}", quiet=json_out):
            result = export_run(
                run_dir, format, checkpoint=checkpoint, out=out, trust_code=trust_code
            )
    except ExportError as err:  # not made, or made but wrong: exit 1, not 2
        fail(str(err))
        raise typer.Exit(1) from None
    if json_out:
        print(json.dumps(result, indent=2))
        return
    verified = result["verified"]
    stdout.print(f"exported {result['path']} ({result['bytes']:,} bytes)", markup=False)
    stdout.print(
        f"verified on {verified['n']} {verified['split']} samples: {verified['summary']}",
        markup=False,
    )
