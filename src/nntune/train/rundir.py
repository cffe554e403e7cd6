"""Run folders: where they go, how they are named, and never overwriting one."""

from __future__ import annotations

import re
import time
from pathlib import Path

from nntune.errors import RunFolderError

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
LAST = Path("checkpoints") / "last.pt"
BEST = Path("checkpoints") / "best.pt"


def safe_name(name: str) -> str:
    """A run name usable as a folder name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    return cleaned or "run"


def check_new_run_dir(out: Path) -> None:
    """``out`` can become a new run folder: it does not exist, or is an empty folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunFolderError(
            f"--out '{out}' already exists and is not an empty folder; nothing was "
            "written. Pick another folder, or continue that run with --resume"
        )


def new_run_dir(name: str, out: Path | None, root: Path) -> Path:
    """Create the run folder: ``out`` as given (must be new or empty), else
    ``root/<name>-<YYYYmmdd-HHMMSS>`` with a numeric suffix if that exists already."""
    if out is not None:
        check_new_run_dir(out)
        out.mkdir(parents=True, exist_ok=True)
        return out
    root.mkdir(parents=True, exist_ok=True)
    stem = f"{safe_name(name)}-{time.strftime('%Y%m%d-%H%M%S')}"
    for attempt in range(1, 1000):
        candidate = root / (stem if attempt == 1 else f"{stem}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RunFolderError(f"cannot create a new run folder under '{root}'")


def existing_run_dir(path: Path) -> Path:
    """A run folder to resume/evaluate: it must exist and hold config.yaml."""
    if not path.exists():
        raise RunFolderError(f"run folder '{path}' not found")
    if not path.is_dir():
        raise RunFolderError(f"'{path}' is not a run folder (not a folder)")
    if not (path / CONFIG).exists():
        raise RunFolderError(f"'{path}' is not a run folder: it has no {CONFIG}")
    return path
