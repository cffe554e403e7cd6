"""Variable-length series: NaN after the end of a series marks it as shorter than the longest.

A series batch is ``(B, C, L)`` (or ``(B, L)``, one channel). A step is padding when every
channel is NaN there; a series' length is one past its last step with a value. The data layer
(which pads), the augmentations (which must keep each series inside its length) and the
models (which mask the padding) read lengths the same way, from this module.
"""

from __future__ import annotations

import torch


def step_values(x: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: the steps where at least one channel has a value."""
    finite = ~torch.isnan(x)
    return finite if x.dim() == 2 else finite.any(dim=1)


def series_lengths(x: torch.Tensor) -> torch.Tensor:
    """(B,) int64: each series' length (a NaN step inside a series does not end it)."""
    present = step_values(x)
    steps = torch.arange(1, present.shape[1] + 1, device=x.device).expand_as(present)
    return (steps * present).amax(dim=1)


def step_mask(x: torch.Tensor) -> torch.Tensor | None:
    """(B, L) bool of the steps inside each series, or None when no series is padded (the
    common case: fixed-length data pays for one isnan). While a model is traced for export
    the mask is always computed: a traced graph keeps one branch, and it must be the one that
    reads padding (on a batch without any the mask is all ones and the outputs are the same)."""
    if not torch.jit.is_tracing() and not torch.isnan(x).any():
        return None
    lengths = series_lengths(x)
    return torch.arange(x.shape[-1], device=x.device).unsqueeze(0) < lengths.unsqueeze(1)


def fill_padding(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``x`` with NaN replaced by 0, and its step mask (None: no padding)."""
    mask = step_mask(x)
    if mask is None:
        return x, None  # not traced: no NaN to replace
    return torch.nan_to_num(x, nan=0.0), mask
