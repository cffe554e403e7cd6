"""Learning-rate schedules as pure functions of the step, composable with warmup.

A schedule gives the factor the configured lr is multiplied by at optimizer step ``t``. With a
warmup of W steps, the factor ramps from ~0 to the schedule's own value over the first W steps,
and the schedule itself runs over the remaining steps (so a cosine ends at its minimum at the
end of training, not W steps later). ``plateau`` is the one schedule that also reads a metric.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nntune.errors import ConfigError
from nntune.registry import Registry


@dataclass(frozen=True)
class Horizon:
    """How long the run is, in optimizer steps.

    ``epoch_starts`` (the step each epoch starts at) is given when epochs differ in length (a
    growing batch size); otherwise every epoch has ``steps_per_epoch`` steps.
    """

    total_steps: int
    steps_per_epoch: int
    epoch_starts: tuple[int, ...] = ()

    def steps_for(self, epochs: float) -> int:
        """The step at which ``epochs`` (possibly fractional) epochs of the run have passed."""
        if not self.epoch_starts:
            return round(epochs * self.steps_per_epoch)
        whole = int(epochs)
        if whole >= len(self.epoch_starts):
            return self.total_steps + round((epochs - len(self.epoch_starts)) * self._last_len())
        end = (
            self.epoch_starts[whole + 1] if whole + 1 < len(self.epoch_starts) else self.total_steps
        )
        start = self.epoch_starts[whole]
        return start + round((epochs - whole) * (end - start))

    def epoch_of(self, step: int) -> float:
        """Epochs passed at ``step`` (fractional)."""
        if not self.epoch_starts:
            return step / self.steps_per_epoch
        whole = bisect.bisect_right(self.epoch_starts, step) - 1
        start = self.epoch_starts[whole]
        end = (
            self.epoch_starts[whole + 1] if whole + 1 < len(self.epoch_starts) else self.total_steps
        )
        if step >= end:  # past the planned run
            return len(self.epoch_starts) + (step - self.total_steps) / self._last_len()
        return whole + (step - start) / max(1, end - start)

    def epoch_start(self, step: int) -> int:
        """The first step of the epoch ``step`` is in."""
        if not self.epoch_starts:
            return (step // self.steps_per_epoch) * self.steps_per_epoch
        return self.epoch_starts[bisect.bisect_right(self.epoch_starts, step) - 1]

    def _last_len(self) -> int:
        return max(1, self.total_steps - self.epoch_starts[-1])


class ScheduleOptions(BaseModel):
    """Options every schedule takes."""

    model_config = ConfigDict(extra="forbid")

    warmup: float = Field(
        0, ge=0.0, description="warmup length: whole steps (>= 1), or a fraction of the run (< 1)"
    )
    warmup_shape: Literal["linear", "cosine"] = "linear"
    interval: Literal["step", "epoch"] = Field(
        "step", description="update the lr every optimizer step or once per epoch"
    )

    @field_validator("warmup")
    @classmethod
    def _whole_steps(cls, value: float) -> float:
        if value >= 1 and value != int(value):
            raise ValueError("a warmup of 1 or more is a number of steps and must be whole")
        return value


# factor(t, T): t counts steps after warmup, T is the number of steps after warmup
FactorFn = Callable[[int, int], float]
# (options, Horizon) -> a factor function, or a whole Schedule (one_cycle, plateau)
ScheduleBuilder = Callable[..., "FactorFn | Schedule"]
SCHEDULES: Registry[ScheduleBuilder] = Registry("schedule")


class Schedule:
    """A configured schedule: lr factor (and optionally a momentum) at each step."""

    def __init__(
        self,
        factor_fn: FactorFn,
        options: ScheduleOptions,
        horizon: Horizon,
        momentum_fn: Callable[[int, int], float] | None = None,
    ) -> None:
        self.factor_fn = factor_fn
        self.momentum_fn = momentum_fn
        self.options = options
        self.horizon = horizon
        warmup = options.warmup
        self.warmup_steps = int(warmup) if warmup >= 1 else round(warmup * horizon.total_steps)
        if self.warmup_steps >= horizon.total_steps and self.warmup_steps > 0:
            raise ConfigError(
                f"schedule.warmup = {warmup}: {self.warmup_steps} warmup steps leave none of the "
                f"{horizon.total_steps} steps of the run"
            )

    def _at(self, step: int) -> int:
        if self.options.interval == "epoch":
            return self.horizon.epoch_start(step)
        return step

    def factor(self, step: int) -> float:
        t = self._at(step)
        w = self.warmup_steps
        main_steps = max(1, self.horizon.total_steps - w)
        if t < w:
            base = self.factor_fn(0, main_steps)
            progress = (t + 1) / (w + 1)
            if self.options.warmup_shape == "cosine":
                progress = 0.5 * (1.0 - math.cos(math.pi * progress))
            return base * progress
        return self.factor_fn(t - w, main_steps)

    def momentum(self, step: int) -> float | None:
        if self.momentum_fn is None:
            return None
        t = self._at(step)
        w = self.warmup_steps
        return self.momentum_fn(max(0, t - w), max(1, self.horizon.total_steps - w))

    # plateau overrides these three; pure schedules have no state
    def observe(self, metrics: dict[str, float]) -> None:
        """Called after each validation with the epoch's logged values."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def build_schedule(name: str, options: BaseModel, horizon: Horizon) -> Schedule:
    entry = SCHEDULES.get(name, key="schedule")
    assert isinstance(options, ScheduleOptions)
    made = entry.builder(options, horizon)
    if isinstance(made, Schedule):
        return made
    return Schedule(made, options, horizon)


