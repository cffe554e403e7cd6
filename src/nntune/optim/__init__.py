"""Optimizers, learning-rate schedules, penalties and clipping."""

from nntune.optim.optimizers import (
    OPTIMIZERS,
    build_optimizer,
    decayed_parameters,
    parameter_groups,
)
from nntune.optim.regularize import clip_gradients, grad_norm, penalty
from nntune.optim.schedules import (
    SCHEDULES,
    Horizon,
    Schedule,
    build_schedule,
    infer_mode,
    is_improvement,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Horizon",
    "Schedule",
    "build_optimizer",
    "build_schedule",
    "clip_gradients",
    "decayed_parameters",
    "grad_norm",
    "infer_mode",
    "is_improvement",
    "parameter_groups",
    "penalty",
]
