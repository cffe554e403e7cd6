"""The typer app and the one place where errors become exit statuses.

Exit status: 0 done; 2 bad input (config, data, arguments, run folders), with one paragraph on
stderr and no traceback; 1 anything else (with the traceback, it is a bug); 130 interrupted.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import typer
from rich.console import Console

from nntune.errors import NntuneError

app = typer.Typer(
    name="nntune",
    help="Train neural networks well: every tuning trick as one line of config.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

stderr = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)


TRUST_CODE_HELP = (
    "import the user code the run folder names (models.py:Net...), from the folder's own code/ "
    "copies; without it such a run is refused: a run folder may come from someone else"
)


def process_started() -> float | None:
    """When this process started (seconds since the epoch), or None where the OS does not say:
    a command's wall-clock budget (``tune --timeout``) then includes the seconds spent importing
    torch and the rest, which a user's stopwatch counts too. Linux's /proc only: psutil, which
    would read it everywhere, is not a dependency for this one number."""
    try:
        with open("/proc/self/stat") as stat:
            # the 22nd field, after the parenthesized command name: clock ticks since boot
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith("btime "))
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    # btime has whole-second resolution: never a start in the future or before an hour ago
    now = time.time()
    return started if now - 3600 < started <= now else None


def trust_code_option() -> bool:
    """``--trust-code`` of the commands that load run folders."""
    flag: bool = typer.Option(False, "--trust-code", help=TRUST_CODE_HELP)
    return flag


def progress_printer(quiet: bool = False) -> Callable[[str], None] | None:
    """Progress lines for long commands, on stderr (stdout carries only the result); None when
    ``quiet``."""
    if quiet:
        return None

    def progress(line: str) -> None:
        stderr.print(line, markup=False)

    return progress


def working(message: str, quiet: bool = False) -> AbstractContextManager[object]:
    """A live spinner with ``message`` on stderr while a command of a few seconds without
    steps of its own runs (evaluate, lr-find, gradcheck); nothing when stderr is not a
    terminal, or when ``quiet`` (--json)."""
    if quiet or not stderr.is_terminal:
        return nullcontext()
    return stderr.status(message)


def fail(message: str) -> None:
    stderr.print(f"error: {message}", markup=False)


def run_command(application: typer.Typer, argv: list[str]) -> int:
    """Run the app; map errors to exit statuses (click's own usage errors exit with 2)."""
    try:
        application(args=argv, prog_name="nntune")
    except NntuneError as err:
        fail(str(err))
        return 2
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except KeyboardInterrupt:
        stderr.print("interrupted", markup=False)
        return 130
    except BrokenPipeError:
        return 0
    except Exception:
        traceback.print_exc()
        return 1
    return 0
