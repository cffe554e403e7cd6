"""Training probes: what the detectors read, measured on any nn.Module through hooks.

Every ``every`` optimizer steps the probe samples:

- gradient norms of each weight tensor (after backward, before clipping), so the first and last
  layers' norms and their ratio are known (AutoTrainer's vanishing/exploding rules);
- update-to-weight ratios ‖Δw‖/‖w‖ of each weight tensor across the optimizer step;
- activation statistics from forward hooks on activation modules: the fraction of ReLU units
  (features, or channels of a conv map) that output zero for every sample of the batch, and the
  fraction of sigmoid/tanh inputs in the saturated range;
- non-finite losses and gradients.

Hooks run on the sampled steps only; the probe times itself so that its overhead is reported.
Activations called as functions (``F.relu``) instead of modules are invisible to the hooks.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# inputs beyond these magnitudes are saturated: σ'(5) ≈ 0.0066, tanh'(3) ≈ 0.0099
SATURATION = {nn.Sigmoid: 5.0, nn.Tanh: 3.0, nn.Hardtanh: 1.0, nn.Softsign: 10.0}
RELU_LIKE = (nn.ReLU, nn.ReLU6)


@dataclass
class ProbeStats:
    """What the probe measured, reduced over the samples (plain numbers, JSON-ready)."""

    samples: int = 0
    first_grad_norm: float | None = None  # median over samples
    last_grad_norm: float | None = None
    grad_ratio: float | None = None  # median of first/last
    max_grad_norm: float | None = None
    nonfinite_grads: int = 0
    update_ratio: float | None = None  # median over samples and tensors of ‖Δw‖/‖w‖
    dead_relu_fraction: float | None = None  # worst ReLU module, mean over the later samples
    saturated_fraction: float | None = None  # worst sigmoid/tanh module, same
    overhead_seconds: float = 0.0
    layers: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "layers"} | {
            "first_layer": self.layers[0] if self.layers else None,
            "last_layer": self.layers[-1] if self.layers else None,
        }


def _median(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else None


def _later_mean(series: list[float]) -> float | None:
    """Mean of the second half of a series (units that died early and stayed dead)."""
    if not series:
        return None
    later = series[len(series) // 2 :]
    return sum(later) / len(later)


class Probe:
    """Attach to a model; call :meth:`after_backward` and :meth:`after_step` at each step."""

    # the probe samples less often when it costs more than this share of the training time
    OVERHEAD_BUDGET = 0.03

    def __init__(self, model: nn.Module, every: int = 10) -> None:
        self.model = model
        self.every = max(1, every)
        self.started = time.perf_counter()
        self.next_sample = 0
        self.weights = [
            (n, p) for n, p in model.named_parameters() if p.requires_grad and p.dim() > 1
        ]
        self.active = True  # the first step is sampled
        self.first: list[float] = []
        self.last: list[float] = []
        self.ratios: list[float] = []
        self.max_norms: list[float] = []
        self.nonfinite = 0
        self.updates: list[float] = []
        self.dead: dict[str, list[float]] = {}
        self.saturated: dict[str, list[float]] = {}
        self.overhead = 0.0
        self._before: list[torch.Tensor] | None = None
        self._handles = []
        for name, module in model.named_modules():
            if isinstance(module, RELU_LIKE):
                self.dead[name] = []
                self._handles.append(module.register_forward_hook(self._relu_hook(name)))
            else:
                limit = next((v for k, v in SATURATION.items() if isinstance(module, k)), None)
                if limit is not None:
                    self.saturated[name] = []
                    self._handles.append(
                        module.register_forward_hook(self._saturation_hook(name, limit))
                    )

    @contextmanager
    def _timed(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.overhead += time.perf_counter() - start

    # --- hooks --------------------------------------------------------------------------------

    def _relu_hook(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if not (self.active and module.training and isinstance(output, torch.Tensor)):
                return
            with self._timed(), torch.no_grad():
                out = output.detach()
                if out.dim() < 2 or out.shape[0] < 2:
                    return
                # a unit is a feature (N, F) or a channel (N, C, ...); dead: zero on every sample
                per_unit = out.transpose(0, 1).reshape(out.shape[1], -1)
                dead = (per_unit <= 0).all(dim=1).float().mean()
                self.dead[name].append(float(dead))

        return hook

    def _saturation_hook(self, name: str, limit: float) -> Any:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            if not (self.active and module.training and inputs):
                return
            with self._timed(), torch.no_grad():
                x = inputs[0].detach()
                self.saturated[name].append(float((x.abs() > limit).float().mean()))

        return hook

    # --- step points --------------------------------------------------------------------------

    def after_backward(self, step: int) -> None:
        """Gradients exist (before clipping and the step)."""
        if not self.active or not self.weights:
            return
        with self._timed(), torch.no_grad():
            grads = [p.grad for _, p in self.weights if p.grad is not None]
            if len(grads) != len(self.weights):
                return  # layers without gradients (frozen): first/last ratios would mislead
            norms = torch.stack(torch._foreach_norm(grads)).tolist()
            if any(not math.isfinite(n) for n in norms):
                self.nonfinite += 1
                return
            self.first.append(norms[0])
            self.last.append(norms[-1])
            self.ratios.append(norms[0] / norms[-1] if norms[-1] > 0 else math.inf)
            self.max_norms.append(max(norms))
            self._before = [p.detach().clone() for _, p in self.weights]

    def after_step(self, step: int) -> None:
        """The optimizer stepped; decide whether the next step is sampled."""
        with self._timed():
            if self.active and self._before is not None:
                with torch.no_grad():
                    for before, (_, p) in zip(self._before, self.weights, strict=True):
                        norm = float(before.norm())
                        if norm > 0:
                            self.updates.append(float((p.detach() - before).norm()) / norm)
                self._before = None
            if self.active:
                elapsed = time.perf_counter() - self.started
                if elapsed > 0 and self.overhead / elapsed > self.OVERHEAD_BUDGET:
                    self.every *= 2  # keep the probe cheap: sample half as often
                self.next_sample = step + self.every
            self.active = step + 1 >= self.next_sample

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def stats(self) -> ProbeStats:
        dead = [m for m in (_later_mean(s) for s in self.dead.values()) if m is not None]
        saturated = [m for m in (_later_mean(s) for s in self.saturated.values()) if m is not None]
        return ProbeStats(
            samples=len(self.first),
            first_grad_norm=_median(self.first),
            last_grad_norm=_median(self.last),
            grad_ratio=_median(self.ratios),
            max_grad_norm=max(self.max_norms) if self.max_norms else None,
            nonfinite_grads=self.nonfinite,
            update_ratio=_median(self.updates),
            dead_relu_fraction=max(dead) if dead else None,
            saturated_fraction=max(saturated) if saturated else None,
            overhead_seconds=round(self.overhead, 4),
            layers=[n for n, _ in self.weights],
        )
