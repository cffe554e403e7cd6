"""The training loop: one explicit loop, readable top to bottom, with hooks at fixed points.

    for each epoch:
        on_epoch_begin
        for each batch: augment → forward → loss (+ penalty) → backward
            every `accumulate` batches: after_backward → clip → optimizer step → on_step_end
        validate → record → on_epoch_end (early stopping, checkpoints, logging, progress)
    on_train_end

Callbacks return decisions (stop, skip the step, restore a state); only this loop changes the
model, the optimizer and the counters. Everything needed to continue exactly (weights, optimizer,
schedule, RNG states, counters, callback states, history) is in :meth:`Engine.state_dict`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from nntune.data import Augmentation, Batch
from nntune.errors import TrainingError
from nntune.losses import Loss
from nntune.optim import Horizon, Schedule, clip_gradients, grad_norm, penalty
from nntune.records import EpochRecord, History
from nntune.train.batches import LoaderBatches, TensorBatches
from nntune.train.callbacks.base import (
    Callback,
    Decision,
    Restore,
    SkipStep,
    Stop,
    TrainState,
    overrides,
)
from nntune.train.evaluate import metric_values, predict_outputs, score


@dataclass
class EngineSettings:
    """How to train, as plain values (the config's train: and regularization: sections)."""

    epochs: int
    task: str
    metrics: list[str]
    accumulate: int = 1
    clip_norm: float | None = None
    clip_value: float | None = None
    l1: float = 0.0
    l2: float = 0.0
    # the global gradient norm is measured every this many steps (it costs a few kernels)
    grad_norm_every: int = 10
    eval_batch_size: int = 4096
    penalized: Sequence[nn.Parameter] = field(default_factory=list)


def horizon(batches: TensorBatches | LoaderBatches, settings: EngineSettings) -> Horizon:
    """The run's length in optimizer steps (what schedules are defined over)."""
    steps_per_epoch = math.ceil(len(batches) / settings.accumulate)
    return Horizon(settings.epochs * steps_per_epoch, steps_per_epoch)


class Engine:
    def __init__(
        self,
        model: nn.Module,
        loss: Loss,
        optimizer: torch.optim.Optimizer,
        schedule: Callable[[Horizon], Schedule],
        batches: TensorBatches | LoaderBatches,
        settings: EngineSettings,
        *,
        val: tuple[torch.Tensor, torch.Tensor] | None = None,
        augment: Sequence[Augmentation] = (),
        callbacks: Sequence[Callback] = (),
        seed: int = 0,
    ) -> None:
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.batches = batches
        self.settings = settings
        self.val = val
        self.augment = list(augment)
        self.callbacks = list(callbacks)
        keys = [cb.key for cb in self.callbacks]
        if len(set(keys)) != len(keys):
            raise ValueError(f"callback keys must be unique, got {keys}")
        self.horizon = horizon(batches, settings)
        steps_per_epoch = self.horizon.steps_per_epoch
        self.schedule = schedule(self.horizon)
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        # batch order and augmentation draw from this generator, so they are part of the state
        self.generator = torch.Generator().manual_seed(seed)
        self.stop_reason: str | None = None
        self.restored: str | None = None
        self.elapsed = 0.0
        self.state = TrainState(
            model=model,
            optimizer=optimizer,
            epochs=settings.epochs,
            steps_per_epoch=steps_per_epoch,
            snapshot=self.state_dict,
        )
        self._step_hooks = {
            hook: [cb for cb in self.callbacks if overrides(cb, hook)]
            for hook in ("after_backward", "on_step_end")
        }
        for cb in self.callbacks:
            cb.on_train_begin(self.state)

    # --- the loop -----------------------------------------------------------------------------

    def fit(self) -> History:
        """Train until the epochs are done or a callback stops; returns the history."""
        state = self.state
        started = time.perf_counter() - self.elapsed
        error: Stop | None = None
        while state.epoch < state.epochs and self.stop_reason is None:
            for cb in self.callbacks:
                cb.on_epoch_begin(state)
            error = self._train_epoch(started)
            if error is not None:
                break
        state.failed = error is not None
        reason = error.reason if error else self.stop_reason or "completed"
        # restores asked for at the end (best weights) come after every callback has finished,
        # so that the final last.pt still holds the state training can continue from
        decisions = [cb.on_train_end(state, reason) for cb in self.callbacks]
        for decision in decisions:
            if isinstance(decision, Restore):
                self._restore(decision)
                self.restored = decision.reason
        if error is not None:
            raise TrainingError(error.reason)
        return state.history

    def _train_epoch(self, started: float) -> Stop | None:
        state, settings = self.state, self.settings
        model, optimizer = self.model, self.optimizer
        model.train()
        loss_sum, loss_count, skipped = 0.0, 0, 0
        norms: list[float] = []
        seen_outputs: list[torch.Tensor] = []
        seen_targets: list[torch.Tensor] = []
        micro, micro_losses = 0, []
        n_batches = len(self.batches)
        for index, (x, y) in enumerate(self.batches.epoch(self.generator)):
            if micro == 0:
                self._set_lr(state.step)
            batch = Batch(x, y)
            for augmentation in self.augment:
                batch = augmentation(batch, self.generator)
            outputs = model(batch.x)
            loss = self.loss(outputs, batch.y)
            if batch.y_mix is not None:
                loss = batch.lam * loss + (1.0 - batch.lam) * self.loss(outputs, batch.y_mix)
            extra = penalty(settings.penalized, settings.l1, settings.l2)
            total = loss if extra is None else loss + extra
            (total / settings.accumulate if settings.accumulate > 1 else total).backward()
            value = loss.item()
            micro_losses.append(value)
            if math.isfinite(value):
                loss_sum += value * len(x)
                loss_count += len(x)
                seen_outputs.append(outputs.detach())
                seen_targets.append(batch.y)
            micro += 1
            if micro < settings.accumulate and index + 1 < n_batches:
                continue
            micro = 0
            state.loss = sum(micro_losses) / len(micro_losses)
            micro_losses = []
            decision = self._first_decision("after_backward", loss)
            if isinstance(decision, Stop):
                optimizer.zero_grad(set_to_none=True)
                if decision.error:
                    return decision
                self._stop(decision)
                break
            if isinstance(decision, (SkipStep, Restore)):
                optimizer.zero_grad(set_to_none=True)
                if isinstance(decision, Restore):
                    self._restore(decision)
                skipped += 1
                continue
            measured = clip_gradients(self.params, settings.clip_norm, settings.clip_value)
            if measured is None and state.step % settings.grad_norm_every == 0:
                measured = grad_norm(self.params)
            state.grad_norm = float(measured) if measured is not None else None
            if state.grad_norm is not None:
                norms.append(state.grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            for cb in self._step_hooks["on_step_end"]:
                cb.on_step_end(state)

        state.epoch += 1
        record = self._record(
            loss_sum / loss_count if loss_count else math.nan,
            norms,
            seen_outputs,
            seen_targets,
            skipped,
            time.perf_counter() - started,
        )
        state.history.append(record)
        self.elapsed = record.seconds
        self.schedule.observe(record.to_json())
        for cb in self.callbacks:
            decision = cb.on_epoch_end(state, record)
            if isinstance(decision, Stop):
                self._stop(decision)
            elif isinstance(decision, Restore):
                self._restore(decision)
        # training time includes what the callbacks did (checkpoints, logs)
        self.elapsed = time.perf_counter() - started
        return None

    def _record(
        self,
        train_loss: float,
        norms: list[float],
        outputs: list[torch.Tensor],
        targets: list[torch.Tensor],
        skipped: int,
        seconds: float,
    ) -> EpochRecord:
        settings = self.settings
        metrics: dict[str, float] = {}
        if outputs:
            values = metric_values(
                self.loss, settings.task, torch.cat(outputs), torch.cat(targets), settings.metrics
            )
            metrics.update({f"train_{k}": v for k, v in values.items()})
        val_loss = None
        if self.val is not None:
            out = predict_outputs(self.model, self.val[0], settings.eval_batch_size)
            scores = score(self.loss, settings.task, out, self.val[1], settings.metrics)
            val_loss = scores.pop("loss")
            metrics.update({f"val_{k}": v for k, v in scores.items()})
        return EpochRecord(
            epoch=self.state.epoch,
            step=self.state.step,
            lr=self.state.lr,
            seconds=seconds,
            train_loss=train_loss,
            val_loss=val_loss,
            grad_norm=sum(norms) / len(norms) if norms else None,
            metrics=metrics,
            extra={"skipped_steps": skipped},
        )

    # --- helpers ------------------------------------------------------------------------------

    def _set_lr(self, step: int) -> None:
        factor = self.schedule.factor(step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        self.state.lr = self.base_lrs[0] * factor
        momentum = self.schedule.momentum(step)
        if momentum is not None:
            for group in self.optimizer.param_groups:
                if "betas" in group:
                    group["betas"] = (momentum, *group["betas"][1:])
                elif "momentum" in group:
                    group["momentum"] = momentum

    def _first_decision(self, hook: str, loss: torch.Tensor) -> Decision:
        for cb in self._step_hooks[hook]:
            decision = cb.after_backward(self.state, loss)
            if decision is not None:
                return decision
        return None

    def _stop(self, decision: Stop) -> None:
        if self.stop_reason is None:
            self.stop_reason = decision.reason

    def _restore(self, decision: Restore) -> None:
        self.model.load_state_dict(decision.model)
        if decision.reset_optimizer:
            self.optimizer.state.clear()

    # --- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly, as plain tensors and containers."""
        state = self.state
        np_state: Any = np.random.get_state()
        rng: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "generator": self.generator.get_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": random.getstate(),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "epoch": state.epoch,
            "step": state.step,
            "elapsed": self.elapsed,
            "stop_reason": self.stop_reason,
            "history": state.history.to_json(),
            "callbacks": {cb.key: cb.state_dict() for cb in self.callbacks},
            "rng": rng,
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        state = self.state
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.schedule.load_state_dict(saved["schedule"])
        state.epoch, state.step = int(saved["epoch"]), int(saved["step"])
        self.elapsed = float(saved["elapsed"])
        self.stop_reason = saved["stop_reason"]
        state.history = History.from_json(saved["history"])
        for cb in self.callbacks:
            if cb.key in saved["callbacks"]:
                cb.load_state_dict(saved["callbacks"][cb.key])
        rng = saved["rng"]
        torch.set_rng_state(rng["torch"])
        self.generator.set_state(rng["generator"])
        np_state = rng["numpy"]
        np.random.set_state((np_state[0], np_state[1].numpy().astype(np.uint32), *np_state[2:]))
        python = rng["python"]
        random.setstate((python[0], tuple(python[1]), python[2]))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
