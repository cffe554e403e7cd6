"""Running the real ``nntune`` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml


def nntune(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m nntune ARGS`` in ``cwd``; returns the finished process (never raises on rc)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "nntune", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def nntune_in_process(capsys: object, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The same command run in this process (much faster than a new interpreter): for the many
    bad-input cases. ``capsys`` is pytest's fixture."""
    from nntune.cli import main

    previous = Path.cwd()
    os.chdir(cwd)
    try:
        try:
            main(list(args))
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
    finally:
        os.chdir(previous)
    out, err = capsys.readouterr()  # type: ignore[attr-defined]
    return subprocess.CompletedProcess(["nntune", *args], code, out, err)
