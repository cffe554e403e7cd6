"""Transfer learning: weights from another run folder (``train.init_from``) and frozen
parameters (``train.freeze``, optionally until an epoch).

Weights are matched by name and shape: a tensor of the source whose name and shape the new
model has is copied; the rest are reported (skipped for another shape, new in this model,
unused from the source), so fine-tuning a classifier with another number of classes keeps its
body and starts a fresh head.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nntune.errors import ConfigError
from nntune.optim.groups import no_match, select
from nntune.train.callbacks.base import Callback, TrainState
from nntune.train.callbacks.checkpoints import model_weights
from nntune.train.checkpoint import load_checkpoint
from nntune.train.rundir import existing_run_dir


def load_matching_weights(model: nn.Module, source: str | Path) -> dict[str, Any]:
    """Copy into ``model`` the matching weights of the source run folder's best (else last)
    checkpoint, or of a plain weights file (:func:`read_weights_file`), by
    :func:`load_matching`; returns the report that summary.json keeps as ``init_from``."""
    if Path(source).is_file():
        weights = read_weights_file(Path(source))
        report = load_matching(model, weights, f"train.init_from '{source}'")
        return {"source": str(source), "checkpoint": Path(source).name, **report}
    folder = existing_run_dir(Path(source))
    path = folder / "checkpoints" / "best.pt"
    if not path.exists():
        path = folder / "checkpoints" / "last.pt"
    report = load_matching(
        model, model_weights(load_checkpoint(path)), f"train.init_from '{source}'"
    )
    return {"source": str(folder), "checkpoint": path.name, **report}


# a source tensor may also match under this prefix: an autoencoder's encoder is an mlp body
PREFIXES = ("", "encoder.")
# an image run's model is its arch under ``net.`` behind its input normalization (``input.``,
# which belongs to this run's data and is never taken from a source)
IMAGE_NET, IMAGE_INPUT = "net.", "input."


def read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors by name from a plain weights file: a PyTorch state_dict (``.pt``, ``.pth``,
    ``.bin``; read with ``weights_only``, so no pickled code runs; a dict holding it under
    ``state_dict`` or ``model`` is taken too) or ``.safetensors``."""
    what = f"train.init_from '{path}'"
    if path.suffix.lower() == ".safetensors":
        return read_safetensors(path, what)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle's and torch's errors for a file that is not plain tensors
        raise ConfigError(
            f"{what}: cannot be read as a PyTorch state_dict of plain tensors ({err}); give a "
            ".pt/.pth file of a state_dict, a .safetensors file, or a run folder"
        ) from None
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not any(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise ConfigError(f"{what}: holds no tensors by name (a state_dict is expected)")
    return {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}


# the safetensors format (an 8-byte little-endian header size, a JSON header of dtype, shape
# and byte offsets per tensor, then the raw bytes): small enough to read here rather than add
# the safetensors package for it
SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip


def read_safetensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    import json
    import struct

    data = path.read_bytes()
    try:
        (size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + size])
        body = memoryview(data)[8 + size :]
        tensors = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            dtype = SAFETENSORS_DTYPES[info["dtype"]]
            flat = (
                torch.frombuffer(bytearray(body[start:end]), dtype=dtype)
                if end > start
                else (torch.empty(0, dtype=dtype))
            )
            tensors[name] = flat.reshape(info["shape"])
    except (struct.error, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise ConfigError(f"{what}: not a readable .safetensors file ({err})") from None
    if not tensors:
        raise ConfigError(f"{what}: holds no tensors")
    return tensors


def load_matching(
    model: nn.Module, weights: Mapping[str, Any], what: str = "the source"
) -> dict[str, Any]:
    """Copy into ``model`` every module's tensors from ``weights`` when their names (also
    under an ``encoder.`` prefix) and shapes all match; the rest is reported, not guessed."""
    own = model.state_dict()
    matched: dict[str, torch.Tensor] = {}
    skipped: list[dict[str, Any]] = []
    used: set[str] = set()
    for key, mine in own.items():
        if key.startswith(IMAGE_INPUT):
            continue  # this run's own input normalization
        names = [key] + ([key.removeprefix(IMAGE_NET)] if key.startswith(IMAGE_NET) else [])
        found = next(
            (
                p + name
                for name in names
                for p in PREFIXES
                if isinstance(weights.get(p + name), torch.Tensor)
            ),
            None,
        )
        if found is None:
            continue
        value = weights[found]
        used.add(found)
        if value.shape != mine.shape:
            skipped.append(
                {"tensor": key, "source_shape": list(value.shape), "shape": list(mine.shape)}
            )
            continue
        matched[key] = value.to(dtype=mine.dtype)
    # a module is taken whole or not at all: a bias without its weight means nothing
    broken = {s["tensor"].rsplit(".", 1)[0] for s in skipped}
    for key in [k for k in matched if k.rsplit(".", 1)[0] in broken]:
        value = matched.pop(key)
        skipped.append(
            {"tensor": key, "source_shape": list(value.shape), "shape": list(own[key].shape),
             "reason": "another tensor of its module has another shape"}
        )  # fmt: skip
    if not matched:
        raise ConfigError(
            f"{what}: no tensor of its model matches this model by name and shape (its "
            f"tensors: {', '.join(list(weights)[:6])}...); it is not a pretraining of this "
            "architecture"
        )
    model.load_state_dict({**own, **matched})
    parameters = dict(model.named_parameters())
    return {
        "loaded": len(matched),
        "loaded_parameters": sum(v.numel() for k, v in matched.items() if k in parameters),
        "skipped": skipped,
        "new": [
            k
            for k in own
            if k not in matched
            and not k.startswith(IMAGE_INPUT)
            and not any(s["tensor"] == k for s in skipped)
        ],
        "unused": [k for k in weights if k not in used],
    }


def matching_parameters(model: nn.Module, patterns: list[str]) -> list[str]:
    """Names of the parameters a ``train.freeze`` list selects (globs on parameter names or
    module names, :func:`nntune.optim.groups.select`); an error names a pattern that selects
    nothing, or a list that selects everything."""
    names = [n for n, _ in model.named_parameters()]
    chosen: list[str] = []
    for pattern in patterns:
        hits = select(names, pattern)
        if not hits:
            raise no_match("train.freeze", pattern, names)
        chosen += [n for n in hits if n not in chosen]
    if len(chosen) == len(names):
        raise ConfigError(
            f"train.freeze {patterns} freezes every parameter: nothing would train; leave at "
            "least the last layer out"
        )
    return chosen


class Freeze(Callback):
    """Parameters named by ``train.freeze`` do not train (no gradient, so optimizers, decay and
    clipping leave them alone) until ``train.freeze_until`` epochs have finished, if given."""

    key = "freeze"

    def __init__(self, model: nn.Module, patterns: list[str], until: int | None) -> None:
        self.names = set(matching_parameters(model, patterns))
        self.until = until

    def _set(self, model: nn.Module, trainable: bool) -> None:
        for name, param in model.named_parameters():
            if name in self.names:
                param.requires_grad_(trainable)

    def on_train_begin(self, state: TrainState) -> None:
        # a resumed run past the unfreeze epoch trains everything
        frozen = self.until is None or state.epoch < self.until
        self._set(state.model, not frozen)

    def on_epoch_begin(self, state: TrainState) -> None:
        if self.until is not None and state.epoch == self.until:
            self._set(state.model, True)

    def on_train_end(self, state: TrainState, reason: str) -> None:
        self._set(state.model, True)  # the model leaves training whole
