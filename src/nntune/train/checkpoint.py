"""Checkpoint and run-folder files: written atomically, read without executing anything."""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nntune.errors import RunFolderError

FORMAT = "nntune-checkpoint"
VERSION = 1


def clone_tree(tree: Any) -> Any:
    """A copy of a state tree (dicts, lists, tuples of tensors and plain values) with every
    tensor cloned: several times faster than copy.deepcopy on state dicts."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, dict):
        return {key: clone_tree(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(clone_tree(value) for value in tree)
    return copy.deepcopy(tree)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary name in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint of plain tensors and containers; anything else is refused, not run."""
    if not path.exists():
        raise RunFolderError(f"checkpoint '{path}' not found")
    try:
        with warnings.catch_warnings():
            # quantized tensors (nntune compress) are rebuilt through the TypedStorage API
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise RunFolderError(
            f"checkpoint '{path}' holds objects that are not plain tensors and containers; "
            f"refusing to load it (it could run code). {first}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise RunFolderError(f"checkpoint '{path}' is corrupt or truncated: {err}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RunFolderError(f"checkpoint '{path}' is not an nntune checkpoint")
    return payload


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(f"'{path}' not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunFolderError(f"'{path}' is not valid JSON: {err}") from None


def same_state(a: Any, b: Any) -> bool:
    """Equality of two saved states, e.g. fitted preprocessing (tensors compared to float32
    precision)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        ta, tb = torch.as_tensor(a), torch.as_tensor(b)
        if ta.shape != tb.shape:
            return False
        if not (ta.is_floating_point() or tb.is_floating_point()):
            return bool(torch.equal(ta, tb))
        return bool(torch.allclose(ta.double(), tb.double(), rtol=1e-5, atol=1e-7, equal_nan=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return bool(a == b)
