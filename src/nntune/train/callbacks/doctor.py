"""The doctor's probe during training (``train.doctor: true`` or ``nntune doctor``)."""

from __future__ import annotations

import torch

from nntune.diagnose.probe import Probe, ProbeStats
from nntune.train.callbacks.base import Callback, Decision, TrainState


class DoctorProbe(Callback):
    """Samples gradients, updates and activations every ``every`` steps (see diagnose.probe)."""

    key = "doctor_probe"

    def __init__(self, every: int = 10) -> None:
        self.every = every
        self.probe: Probe | None = None
        self.stats: ProbeStats | None = None

    def on_train_begin(self, state: TrainState) -> None:
        if self.probe is not None:
            self.probe.close()
        self.probe = Probe(state.model, self.every)
        self.stats = None

    def after_backward(self, state: TrainState, loss: torch.Tensor) -> Decision:
        if self.probe is not None:
            self.probe.after_backward(state.step)
        return None

    def on_step_end(self, state: TrainState) -> None:
        if self.probe is not None:
            self.probe.after_step(state.step - 1)  # the index of the step just taken

    def on_train_end(self, state: TrainState, reason: str) -> Decision:
        self.finish()
        return None

    def finish(self) -> ProbeStats | None:
        """Remove the hooks and keep the statistics (also after a failed run)."""
        if self.probe is not None:
            self.stats = self.probe.stats()
            self.probe.close()
            self.probe = None
        return self.stats
