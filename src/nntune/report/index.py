"""The index of a runs root (``runs/``): one sortable row per run, study, comparison, ablation
and doctor folder, linking to its report."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nntune.errors import NntuneError, RunFolderError
from nntune.report.page import Page, esc, fmt, link
from nntune.report.results import RESULT_FILES
from nntune.report.run import REPORT, is_run_folder, read_json
from nntune.report.study import is_study_folder


def folder_kind(folder: Path) -> str | None:
    """``run``, ``study``, ``compare``, ``ablate``, ``doctor`` or None (not a report's folder)."""
    if is_study_folder(folder):
        return "study"
    if is_run_folder(folder):
        return "run"
    for name in RESULT_FILES:
        if (folder / name).is_file():
            return name.removesuffix(".json")
    return None


def _headline(kind: str, folder: Path) -> tuple[str, Any, Any, Any]:
    """(what, value, seconds, parameters) of an index row."""
    try:
        if kind == "run":
            path = folder / "summary.json"
            summary = read_json(path) if path.exists() else {}
            for split in ("test", "val"):
                metrics = summary.get(split) or {}
                for key in ("accuracy", "rmse"):
                    if metrics.get(key) is not None:
                        return (
                            f"{split} {key}",
                            metrics[key],
                            summary.get("seconds"),
                            summary.get("parameters"),
                        )
            return "", None, summary.get("seconds"), summary.get("parameters")
        if kind == "study":
            summary = read_json(folder / "summary.json")
            return (
                f"best {summary.get('metric') or 'value'}",
                summary.get("best_value"),
                summary.get("seconds"),
                None,
            )
        result = read_json(folder / f"{kind}.json")
    except RunFolderError:
        return "unreadable", None, None, None
    if kind == "compare":
        return f"{result.get('metric')}: {result.get('verdict')}", None, result.get("seconds"), None
    if kind == "compress":
        last = (result.get("steps") or [{}])[-1]
        metric = next((k for k in last if k.startswith("test_")), None)
        return (
            str(last.get("step", "")),
            last.get(metric) if metric else None,
            result.get("seconds"),
            last.get("parameters"),
        )
    if kind == "ablate":
        full = result.get("full") or {}
        return f"full {result.get('metric')}", full.get("mean"), result.get("seconds"), None
    score = result.get("score") or {}
    problems = ", ".join(p.get("kind", "?") for p in result.get("problems") or []) or "healthy"
    return problems, score.get("value"), result.get("seconds"), None


def runs_index(
    root: Path,
    *,
    build: bool = True,
    progress: Callable[[str], None] | None = None,
    trust_code: bool = False,
) -> Page:
    """The index page of ``root``. With ``build``, a folder without report.html gets one first,
    so every link leads to a report."""
    from nntune.report import write_report

    if not root.is_dir():
        raise RunFolderError(f"'{root}' is not a folder")
    entries = [(p, folder_kind(p)) for p in sorted(root.iterdir()) if p.is_dir()]
    found = [(p, kind) for p, kind in entries if kind is not None]
    page = Page(f"Runs in {root}", f"{root.resolve()} · {len(found)} folders")
    if not found:
        page.text("No run, study, comparison, ablation or doctor folder here yet.", "muted")
        return page
    rows = []
    for folder, kind in found:
        assert kind is not None
        report = folder / REPORT
        note = ""
        if build and not report.exists():
            if progress is not None:
                progress(f"report: {folder}")
            try:
                write_report(folder, trust_code=trust_code)
            except NntuneError as err:
                note = f" (no report: {err})"
        target = f"{folder.name}/{REPORT}" if report.exists() else f"{folder.name}/"
        what, value, seconds, parameters = _headline(kind, folder)
        modified = time.strftime("%Y-%m-%d %H:%M", time.localtime(folder.stat().st_mtime))
        rows.append(
            [
                (link(target, folder.name) + esc(note), folder.name),
                kind,
                modified,
                what,
                (esc(fmt(value)), "" if value is None else value),
                seconds,
                parameters,
            ]
        )
    page.text("Click a column's header to sort by it.", "muted")
    page.table(
        ["folder", "kind", "modified", "measure", "value", "seconds", "parameters"],
        rows,
        sortable=True,
        left=4,
    )
    return page
