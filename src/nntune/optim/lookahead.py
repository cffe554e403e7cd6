"""Lookahead (Zhang, Lucas, Hinton & Ba 2019): k fast steps of a base optimizer, then the slow
weights move a fraction alpha towards the fast ones and the fast weights restart from there.

Written here rather than taken from pytorch_optimizer (the library adabound comes from), because
its ``Lookahead`` (4.1) does not fit what the engine relies on: its ``state`` holds only the
slow weights, apart from the base optimizer's state, so the engine's
``optimizer.state.clear()`` after a NaN restore leaves the base's moments in place and makes the
next synchronisation fail (``Tensor lists must have the same number of tensors``); its
``state_dict`` is a layout of its own keyed by ``(group, index)`` tuples. This wrapper keeps
everything in the base optimizer's own containers instead:

- ``param_groups`` and ``state`` *are* the base's (the same objects), so the lr the engine writes
  into ``param_groups`` every step reaches the base, and ``state.clear()`` resets the base's
  moments and the slow weights together (the slow weights restart from the current weights);
- the slow weights and fast-step counters live in the base's per-parameter state (keys
  ``lookahead_slow``, ``lookahead_steps``), so ``state_dict()`` / ``load_state_dict()`` are the
  base's and restore them exactly, as plain tensors and ints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

SLOW = "lookahead_slow"
STEPS = "lookahead_steps"


class Lookahead(torch.optim.Optimizer):
    """Lookahead around ``base``: every ``k`` fast steps of a parameter,
    slow ← slow + alpha·(fast − slow) and fast ← slow."""

    needs_closure = False

    def __init__(self, base: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if k < 1:
            raise ValueError(f"lookahead k must be at least 1, got {k}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"lookahead alpha must be in (0, 1], got {alpha}")
        # torch's __init__ sets up the hook containers; it is given the base's own group dicts,
        # and the wrapper then shares the base's group list and state outright
        super().__init__(base.param_groups, base.defaults)
        self.base = base
        self.k = k
        self.alpha = alpha
        self._share()

    def _share(self) -> None:
        self.param_groups = self.base.param_groups
        self.state = self.base.state
        self.defaults = self.base.defaults

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, base={self.base!r})"

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        # the parameters the base is about to move for the first time (or again after the
        # state was cleared): their slow weights start at the weights before this step; added
        # after the base's step, because torch's optimizers initialise a parameter's state
        # only when it is empty
        stepped = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        fresh = [p for p in stepped if SLOW not in self.state.get(p, ())]
        start = [p.detach().clone() for p in fresh]
        loss = self.base.step() if closure is None else self.base.step(closure)
        for p, weights in zip(fresh, start, strict=True):
            state = self.state[p]
            state[SLOW] = weights
            state[STEPS] = 0
        due: list[torch.Tensor] = []
        for p in stepped:
            state = self.state[p]
            state[STEPS] += 1
            if state[STEPS] >= self.k:
                state[STEPS] = 0
                due.append(p)
        if due:
            slow = [self.state[p][SLOW] for p in due]
            torch._foreach_lerp_(slow, due, self.alpha)  # slow ← slow + alpha·(fast − slow)
            torch._foreach_copy_(due, slow)  # fast ← slow
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return self.base.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base.load_state_dict(state_dict)
        self._share()  # torch's load_state_dict replaces the base's containers

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not hasattr(self, "base"):  # torch's __init__, registering the base's groups
            super().add_param_group(param_group)
            return
        self.base.add_param_group(param_group)