def _epochs(horizon: Horizon, epochs: float) -> int:
    return max(1, horizon.steps_for(epochs))


@SCHEDULES.register("constant", options=ScheduleOptions, aliases=("none", "fixed"))
def constant(options: ScheduleOptions, horizon: Horizon) -> FactorFn:
    """The configured lr throughout (after any warmup)."""
    return lambda t, total: 1.0


class StepOptions(ScheduleOptions):
    step_size: float = Field(10, gt=0.0, description="epochs between decays")
    gamma: float = Field(0.1, gt=0.0, description="factor applied at each decay")


@SCHEDULES.register("step", options=StepOptions, aliases=("step_decay",))
def step(options: StepOptions, horizon: Horizon) -> FactorFn:
    """lr · gamma^⌊epoch / step_size⌋."""
    size = _epochs(horizon, options.step_size)
    return lambda t, total: options.gamma ** (t // size)


class MultiStepOptions(ScheduleOptions):
    milestones: list[float] = Field(default_factory=lambda: [30.0, 60.0, 90.0])
    gamma: float = Field(0.1, gt=0.0)
    factors: list[float] | None = Field(
        None, description="piecewise-constant factors, one more than milestones (overrides gamma)"
    )


@SCHEDULES.register("multistep", options=MultiStepOptions, aliases=("piecewise",))
def multistep(options: MultiStepOptions, horizon: Horizon) -> FactorFn:
    """Piecewise constant: × gamma at each milestone epoch (or the given factors)."""
    bounds = sorted(_epochs(horizon, m) for m in options.milestones)
    factors = options.factors
    if factors is not None and len(factors) != len(bounds) + 1:
        raise ConfigError(
            f"schedule.factors needs {len(bounds) + 1} values (one more than milestones), "
            f"got {len(factors)}"
        )
    if factors is None:
        factors = [options.gamma**i for i in range(len(bounds) + 1)]
    chosen = factors
    return lambda t, total: chosen[bisect.bisect_right(bounds, t)]


class ExponentialOptions(ScheduleOptions):
    gamma: float = Field(0.95, gt=0.0, description="factor per epoch")


@SCHEDULES.register("exponential", options=ExponentialOptions, aliases=("exp",))
def exponential(options: ExponentialOptions, horizon: Horizon) -> FactorFn:
    """lr · gamma^epoch (continuous in steps unless interval: epoch)."""
    return lambda t, total: options.gamma ** horizon.epoch_of(t)


class InverseTimeOptions(ScheduleOptions):
    k: float = Field(0.5, ge=0.0, description="decay rate per epoch")


@SCHEDULES.register("inverse_time", options=InverseTimeOptions, aliases=("inverse",))
def inverse_time(options: InverseTimeOptions, horizon: Horizon) -> FactorFn:
    """lr / (1 + k · epoch)."""
    return lambda t, total: 1.0 / (1.0 + options.k * horizon.epoch_of(t))


class CosineOptions(ScheduleOptions):
    min_factor: float = Field(0.0, ge=0.0, le=1.0, description="final lr as a fraction of lr")


def _cosine(t: float, total: float, low: float) -> float:
    return low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t / total)))


