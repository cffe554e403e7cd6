"""Reports: self-contained HTML pages of run folders, studies, comparisons, ablations, doctor
runs, and an index of a runs root. They read folders; they never train.

- :func:`write_report` (``nntune report PATH``): the right report for what ``PATH`` holds,
  written to ``PATH/report.html``.
- :func:`save_result`: a command's JSON result and its report, into a folder of its own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nntune.errors import ConfigError, RunFolderError
from nntune.report.run import REPORT, write_run_report
from nntune.report.study import write_study_report
from nntune.train.checkpoint import write_json_atomic, write_text_atomic


def write_report(
    path: str | Path,
    *,
    evaluate: bool = True,
    progress: Callable[[str], None] | None = None,
    trust_code: bool = False,
) -> Path:
    """(Re)build ``report.html`` in ``path``: a run folder, a study folder, a compare/ablate/
    doctor folder, or a runs root (an index of every such folder in it, building the reports
    they lack). ``evaluate=False`` leaves the test-split evaluation out of a run report;
    ``trust_code`` lets it import the user code a run names (from the run's own copies).
    Returns the report's path; :class:`~nntune.errors.RunFolderError` when ``path`` is none of
    these."""
    from nntune.report.index import folder_kind, runs_index
    from nntune.report.results import PAGES
    from nntune.report.run import read_json

    folder = Path(path)
    if not folder.is_dir():
        raise RunFolderError(f"'{folder}' does not exist or is not a folder")
    kind = folder_kind(folder)
    if kind == "run":
        return write_run_report(folder, evaluate=evaluate, trust_code=trust_code)
    if kind == "study":
        return write_study_report(folder)
    target = folder / REPORT
    if kind is not None:
        name = f"{kind}.json"
        page = PAGES[name](read_json(folder / name), folder)
    else:
        has_any = any(p.is_dir() and folder_kind(p) for p in folder.iterdir())
        if not has_any:
            raise RunFolderError(
                f"'{folder}' is not a run, study, compare, ablate or doctor folder, and holds "
                "none: give a run folder, a study folder or a runs root such as runs/"
            )
        page = runs_index(folder, progress=progress, trust_code=trust_code)
    write_text_atomic(target, page.html())
    return target


def report_after(path: str | Path) -> Path | None:
    """``write_report`` at the end of a command whose results are already on disk: a report
    that fails must not turn a finished training or search into an error, so a failure is a
    warning on stderr (with how to rebuild it) and None. The command ran the user's own config,
    so the user code its runs name is trusted."""
    try:
        return write_report(path, trust_code=True)
    except Exception as err:  # any failure of the page: the results stand without it
        print(
            f"warning: report.html was not written in {path} ({type(err).__name__}: {err}); "
            f"the results are there; rebuild it with: nntune report {path}",
            file=sys.stderr,
        )
        return None


def result_folder(out: Path | None, name: str, runs_root: Path = Path("runs")) -> Path:
    """The folder a command's result goes to, checked before anything runs so that no earlier
    result is overwritten: ``out`` (new or empty), or a new ``runs_root/<name>-<time>``
    (created now, with a numeric suffix when two commands start in the same second)."""
    from nntune.train.rundir import new_run_dir

    if out is None:
        return new_run_dir(name, None, runs_root)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out}: exists and is not empty; choose a new folder")
    return out


def save_result(kind: str, result: dict[str, Any], folder: Path) -> Path | None:
    """Write a command's result as ``<kind>.json`` (compare, ablate, doctor) into ``folder``
    and its report beside it; returns the report's path (None: see :func:`report_after`)."""
    if kind not in ("compare", "ablate", "doctor", "compress"):
        raise ConfigError(f"no report for '{kind}'; allowed: compare, ablate, doctor, compress")
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / f"{kind}.json", result)
    return report_after(folder)


__all__ = [
    "REPORT",
    "report_after",
    "result_folder",
    "save_result",
    "write_report",
    "write_run_report",
    "write_study_report",
]
