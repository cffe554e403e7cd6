"""Weight averages evaluated in place of the trained weights: EMA and SWA.

Both keep a running average of every floating-point entry of the model's state (parameters and
BatchNorm running statistics), updated in one multi-tensor ``lerp`` (torch has the averaging
rules in ``torch.optim.swa_utils``, but its ``AveragedModel`` keeps a second module and a Python
loop per update; one lerp over flat lists is the same formula at a fraction of the cost):

- EMA: ā ← ā + (1 − d)·(w − ā) after every optimizer step, d = min(decay, (1 + t)/(10 + t)) with
  warmup (as TensorFlow's ExponentialMovingAverage with num_updates), else decay.
- SWA (Izmailov et al. 2018): ā ← ā + (w − ā)/(n + 1) at the end of each epoch from the start
  epoch on: the equal-weight mean of those epochs' weights. At the end of training the
  BatchNorm statistics are recomputed for the averaged weights with
  ``torch.optim.swa_utils.update_bn`` (during training the averaged running statistics stand in).

Validation, best.pt and the final summary use the averaged weights; last.pt keeps the trained
weights and the average, so a resumed run continues both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class WeightAverage:
    def __init__(
        self,
        model: nn.Module,
        kind: str,
        decay: float = 0.999,
        warmup: bool = True,
        start_epoch: int = 0,
    ) -> None:
        if kind not in ("ema", "swa"):
            raise ValueError(f"unknown weight average {kind!r}")
        self.model = model
        self.kind = kind
        self.decay = decay
        self.warmup = warmup
        self.start_epoch = start_epoch
        self.names = [k for k, v in model.state_dict().items() if v.is_floating_point()]
        self.average: list[torch.Tensor] | None = None  # None until the first update
        self.updates = 0

    def _live(self) -> list[torch.Tensor]:
        state = self.model.state_dict()
        return [state[k].detach() for k in self.names]

    @torch.no_grad()
    def _update(self, weight: float) -> None:
        live = self._live()
        if self.average is None:
            self.average = [t.clone() for t in live]
        else:
            torch._foreach_lerp_(self.average, live, weight)
        self.updates += 1

    def after_step(self) -> None:
        if self.kind != "ema":
            return
        t = self.updates
        decay = min(self.decay, (1.0 + t) / (10.0 + t)) if self.warmup else self.decay
        self._update(1.0 - decay)

    def after_epoch(self, epoch: int) -> None:
        """``epoch``: 0-based index of the epoch that just finished."""
        if self.kind == "swa" and epoch >= self.start_epoch:
            self._update(1.0 / (self.updates + 1))

    @property
    def ready(self) -> bool:
        return self.average is not None

    def weights(self) -> dict[str, torch.Tensor]:
        """The model's state dict with the averaged entries (the live one before any update)."""
        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.average is not None:
            for name, value in zip(self.names, self.average, strict=True):
                state[name] = value.clone()
        return state

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """Evaluate with the averaged weights inside the block; the trained ones come back."""
        if self.average is None:
            yield
            return
        trained = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.weights())
        try:
            yield
        finally:
            self.model.load_state_dict(trained)

    def finalize(self, batches: Iterable[Any]) -> None:
        """Leave the averaged weights in the model (SWA: with BatchNorm statistics recomputed)."""
        if self.average is None:
            return
        self.model.load_state_dict(self.weights())
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules())
        if self.kind == "swa" and has_bn:
            torch.optim.swa_utils.update_bn(batches, self.model)

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        average = state["average"]
        self.average = None if average is None else [t.clone() for t in average]
        self.updates = int(state["updates"])
