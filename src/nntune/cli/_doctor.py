"""``nntune doctor CONFIG``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from nntune.cli._app import app, progress_printer, stdout


@app.command("doctor")
def doctor_command(
    config: Path = typer.Argument(
        ..., help="YAML config file", metavar="CONFIG", show_default=False
    ),
    set_: list[str] = typer.Option([], "--set", help="override a key (YAML values)"),
    repair: bool = typer.Option(
        False, "--repair", help="try the remedies; keep only verified ones; write repaired.yaml"
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", help="probe budget in epochs (default: the config's own)"
    ),
    seeds: int = typer.Option(2, "--seeds", help="seeds per run when verifying a repair"),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="folder for doctor.json and repaired.yaml (default: runs/<name>-doctor-<time>)",
    ),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON only"),
) -> None:
    """Probe training, report problems with evidence and remedies; --repair verifies fixes."""
    from nntune.doctor.doctor import doctor

    report = doctor(
        config,
        set_,
        epochs=epochs,
        repair=repair,
        seeds=seeds,
        out=out,
        progress=progress_printer(),
    )
    if json_out:
        print(json.dumps(report, indent=2))
        return
    for line in report_lines(report):
        stdout.print(line, markup=False)


def report_lines(report: dict) -> list[str]:
    probe = report.get("probe", {})
    score = report.get("score", {})
    lines = [
        f"probe    {probe.get('epochs')} epochs, {probe.get('seconds', 0):.1f} s "
        f"(probe overhead {probe.get('overhead_percent')} %); {score.get('metric')} "
        f"{score.get('value')}",
    ]
    if report["healthy"]:
        lines.append("healthy  no problem found")
    for problem in report["problems"]:
        evidence = ", ".join(f"{k} {v}" for k, v in problem["evidence"].items())
        caused = problem.get("consequence_of")
        because = f"; a consequence of {', '.join(caused)}" if caused else ""
        lines.append(f"problem  {problem['kind']} ({problem['severity']}{because}): {evidence}")
        if problem["remedies"]:
            lines.append(f"         remedies: {'; '.join(problem['remedies'])}")
    repair = report.get("repair")
    if repair is not None:
        for step in repair["tried"]:
            if "skipped" in step or "error" in step:
                why = step.get("skipped") or step.get("error")
                lines.append(f"skipped  {step['kind']}: {step['remedy']}: {why}")
                continue
            verdict = "kept" if step.get("kept") else "rejected"
            trivial = "" if step.get("beats_trivial", True) else ", no better than a trivial model"
            lines.append(
                f"tried    {step['kind']}: {step['remedy']} → {verdict} "
                f"(before {step.get('before')}, after {step.get('after')}, "
                f"problem gone: {step.get('problem_gone')}{trivial})"
            )
        if repair["config"]:
            lines.append(f"repaired {repair['before']} → {repair['after']}: {repair['config']}")
        else:
            lines.append("repaired nothing verified; the config is unchanged")
        lines.append(f"trivial  {repair['trivial']} (the majority class / the mean, predicted)")
    lines.append(f"result   {report['folder']}/doctor.json")
    lines.append(f"report   {report['folder']}/report.html")
    return lines