@SCHEDULES.register("cosine", options=CosineOptions, aliases=("cosine_annealing",))
def cosine(options: CosineOptions, horizon: Horizon) -> FactorFn:
    """Half a cosine from lr down to min_factor · lr over the run (Loshchilov & Hutter 2017)."""
    return lambda t, total: _cosine(t, total, options.min_factor)


class CosineRestartsOptions(CosineOptions):
    period: float = Field(10, gt=0.0, description="epochs in the first cycle")
    mult: float = Field(1.0, ge=1.0, description="each cycle is this many times longer")


@SCHEDULES.register("cosine_restarts", options=CosineRestartsOptions, aliases=("sgdr",))
def cosine_restarts(options: CosineRestartsOptions, horizon: Horizon) -> FactorFn:
    """SGDR: cosine cycles restarting at lr, each ``mult`` times longer than the last."""
    first = _epochs(horizon, options.period)

    def factor(t: int, total: int) -> float:
        length, start = first, 0
        while t >= start + length:
            start += length
            length = max(1, round(length * options.mult))
        return _cosine(t - start, length, options.min_factor)

    return factor


class CyclicOptions(ScheduleOptions):
    base_factor: float = Field(0.1, gt=0.0, le=1.0, description="lowest lr as a fraction of lr")
    half_period: float = Field(2, gt=0.0, description="epochs from the low to the high lr")


@SCHEDULES.register("cyclic", options=CyclicOptions, aliases=("triangular", "clr"))
def cyclic(options: CyclicOptions, horizon: Horizon) -> FactorFn:
    """Triangular cyclical lr between base_factor · lr and lr (Smith 2017)."""
    half = _epochs(horizon, options.half_period)

    def factor(t: int, total: int) -> float:
        phase = (t % (2 * half)) / half  # 0..2
        height = phase if phase <= 1 else 2 - phase
        return options.base_factor + (1.0 - options.base_factor) * height

    return factor


class OneCycleOptions(ScheduleOptions):
    pct_start: float = Field(0.3, gt=0.0, lt=1.0, description="fraction of the run spent rising")
    div_factor: float = Field(25.0, ge=1.0, description="initial lr = lr / div_factor")
    final_div_factor: float = Field(1e4, ge=1.0, description="final lr = initial lr / this")
    cycle_momentum: bool = Field(
        False, description="cycle momentum (or Adam's beta1) inversely, 0.95 → 0.85 → 0.95"
    )
    base_momentum: float = Field(0.85, ge=0.0, lt=1.0)
    max_momentum: float = Field(0.95, ge=0.0, lt=1.0)


def _anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


@SCHEDULES.register("one_cycle", options=OneCycleOptions, aliases=("onecycle", "1cycle"))
def one_cycle(options: OneCycleOptions, horizon: Horizon) -> Schedule:
    """1cycle (Smith & Topin 2019), as torch's OneCycleLR: lr is the peak."""
    initial = 1.0 / options.div_factor
    final = initial / options.final_div_factor

    def phase(t: int, total: int) -> tuple[int, float]:
        end_up = options.pct_start * total - 1.0
        end = total - 1.0
        if t <= end_up:
            return 0, (t / end_up if end_up > 0 else 1.0)
        return 1, min(1.0, (t - end_up) / max(1e-12, end - end_up))

    def factor(t: int, total: int) -> float:
        part, pct = phase(t, total)
        return _anneal(initial, 1.0, pct) if part == 0 else _anneal(1.0, final, pct)

    def momentum(t: int, total: int) -> float:
        part, pct = phase(t, total)
        high, low = options.max_momentum, options.base_momentum
        return _anneal(high, low, pct) if part == 0 else _anneal(low, high, pct)

    return Schedule(factor, options, horizon, momentum if options.cycle_momentum else None)


class PolynomialOptions(ScheduleOptions):
    power: float = Field(1.0, gt=0.0)
    end_factor: float = Field(0.0, ge=0.0, le=1.0)


