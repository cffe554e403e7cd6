"""Errors a user can act on.

Every mistake a user can make (a bad config key, a missing file, a corrupt run folder) raises a
subclass of :class:`NntuneError` whose message names the key or file, the bad value and what is
allowed. The CLI turns these into exit status 2 and one paragraph, without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NntuneError(Exception):
    """Base class of all errors caused by user input."""


class ConfigError(NntuneError):
    """A config key, value or component name is wrong."""


class DataError(NntuneError):
    """A dataset, data file or split cannot be used as asked."""


class TrainingError(NntuneError):
    """Training cannot go on (for example: the loss keeps being non-finite)."""


class RunFolderError(NntuneError):
    """A run folder is missing, corrupt, or would be overwritten."""


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name``, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return matches[0] if matches else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """A ' did you mean X?' suffix for an error message, or ''."""
    match = closest(name, known)
    return f"; did you mean '{match}'?" if match else ""
