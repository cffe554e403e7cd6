"""``nntune report PATH``."""

from __future__ import annotations

from pathlib import Path

import typer

from nntune.cli._app import app, progress_printer, stdout, trust_code_option, working


@app.command("report")
def report_command(
    path: Path = typer.Argument(
        ...,
        help="a run folder, a study folder, a compare/ablate/doctor folder, or a runs root",
        metavar="RUN_DIR|STUDY_DIR|RUNS_ROOT",
        show_default=False,
    ),
    evaluate: bool = typer.Option(
        True,
        "--evaluate/--no-evaluate",
        help="run reports: score the best checkpoint on the test split (confusion matrix, ROC)",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="no line per report built"),
    trust_code: bool = trust_code_option(),
) -> None:
    """(Re)build report.html: a self-contained page that opens offline in a browser. A runs
    root (runs/) gets an index of every run, study, comparison, ablation and doctor folder in
    it, with a report built for each folder that has none."""
    from nntune.report import write_report

    with working(f"writing the report of {path}", quiet=quiet):
        written = write_report(
            path, evaluate=evaluate, progress=progress_printer(quiet), trust_code=trust_code
        )
    stdout.print(str(written), markup=False)