@SCHEDULES.register("polynomial", options=PolynomialOptions, aliases=("poly", "linear_decay"))
def polynomial(options: PolynomialOptions, horizon: Horizon) -> FactorFn:
    """(1 - t/T)^power from lr down to end_factor · lr."""
    end = options.end_factor
    return lambda t, total: end + (1.0 - end) * (1.0 - min(1.0, t / total)) ** options.power


class PlateauOptions(ScheduleOptions):
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    factor: float = Field(0.1, gt=0.0, lt=1.0, description="multiply the lr by this on a plateau")
    patience: int = Field(5, ge=0, description="epochs without improvement before reducing")
    min_delta: float = Field(1e-4, ge=0.0)
    cooldown: int = Field(0, ge=0)
    min_factor: float = Field(0.0, ge=0.0, description="never go below min_factor · lr")


class Plateau(Schedule):
    """Reduce the lr by ``factor`` when the monitored value stops improving (Keras/torch)."""

    options: PlateauOptions

    def __init__(self, options: PlateauOptions, horizon: Horizon) -> None:
        super().__init__(lambda t, total: self.current, options, horizon)
        self.mode = options.mode if options.mode != "auto" else infer_mode(options.monitor)
        self.current = 1.0
        self.best: float | None = None
        self.bad_epochs = 0
        self.cooldown_left = 0

    def observe(self, metrics: dict[str, float]) -> None:
        if self.options.monitor not in metrics:
            raise ConfigError(
                f"schedule plateau: monitor '{self.options.monitor}' is not logged "
                f"(logged: {', '.join(sorted(metrics))})"
            )
        value = metrics[self.options.monitor]
        if value is None or not math.isfinite(value):
            return
        if is_improvement(value, self.best, self.mode, self.options.min_delta):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:  # epochs in cooldown do not count towards the patience
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.options.patience:
            self.current = max(self.options.min_factor, self.current * self.options.factor)
            self.bad_epochs = 0
            self.cooldown_left = self.options.cooldown

    def state_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "cooldown_left": self.cooldown_left,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.current = float(state["current"])
        self.best = state["best"]
        self.bad_epochs = int(state["bad_epochs"])
        self.cooldown_left = int(state["cooldown_left"])


@SCHEDULES.register("plateau", options=PlateauOptions, aliases=("reduce_on_plateau",))
def plateau(options: PlateauOptions, horizon: Horizon) -> Schedule:
    """Reduce on plateau: × factor after ``patience`` epochs without improvement."""
    return Plateau(options, horizon)


class SwaSchedule(Schedule):
    """From ``start_step`` on, anneal from the inner schedule's lr to ``swa_factor`` · lr over
    ``anneal_steps`` (cos or linear, as torch's SWALR) and hold it: the constant or cyclical lr
    that stochastic weight averaging samples weights with (Izmailov et al. 2018)."""

    def __init__(
        self, inner: Schedule, start_step: int, swa_factor: float, anneal_steps: int, shape: str
    ) -> None:
        super().__init__(inner.factor_fn, inner.options, inner.horizon, inner.momentum_fn)
        self.inner = inner
        self.start_step = start_step
        self.swa_factor = swa_factor
        self.anneal_steps = anneal_steps
        self.shape = shape

    def factor(self, step: int) -> float:
        if step < self.start_step:
            return self.inner.factor(step)
        start = self.inner.factor(self.start_step)
        progress = (
            1.0
            if self.anneal_steps == 0
            else min(1.0, (step - self.start_step) / self.anneal_steps)
        )
        if self.shape == "cos":
            progress = 0.5 * (1.0 - math.cos(math.pi * progress))
        return start + (self.swa_factor - start) * progress

    def momentum(self, step: int) -> float | None:
        return self.inner.momentum(step)

    def observe(self, metrics: dict[str, float]) -> None:
        self.inner.observe(metrics)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


# --- monitor logic shared with early stopping and checkpoints --------------------------------

LOWER_IS_BETTER = ("loss", "rmse", "mae", "mse", "error", "nonfinite")


def infer_mode(monitor: str) -> str:
    """min for losses and errors, max for accuracy, f1, auc, r2."""
    return "min" if any(word in monitor for word in LOWER_IS_BETTER) else "max"


def is_improvement(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta
