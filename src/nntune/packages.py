"""Packages that a feature needs beyond the ones every command uses.

nntune's core dependencies cover every default command. An opt-in integration (a tracker in
``train.log_to``, a PostgreSQL study storage) needs a package of its own, installed with an
extra; without it, the command stops before anything runs with one sentence that names the key
or flag asking for the feature and the exact ``pip install`` line (exit status 2), never an
ImportError's traceback. Core packages are checked the same way, since a user may install with
``--no-deps`` or break an environment by hand.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from nntune.errors import ConfigError


class MissingPackageError(ConfigError):
    """A feature asked for by a key or flag needs a package that is not installed."""


@dataclass(frozen=True)
class Package:
    module: str  # what is imported
    distribution: str  # what pip installs
    extra: str | None = None  # the nntune extra that holds it (None: a core dependency)

    def install_line(self) -> str:
        if self.extra is None:
            return f"pip install {self.distribution}"
        return f"pip install 'nntune[{self.extra}]' (or pip install {self.distribution})"


# every package imported only by the feature that needs it
PACKAGES = {
    p.module: p
    for p in (
        Package("torch.utils.tensorboard", "tensorboard", "track"),
        Package("mlflow", "mlflow-skinny", "track"),
        Package("psycopg2", "psycopg2-binary", "postgres"),
        Package("onnx", "onnx"),
        Package("onnxscript", "onnxscript"),
        Package("onnxruntime", "onnxruntime"),
    )
}


def require(module: str, asked_by: str, otherwise: str | None = None) -> ModuleType:
    """Import ``module`` (a key of PACKAGES) for the feature that ``asked_by`` names (a config
    key with its value, or a flag); :class:`MissingPackageError` when it cannot be imported,
    ending with ``otherwise`` (what the user can do instead) when given."""
    package = PACKAGES[module]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        instead = f", or {otherwise}" if otherwise else ""
        raise MissingPackageError(
            f"{asked_by} needs the '{package.distribution}' package, which cannot be imported "
            f"({err}); install it with {package.install_line()}{instead}"
        ) from None
