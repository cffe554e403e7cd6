"""``nntune train CONFIG``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from nntune.cli._app import app, stderr, stdout


@app.command("train")
def train_command(
    config: Path = typer.Argument(
        ..., help="YAML config file", metavar="CONFIG", show_default=False
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="override a key: --set optimizer.lr=3e-3 (YAML values)"
    ),
    out: Path | None = typer.Option(None, "--out", help="run folder (default: runs/<name>-<time>)"),
    resume: Path | None = typer.Option(
        None, "--resume", help="continue this interrupted run folder exactly"
    ),
    json_out: bool = typer.Option(False, "--json", help="print summary.json only"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    report: bool = typer.Option(
        True, "--report/--no-report", help="write report.html into the run folder at the end"
    ),
    init_from: Path | None = typer.Option(
        None,
        "--init-from",
        help="start from this run folder's weights (those matching by name and shape); "
        "the same as --set train.init_from=RUN_DIR",
    ),
    nproc: int | None = typer.Option(
        None,
        "--nproc",
        min=1,
        help="train data-parallel in this many local processes (runs torchrun "
        "--standalone --nproc_per_node N -m nntune train ...)",
    ),
) -> None:
    """Train a model from a config and write a run folder (with report.html)."""
    from nntune.train import Trainer
    from nntune.train.distributed import is_main_process

    if out is not None and resume is not None:
        raise typer.BadParameter("give --out or --resume, not both")
    if nproc is not None and nproc > 1:
        raise SystemExit(launch_torchrun(config, nproc, set_, out, resume))
    if init_from is not None:
        set_ = [*set_, f"train.init_from={json.dumps(str(init_from.resolve()))}"]
    if not is_main_process():  # another rank of a torchrun job: rank 0 prints and reports
        quiet, json_out, report = True, False, False
    progress = not (quiet or json_out) and sys.stdout.isatty()
    trainer = Trainer(config, set_, out=out, resume=resume, progress=progress)
    try:
        result = trainer.fit()
    except KeyboardInterrupt:
        if trainer.run_dir is not None:
            stderr.print(
                f"interrupted; continue with: nntune train {config} --resume {trainer.run_dir}",
                markup=False,
            )
        raise
    summary = result.summary
    report_path = None
    if report and result.run_dir is not None:
        from nntune.report import report_after

        report_path = report_after(result.run_dir)
    if json_out:
        print(json.dumps(summary, indent=2))
        return
    if quiet:
        return
    for line in summary_lines(summary):
        stdout.print(line, markup=False)
    if report_path is not None:
        stdout.print(f"report   {report_path}", markup=False)


def launch_torchrun(
    config: Path, nproc: int, overrides: list[str], out: Path | None, resume: Path | None
) -> int:
    """``nntune train --nproc N``: the same command under torchrun, after the checks that
    would otherwise fail in every process at once (bad config, an --out that exists)."""
    import os
    import subprocess

    from nntune.config import load_config
    from nntune.train.build import check_components
    from nntune.train.run import check_distributed, check_world_size
    from nntune.train.rundir import LAST, check_new_run_dir

    check_distributed(check_components(load_config(config, overrides)), nproc)
    if out is not None:
        check_new_run_dir(out)
    if resume is not None and (resume / LAST).exists():
        check_world_size(resume, None, nproc)
    argv = sys.argv[1:]
    at = next(i for i, arg in enumerate(argv) if arg == "--nproc" or arg.startswith("--nproc="))
    rest = argv[:at] + argv[at + (1 if "=" in argv[at] else 2) :]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "nntune",
        *rest,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.call(command, env=env)


def summary_lines(summary: dict) -> list[str]:
    def fmt(metrics: dict | None) -> str:
        if not metrics:
            return "-"
        return "  ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} -" for k, v in metrics.items()
        )

    lines = [
        f"run      {summary['run_dir']}",
        f"status   {summary['status']} after {summary['epochs_run']} epochs "
        f"({summary['seconds']:.1f} s, {summary['steps_per_second'] or 0:.0f} steps/s)",
    ]
    if summary.get("stop_reason"):
        lines.append(f"         {summary['stop_reason']}")
    if summary.get("world_size", 1) > 1:
        lines.append(
            f"ranks    {summary['world_size']} processes, global batch "
            f"{summary['global_batch_size']}"
        )
    lines += [f"val      {fmt(summary.get('val'))}", f"test     {fmt(summary.get('test'))}"]
    init = summary.get("init_from")
    if init is not None:
        skipped = ", ".join(s["tensor"] for s in init["skipped"]) or "none"
        lines.append(
            f"init     {init['loaded']} tensors ({init['loaded_parameters']:,} parameters) from "
            f"{init['source']}; skipped for their shape: {skipped}; new: {len(init['new'])}"
        )
    doctor = summary.get("doctor")
    if doctor is not None:
        if doctor["healthy"]:
            lines.append("doctor   healthy: no problem found")
        for problem in doctor["problems"]:
            lines.append(
                f"doctor   {problem['kind']} ({problem['severity']}); try: "
                f"{'; '.join(problem['remedies']) or '-'}"
            )
    return lines
