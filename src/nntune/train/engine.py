"""The training loop: one explicit loop, readable top to bottom, with hooks at fixed points.

    for each epoch:
        on_epoch_begin
        for each batch: augment → forward → loss (+ penalty) → backward
            every `accumulate` batches: after_backward → clip → weight decay → optimizer step
                                        → weight average → on_step_end
        weight average → validate → record → on_epoch_end (early stopping, checkpoints, logs)
    on_train_end → final weights (average, best)

Callbacks return decisions (stop, skip the step, restore a state); only this loop changes the
model, the optimizer and the counters. Everything needed to continue exactly (weights, optimizer,
schedule, RNG states, counters, callback states, history) is in :meth:`Engine.state_dict`.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from nntune.data import Augmentation, Batch
from nntune.errors import TrainingError
from nntune.losses import Loss
from nntune.optim import (
    Horizon,
    Schedule,
    WeightDecay,
    clip_gradients,
    grad_norm,
    needs_closure,
    penalty,
)
from nntune.records import EpochRecord, History
from nntune.train.averaging import WeightAverage
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
from nntune.train.distributed import DataParallel, broadcast, epoch_seed
from nntune.train.evaluate import metric_values, predict_outputs, score
from nntune.train.strategy import TrainingStrategy


@dataclass
class EngineSettings:
    """How to train, as plain values (the config's train: and regularization: sections)."""

    epochs: int
    task: str
    metrics: list[str]
    accumulate: int = 1
    clip_norm: float | None = None
    clip_value: float | None = None
    clip_agc: float | None = None
    agc_eps: float = 1e-3
    l1: float = 0.0
    l2: float = 0.0
    weight_decay: WeightDecay | None = None
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast of the forward pass and loss)
    channels_last: bool = False  # 4-D batches in the channels-last memory format
    # the global gradient norm is measured every this many steps (it costs a few kernels)
    grad_norm_every: int = 10
    eval_batch_size: int | None = None  # None: by the device and the sample's size
    penalized: Sequence[nn.Parameter] = field(default_factory=list)


