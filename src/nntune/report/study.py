"""The report of a study folder (``nntune tune``): the outcome, the trials, Optuna's plots.

The plots are Optuna's own (``optuna.visualization``, plotly figures, built by
:func:`nntune.search.tune.study_figures`); plotly.js is inlined once, so the page opens offline.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

from nntune.errors import RunFolderError
from nntune.report.page import Page, esc, fmt, link
from nntune.report.run import REPORT, read_json
from nntune.train.checkpoint import write_text_atomic


def is_study_folder(folder: Path) -> bool:
    if not (folder / "summary.json").is_file():
        return False
    try:
        return "study" in read_json(folder / "summary.json")
    except RunFolderError:
        return False


def study_report(folder: Path) -> Page:
    if not is_study_folder(folder):
        raise RunFolderError(f"'{folder}' is not a study folder (no summary.json of a study)")
    summary = read_json(folder / "summary.json")
    name = str(summary["study"])
    objectives = summary.get("objectives") or [summary.get("metric")]
    page = Page(
        f"Study {name}",
        f"{folder.resolve()} · objectives {', '.join(map(str, objectives))} "
        f"({', '.join(summary.get('directions') or [])}) · sampler {summary.get('sampler')}, "
        f"pruner {summary.get('pruner')}",
    )
    page.cards(
        [
            ("best value", summary.get("best_value")),
            ("best trial", summary.get("best_trial")),
            ("trials", summary.get("n_trials")),
            ("complete", summary.get("n_complete")),
            ("pruned", summary.get("n_pruned")),
            ("failed", summary.get("n_failed")),
            ("seconds", summary.get("seconds")),
        ]
    )
    if summary.get("best_config"):
        best = Path(str(summary["best_config"]))
        page.raw(
            f"<p>Best config: {link(_relative(best, folder), best.name)} "
            f"(<code>nntune train {esc(best)}</code> trains it again).</p>"
        )
    if summary.get("best_params"):
        page.heading("Best parameters")
        page.table(["parameter", "value"], sorted(summary["best_params"].items()), left=2)
    retrain = summary.get("retrain")
    if retrain:
        page.heading("Best config retrained on fresh seeds (test split)")
        page.table(
            ["metric", "mean", "std", "values"],
            [
                (k, v["mean"], v["std"], " ".join(fmt(x) for x in v["values"]))
                for k, v in retrain.items()
            ],
        )
    if summary.get("importances"):
        page.heading("Parameter importances")
        page.table(["parameter", "importance"], list(summary["importances"].items()))
    if summary.get("pareto_front"):
        page.heading("Pareto front")
        page.table(
            ["trial", *objectives, "parameters"],
            [
                (p["trial"], *(p["values"].get(o) for o in objectives), _params(p["params"]))
                for p in summary["pareto_front"]
            ],
            left=0,
        )
    if summary.get("failures"):
        page.heading("Failed trials")
        page.table(
            ["trial", "reason"], [(f["trial"], f["reason"]) for f in summary["failures"]], left=2
        )
    _plots(page, folder, summary)
    _trials(page, folder)
    return page


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in params.items())


def _relative(path: Path, folder: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), folder.resolve())
    except ValueError:  # another drive (Windows)
        return str(path)


def _plots(page: Page, folder: Path, summary: dict[str, Any]) -> None:
    from nntune.search.tune import study_figures

    try:
        figures = study_figures(folder, summary)
    except Exception as err:  # a storage that is gone or unreachable: the rest still reports
        page.heading("Plots")
        page.text(f"Optuna's plots are not available: {err}", "muted")
        return
    if not figures:
        page.heading("Plots")
        page.text("No trial has finished yet.", "muted")
    first = True
    for title, figure in figures:
        page.heading(title)
        figure.update_layout(margin={"l": 60, "r": 30, "t": 40, "b": 50})
        markup = figure.to_html(
            full_html=False, include_plotlyjs=first, config={"responsive": True}
        )
        page.raw(f"<div class='plotly-figure'>{markup}</div>")
        first = False


def _trials(page: Page, folder: Path) -> None:
    import pandas as pd

    path = folder / "trials.csv"
    if not path.exists():
        return
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return
    if frame.empty:
        return
    page.heading("Trials")
    values = [c for c in frame.columns if c == "value" or c.startswith("values_")]
    params = [c for c in frame.columns if c.startswith("params_")]
    headers = ["trial", "state", *values, "seconds", *(c.removeprefix("params_") for c in params)]
    rows = []
    for _, trial in frame.iterrows():
        run_dir = trial.get("user_attrs_run_dir")
        number = int(trial["number"])
        shown: Any = number
        if isinstance(run_dir, str) and run_dir:
            target = Path(run_dir)
            report = target / REPORT
            href = _relative(report if report.exists() else target, folder)
            shown = (link(href, str(number)), number)
        duration = trial.get("duration")
        seconds = pd.to_timedelta(duration).total_seconds() if isinstance(duration, str) else None
        row = [shown, trial.get("state"), *(_cell(trial[c]) for c in values), seconds]
        row += [_cell(trial[c]) for c in params]
        rows.append(row)
    page.table(headers, rows, sortable=True, left=2)


def _cell(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def write_study_report(folder: str | Path) -> Path:
    """Write ``report.html`` (and the same page as ``study.html``) into a study folder."""
    folder = Path(folder)
    path = folder / REPORT
    write_text_atomic(path, study_report(folder).html())
    shutil.copyfile(path, folder / "study.html")
    return path
