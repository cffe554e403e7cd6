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
    checkpoint (:func:`load_matching`); returns the report that summary.json keeps as
    ``init_from``."""
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
        found = next(
            (p + key for p in PREFIXES if isinstance(weights.get(p + key), torch.Tensor)), None
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
        "new": [k for k in own if k not in matched and not any(s["tensor"] == k for s in skipped)],
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