def horizon(batches: TensorBatches | LoaderBatches, settings: EngineSettings) -> Horizon:
    """The run's length in optimizer steps (what schedules are defined over)."""
    per_epoch = [
        math.ceil(batches.steps_in_epoch(e) / settings.accumulate) for e in range(settings.epochs)
    ]
    if len(set(per_epoch)) == 1:
        return Horizon(settings.epochs * per_epoch[0], per_epoch[0])
    starts = [0]
    for steps in per_epoch[:-1]:
        starts.append(starts[-1] + steps)
    return Horizon(sum(per_epoch), per_epoch[0], tuple(starts))


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for the forward pass and loss (backward follows autocast's dtypes)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 runs on the device's own instructions (AVX-512 BF16 or AMX on a CPU, an
    Ampere or later GPU); elsewhere bf16 autocast is emulated and slower than fp32."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    # torch has no public query for the CPU's bf16 instructions; these private ones are what
    # its own oneDNN dispatch checks, so a torch without them just gets fp32
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The autocast setting a run trains with: ``auto`` is bf16 where the device runs bf16 on
    its own instructions and fp32 elsewhere, where emulated bf16 is several times slower than
    fp32 (a ResNet epoch on an AVX2-only CPU: over 300 s in bf16, 111 s in fp32)."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


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
        average: WeightAverage | None = None,
        strategy: TrainingStrategy | None = None,
        parallel: DataParallel | None = None,
    ) -> None:
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.batches = batches
        self.settings = settings
        self.val = val
        self.augment = list(augment)
        self.strategy = strategy  # distillation, adversarial training (None: plain)
        self.callbacks = list(callbacks)
        keys = [cb.key for cb in self.callbacks]
        if len(set(keys)) != len(keys):
            raise ValueError(f"callback keys must be unique, got {keys}")
        self.horizon = horizon(batches, settings)
        steps_per_epoch = self.horizon.steps_per_epoch
        self.schedule = schedule(self.horizon)
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.average = average
        self._lr_factor = 1.0
        self.closure_step = needs_closure(optimizer)
        self.device = self.params[0].device if self.params else torch.device("cpu")
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none
        self.scaler = (
            torch.amp.GradScaler(self.device.type) if settings.precision == "fp16" else None
        )
        self.seed = seed
        # augmentation and attacks draw from this generator, so it is part of the state; the
        # batch order is a function of (seed, epoch), the same on every rank of a DDP job
        self.generator = torch.Generator().manual_seed(seed)
        # data-parallel training: the model that trains is the DDP wrapper of ``model``
        self.parallel = parallel
        self.trained_model: nn.Module = parallel.module if parallel else model
        self.stop_reason: str | None = None
        self.restored: str | None = None
        self.elapsed = 0.0
        self.state = TrainState(
            model=model,
            optimizer=optimizer,
            epochs=settings.epochs,
            steps_per_epoch=steps_per_epoch,
            snapshot=self.state_dict,
            eval_weights=self.eval_weights,
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
        if self.average is not None:
            self.average.finalize(self.batches.epoch(torch.Generator().manual_seed(0)))
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
        loss_sum, loss_count, skipped = 0.0, 0.0, 0
        norms: list[float] = []
        seen_outputs: list[torch.Tensor] = []
        seen_targets: list[torch.Tensor] = []
        micro, micro_losses = 0, []
        n_batches = self.batches.steps_in_epoch(state.epoch)
        parallel = self.parallel
        if parallel is not None:
            # each rank's own randomness, replayable by a resumed run of the same world size
            rank_seed = epoch_seed(self.seed, state.epoch, parallel.shard.rank)
            self.generator.manual_seed(rank_seed)
            torch.manual_seed(rank_seed)
        order = torch.Generator().manual_seed(epoch_seed(self.seed, state.epoch, -1))
        for index, (x, y) in enumerate(self.batches.epoch(order, state.epoch)):
            if micro == 0:
                self._set_lr(state.step)
            if x.dtype == torch.uint8:  # image folders: augmentation works on 0..1 floats
                x = x.float().div_(255.0)
            batch = Batch(x, y)
            for augmentation in self.augment:
                batch = augmentation(batch, self.generator)
            if self.strategy is not None:
                batch = self.strategy.transform(model, self.loss, batch, self.generator)
            if settings.channels_last and batch.x.dim() == 4:
                batch = replace(batch, x=batch.x.contiguous(memory_format=torch.channels_last))
            last_micro = micro + 1 >= settings.accumulate or index + 1 >= n_batches
            with (
                parallel.no_sync(not last_micro) if parallel else contextlib.nullcontext(),
                autocast(self.device, settings.precision),
            ):
                outputs = self.trained_model(batch.x)
                loss, total = self._objective(outputs, batch)
                scaled = total / settings.accumulate if settings.accumulate > 1 else total
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            value = loss.item()
            micro_losses.append(value)
            if math.isfinite(value):
                loss_sum += value * len(x)
                loss_count += len(x)
                seen_outputs.append(outputs.detach().float())
                seen_targets.append(batch.y)
            micro += 1
            if micro < settings.accumulate and index + 1 < n_batches:
                continue
            micro = 0
            state.loss = sum(micro_losses) / len(micro_losses)
            if parallel is not None:
                # the global batch's loss: a NaN on any rank is seen, and acted on, by all
                state.loss = parallel.mean(state.loss)
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
                if self.scaler:
                    self.scaler.update()  # an fp16 overflow lowers the scale for the next step
                if isinstance(decision, Restore):
                    self._restore(decision)
                skipped += 1
                continue
            self._optimizer_step(batch, norms)
            state.step += 1
            if self.average is not None:
                self.average.after_step()
            for cb in self._step_hooks["on_step_end"]:
                cb.on_step_end(state)

        if self.average is not None:
            self.average.after_epoch(state.epoch)
        state.epoch += 1
        if parallel is not None:
            loss_sum, loss_count = parallel.sum([loss_sum, loss_count])
            seen_outputs = parallel.gather(seen_outputs)
            seen_targets = parallel.gather(seen_targets)
        record = self._record(
            loss_sum / loss_count if loss_count else math.nan,
            norms,
            seen_outputs,
            seen_targets,
            skipped,
            time.perf_counter() - started,
        )
        if parallel is not None:
            record = broadcast(record)  # every rank decides on rank 0's numbers
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
            with self.average.swapped() if self.average else contextlib.nullcontext():
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

    # --- one step -----------------------------------------------------------------------------

    def _objective(
        self,
        outputs: torch.Tensor,
        batch: Batch,
        penalized: Sequence[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(data loss, loss + penalties): the loss is what is logged, the total is minimised.
        ``penalized`` replaces the live weights in the penalty (functional evaluation)."""
        settings = self.settings
        loss = self.loss(outputs, batch.y)
        if batch.y_mix is not None:
            loss = batch.lam * loss + (1.0 - batch.lam) * self.loss(outputs, batch.y_mix)
        if self.strategy is not None:
            loss = self.strategy.objective(outputs, batch, loss)
        weights = settings.penalized if penalized is None else penalized
        extra = penalty(weights, settings.l1, settings.l2)  # type: ignore[arg-type]
        return loss, loss if extra is None else loss + extra

    def _optimizer_step(self, batch: Batch, norms: list[float]) -> None:
        state, settings, optimizer = self.state, self.settings, self.optimizer
        if self.scaler:
            self.scaler.unscale_(optimizer)  # clipping and decay see the true gradients
        measured = clip_gradients(
            self.params,
            settings.clip_norm,
            settings.clip_value,
            settings.clip_agc,
            settings.agc_eps,
        )
        if measured is None and state.step % settings.grad_norm_every == 0:
            measured = grad_norm(self.params)
        state.grad_norm = float(measured) if measured is not None else None
        if state.grad_norm is not None:
            norms.append(state.grad_norm)
        decay = settings.weight_decay
        if self.closure_step:
            if decay is not None and decay.mode == "decoupled":
                decay.apply(state.lr, self._lr_factor, state.epoch)
            optimizer.step(_BatchClosure(self, batch))  # type: ignore[arg-type]
        else:
            if decay is not None:
                decay.apply(state.lr, self._lr_factor, state.epoch)
            if self.scaler:
                self.scaler.step(optimizer)
                self.scaler.update()
            else:
                optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # --- helpers ------------------------------------------------------------------------------

    @property
    def world_size(self) -> int:
        """Processes that train this model together (1 without data parallelism)."""
        return self.parallel.shard.world if self.parallel else 1

    def eval_weights(self) -> dict[str, torch.Tensor]:
        """The weights validation measured: the weight average when there is one."""
        if self.average is not None and self.average.ready:
            return self.average.weights()
        return self.model.state_dict()

    def _set_lr(self, step: int) -> None:
        factor = self.schedule.factor(step) * self.batches.lr_factor(self.state.epoch)
        self._lr_factor = factor
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        # the optimizer's own lr (the first group's, without its train.layer_lr multiplier)
        self.state.lr = (
            self.base_lrs[0] / self.optimizer.param_groups[0].get("lr_scale", 1.0) * factor
        )
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
            "average": self.average.state_dict() if self.average else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "world_size": self.world_size,
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
        if self.average is not None and saved.get("average") is not None:
            self.average.load_state_dict(saved["average"])
        if self.scaler is not None and saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
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


class _BatchClosure:
    """The :class:`~nntune.optim.StepClosure` of one batch, for L-BFGS and Newton."""

    def __init__(self, engine: Engine, batch: Batch) -> None:
        self.engine = engine
        self.batch = batch
        self.names = [n for n, p in engine.model.named_parameters() if p.requires_grad]

    def _total(
        self, outputs: torch.Tensor, replaced: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        engine = self.engine
        penalized = decayed = None
        if replaced is not None:
            name_of = {id(p): n for n, p in engine.model.named_parameters()}
            penalized = [replaced[name_of[id(p)]] for p in engine.settings.penalized]
        _, total = engine._objective(outputs, self.batch, penalized)
        decay = engine.settings.weight_decay
        if decay is not None:
            if replaced is not None:
                decayed = [replaced[name_of[id(p)]] for p in decay.params]
            term = decay.penalty(engine._lr_factor, engine.state.epoch, decayed)
            if term is not None:
                total = total + term
        return total

    @torch.enable_grad()
    def __call__(self) -> torch.Tensor:
        self.engine.optimizer.zero_grad(set_to_none=True)
        total = self._total(self.engine.model(self.batch.x))
        total.backward()
        return total.detach()

    def loss_of(self, params: Sequence[torch.Tensor]) -> torch.Tensor:
        replaced = dict(zip(self.names, params, strict=True))
        outputs = torch.func.functional_call(self.engine.model, replaced, (self.batch.x,))
        return self._total(outputs, replaced)
