"""The ``nntune`` command: one thin command per verb (parse, call one function, print)."""

from __future__ import annotations

import sys

from nntune.cli._app import app, run_command


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``nntune`` script and of ``python -m nntune``."""
    # importing the verbs registers them on the app
    from nntune.cli import (  # noqa: F401
        _ablate,
        _auto,
        _compare,
        _compress,
        _cv,
        _doctor,
        _ensemble,
        _evaluate,
        _gradcheck,
        _list,
        _lr_find,
        _report,
        _schema,
        _serve,
        _train,
        _tune,
    )

    code = run_command(app, argv if argv is not None else sys.argv[1:])
    raise SystemExit(code)


__all__ = ["app", "main"]
