"""The layering of DESIGN.md: imports point downward only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "nntune"

# top-level module or package → layer
LAYERS = {
    "errors": 0,
    "records": 0,
    "registry": 0,
    "validation": 0,
    "packages": 0,
    "usercode": 0,
    "padding": 0,
    "config": 1,
    "data": 2,
    "models": 2,
    "optim": 2,
    "losses": 2,
    "metrics": 2,
    "diagnose": 2,
    "train": 3,
    "search": 4,
    "doctor": 4,
    "evaluate": 4,
    "strategies": 4,
    "compress": 4,
    "report": 4,
    "serve": 4,
    "auto": 4,
    "cli": 5,
}
FACADES = {"__init__", "__main__"}  # the package's public face may import any layer


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _top(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported top-level nntune module or third-party package, line) pairs of a file."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


def _nntune_target(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "nntune" and len(parts) > 1 else None


def test_every_module_has_a_layer() -> None:
    tops = {_top(p) for p in _modules()} - FACADES
    assert tops <= set(LAYERS), f"add {tops - set(LAYERS)} to LAYERS in this test and DESIGN.md"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_downward(path: Path) -> None:
    source = _top(path)
    if source in FACADES:
        return
    for name, line in _imports(path):
        target = _nntune_target(name)
        if target is None or target == source:
            continue
        assert target != "cli", f"{path}:{line} imports cli; nothing may"
        # same-layer imports: the foundations (errors ← registry) and the layer-4 features
        # (a report may read a study) may use each other; layer 2 parts stay independent
        assert LAYERS[target] < LAYERS[source] or (
            LAYERS[target] == LAYERS[source] and LAYERS[source] in (0, 4)
        ), (
            f"{path}:{line} (layer {LAYERS[source]}) imports nntune.{target} "
            f"(layer {LAYERS[target]})"
        )
        if LAYERS[source] == 2:
            assert LAYERS[target] < 2, f"{path}:{line}: layer-2 modules do not import each other"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_heavy_or_framework_imports_stay_in_their_layer(path: Path) -> None:
    source = _top(path)
    for name, line in _imports(path):
        root = name.split(".")[0]
        if root == "torch":
            assert source != "config", f"{path}:{line}: config knows no torch"
        if root in ("typer", "click"):
            assert source == "cli", f"{path}:{line}: only cli imports the CLI framework"
        if root == "optuna":
            assert source == "search", f"{path}:{line}: only search imports optuna"
        if root in ("fastapi", "starlette", "uvicorn"):
            assert source == "serve", f"{path}:{line}: only serve imports the web framework"
        if root in ("matplotlib", "plotly"):
            assert source == "report", f"{path}:{line}: only report imports plotting libraries"
        if root in ("tensorboard", "mlflow") or name.startswith("torch.utils.tensorboard"):
            assert path.name == "tracking.py" or source == "report", (
                f"{path}:{line}: only the tracking callback (and report) import the trackers"
            )
