"""Optimizers, learning-rate schedules, penalties and clipping."""

from nntune.optim.optimizers import (
    DECAY_OPTIONS,
    OPTIMIZERS,
    StepClosure,
    build_optimizer,
    decayed_parameters,
    needs_closure,
    parameter_groups,
)
from nntune.optim.regularize import WeightDecay, adaptive_clip, clip_gradients, grad_norm, penalty
from nntune.optim.schedules import (
    SCHEDULES,
    Horizon,
    Schedule,
    SwaSchedule,
    build_schedule,
    infer_mode,
    is_improvement,
)

__all__ = [
    "DECAY_OPTIONS",
    "OPTIMIZERS",
    "SCHEDULES",
    "Horizon",
    "Schedule",
    "StepClosure",
    "SwaSchedule",
    "WeightDecay",
    "adaptive_clip",
    "build_optimizer",
    "build_schedule",
    "clip_gradients",
    "decayed_parameters",
    "grad_norm",
    "infer_mode",
    "is_improvement",
    "needs_closure",
    "parameter_groups",
    "penalty",
]
