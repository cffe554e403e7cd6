"""Series: an .npz whose ``x`` holds C channels of length L per sample, possibly of different
lengths (NaN after the end of a shorter series, see nntune.padding).

``resolve_layout`` reads how ``x`` is laid out (data.layout, or a guess from the shape with its
reason); ``as_series`` brings any layout to (N, C, L) float32 with trailing NaN padding; the
series steps of data.preprocess (``znorm``, ``standardize``, ``resample``) are fitted on the
training part and travel in the checkpoint as plain numbers, and ``series_inputs`` turns a
user's nested lists into model input at prediction time with the same steps.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nntune.errors import DataError
from nntune.registry import Registry

SERIES_LAYOUTS = ("NCL", "NLC")
IMAGE_LAYOUTS = ("NCHW", "NHW")
# a 3-D array is a series when one of its two sample axes is at least this many times the
# other (channels are few, steps are many: (6, 100), (128, 3)); near-square (28, 28) or
# (32, 48) samples are images
SERIES_ASPECT = 2.0


def resolve_layout(x: Any, given: str, steps: Sequence[str] = ()) -> tuple[str, str]:
    """(layout, reason): NCL, NLC, NCHW, NHW, or ``flat`` (rows of features, the table path)
    for ``x`` as loaded; ``steps`` are the names in data.preprocess (a series step on a 2-D
    array reads its rows as one-channel series)."""
    if not isinstance(x, np.ndarray):
        if given != "auto":
            raise DataError(f"data.layout = {given}: it applies to an .npz's x, not to a table")
        return "flat", "a table: columns of features"
    rank = x.ndim
    allowed = {2: ("NCL", "NLC"), 3: ("NCL", "NLC", "NHW"), 4: ("NCHW",)}.get(rank, ())
    if given != "auto":
        if given not in allowed:
            raise DataError(
                f"data.layout = {given}: x has shape {list(x.shape)} (rank {rank}); "
                f"allowed for it: auto, {', '.join(allowed) or 'none'}"
            )
        return given, "data.layout"
    series_steps = [s for s in steps if s in SERIES_ONLY]
    if rank == 2:
        if x.dtype.kind == "f" and bool(np.isnan(x).any()):
            return "NCL", "2-D x with NaN: one-channel series of different lengths (NaN pads)"
        if series_steps:
            return "NCL", f"2-D x with series step(s) {series_steps}: one-channel series"
        return "flat", "2-D x: a row of features per sample (1-D archs read it as one channel)"
    if rank == 3:
        a, b = int(x.shape[1]), int(x.shape[2])
        if x.dtype == np.uint8:
            return "NHW", "3-D uint8 x: gray images"
        if b >= SERIES_ASPECT * a:
            return "NCL", f"3-D x of {a} × {b}: {a} channel(s) of {b} steps (fewer channels)"
        if a >= SERIES_ASPECT * b:
            return "NLC", f"3-D x of {a} × {b}: {a} steps of {b} channel(s) (fewer channels)"
        return "NHW", f"3-D x of near-square {a} × {b} samples: gray images"
    if rank == 4:
        return "NCHW", "4-D x: images (channels, height, width)"
    return "flat", f"x of rank {rank}: flattened to features"


def as_series(x: np.ndarray, layout: str, where: str) -> np.ndarray:
    """(N, C, L) float32 from an array laid out as ``layout`` (NCL or NLC; 2-D: one channel),
    NaN only after each series' end (a NaN step inside a series is filled from its
    neighbours; infinite values are an error)."""
    array = np.asarray(x)
    if array.dtype.kind not in "iufb":
        raise DataError(f"{where}: series values must be numbers, got dtype {array.dtype}")
    array = array.astype(np.float32)
    if array.ndim == 2:
        array = array[:, None, :]
    elif layout == "NLC":
        array = array.transpose(0, 2, 1)
    if array.ndim != 3:
        raise DataError(f"{where}: a series needs x of shape [N, C, L] or [N, L]")
    if np.isinf(array).any():
        raise DataError(f"{where}: the series hold infinite values; clean the data")
    lengths = lengths_of(array)
    empty = np.flatnonzero(lengths == 0)
    if len(empty):
        raise DataError(
            f"{where}: {len(empty)} series have no values at all (rows {empty[:5].tolist()}); "
            "drop them"
        )
    return _fill_gaps(np.ascontiguousarray(array), lengths)


def lengths_of(series: np.ndarray) -> np.ndarray:
    """(N,) each series' length: one past its last step where some channel has a value."""
    present = ~np.isnan(series).all(axis=1)  # (N, L)
    steps = np.arange(1, series.shape[2] + 1)
    return (present * steps).max(axis=1)


def _fill_gaps(series: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """NaN inside a series' length (a missing reading) becomes the last value before it, or
    the first after it at the start; the padding after the end stays NaN."""
    inside = np.arange(series.shape[2])[None, :] < lengths[:, None]  # (N, L)
    gaps = np.isnan(series) & inside[:, None, :]
    if not gaps.any():
        return series
    n, c, length = series.shape
    flat = series.reshape(n * c, length)
    known = ~np.isnan(flat)
    # index of the last known step at or before each step (forward fill), then backward
    last = np.where(known, np.arange(length)[None, :], 0)
    np.maximum.accumulate(last, axis=1, out=last)
    filled = np.take_along_axis(flat, last, axis=1)
    first = np.argmax(known, axis=1)
    lead = np.isnan(filled)
    filled[lead] = flat[np.nonzero(lead)[0], first[np.nonzero(lead)[0]]]
    filled = filled.reshape(n, c, length)
    # a channel with no value at all in a series: zeros (after znorm: the mean)
    filled = np.where(np.isnan(filled) & inside[:, None, :], 0.0, filled)
    return np.where(gaps, filled, series).astype(np.float32)


def pad_to(series: np.ndarray, length: int) -> np.ndarray:
    """``series`` NaN-padded (or, never: cut) to ``length`` steps."""
    if series.shape[2] >= length:
        return series
    pad = np.full((*series.shape[:2], length - series.shape[2]), np.nan, dtype=np.float32)
    return np.concatenate([series, pad], axis=2)


# --- series steps of data.preprocess --------------------------------------------------------


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeriesStep:
    """Fitted on the training series (N, C, L) with NaN padding; applied to any part."""

    def __init__(self, options: BaseModel) -> None:
        self.options = options

    def fit(self, series: np.ndarray) -> None:
        pass

    def transform(self, series: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


SERIES_STEPS: Registry[type[SeriesStep]] = Registry("series step")


@SERIES_STEPS.register("znorm", options=_Options, aliases=("znormalize",))
class ZNorm(SeriesStep):
    """Each series and channel to zero mean and unit variance over its own steps (the
    convention of the time-series archives); fitted on nothing, applied to every input."""

    def transform(self, series: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"), _quiet():
            mean = np.nanmean(series, axis=2, keepdims=True)
            std = np.nanstd(series, axis=2, keepdims=True)
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)  # a flat channel: centred
        return ((series - np.nan_to_num(mean)) / std).astype(np.float32)


@SERIES_STEPS.register("standardize", options=_Options, aliases=("standard", "zscore"))
class ChannelStandardize(SeriesStep):
    """Each channel to zero mean and unit variance over all training series' steps."""

    def fit(self, series: np.ndarray) -> None:
        with _quiet():
            self.mean_ = np.nan_to_num(np.nanmean(series, axis=(0, 2)))
            std = np.nanstd(series, axis=(0, 2))
        self.std_ = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)

    def transform(self, series: np.ndarray) -> np.ndarray:
        return ((series - self.mean_[None, :, None]) / self.std_[None, :, None]).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": [float(v) for v in self.mean_], "std": [float(v) for v in self.std_]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean_ = np.asarray(state["mean"], dtype=np.float64)
        self.std_ = np.asarray(state["std"], dtype=np.float64)


class ResampleOptions(_Options):
    length: int = Field(..., ge=2, description="steps of every series after resampling")


@SERIES_STEPS.register("resample", options=ResampleOptions)
class Resample(SeriesStep):
    """Each series stretched or shrunk to ``length`` steps (linear interpolation over its own
    steps): series of different lengths become one length, long ones get cheaper."""

    options: ResampleOptions

    def transform(self, series: np.ndarray) -> np.ndarray:
        target = self.options.length
        lengths = lengths_of(series)
        # fractional source position of each target step, per series
        grid = np.linspace(0.0, 1.0, target)[None, :] * (lengths[:, None] - 1)  # (N, T)
        low = np.floor(grid).astype(np.int64)
        high = np.minimum(low + 1, np.maximum(lengths[:, None] - 1, 0))
        frac = (grid - low)[:, None, :]
        take = np.take_along_axis
        low_v = take(series, np.broadcast_to(low[:, None, :], (*series.shape[:2], target)), 2)
        high_v = take(series, np.broadcast_to(high[:, None, :], (*series.shape[:2], target)), 2)
        return (low_v * (1.0 - frac) + high_v * frac).astype(np.float32)


# the steps that only a series has (a 2-D x with one of them is read as series)
SERIES_ONLY = frozenset({"znorm", "znormalize", "resample"})


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """numpy's "mean of empty slice" warnings for all-NaN slices (handled by the callers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def build_steps(components: Sequence[Any]) -> list[tuple[str, dict[str, Any], SeriesStep]]:
    """The series steps of data.preprocess (name, options, step); a table step is an error
    naming the series steps."""
    steps = []
    for i, component in enumerate(components):
        key = f"data.preprocess[{i}]"
        if component.name not in SERIES_STEPS:
            raise DataError(
                f"{key} = {component.name}: the data are series (data.layout NCL/NLC), which "
                f"take the series steps {', '.join(SERIES_STEPS.list())}"
            )
        entry = SERIES_STEPS.get(component.name, key=key)
        options = entry.parse_options(
            {k: v for k, v in component.options.items() if v is not None}, key
        )
        steps.append((entry.name, dict(component.options), entry.builder(options)))
    return steps


def fit_steps(steps: list[tuple[str, dict[str, Any], SeriesStep]], train: np.ndarray) -> np.ndarray:
    for _, _, step in steps:
        step.fit(train)
        train = step.transform(train)
    return train


def apply_steps(
    steps: list[tuple[str, dict[str, Any], SeriesStep]], series: np.ndarray
) -> np.ndarray:
    for _, _, step in steps:
        series = step.transform(series)
    return series


def steps_state(steps: list[tuple[str, dict[str, Any], SeriesStep]]) -> list[dict[str, Any]]:
    return [{"name": n, "options": o, "state": s.state_dict()} for n, o, s in steps]


def steps_from_state(saved: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], SeriesStep]]:
    from nntune.config import Component

    steps = build_steps([Component(name=s["name"], options=s["options"]) for s in saved])
    for (_, _, step), state in zip(steps, saved, strict=True):
        step.load_state_dict(state["state"])
    return steps


def series_inputs(raw: Any, facts: dict[str, Any]) -> np.ndarray:
    """A user's series → model input: :func:`series_samples`, then the run's steps."""
    return apply_steps(steps_from_state(facts["steps"]), series_samples(raw, facts))


def series_samples(raw: Any, facts: dict[str, Any]) -> np.ndarray:
    """A user's series, checked and NaN-padded to the run's longest: (N, C, L) float32 from
    an array (N, C, L) / (N, L), or nested lists ``[[[channel values...], ...], ...]`` (for
    one channel also ``[[values...], ...]``) of any length up to the run's longest; null
    counts as missing. DataError names the sample and the shape this run reads."""
    channels, longest = int(facts["channels"]), int(facts["input_length"])
    if isinstance(raw, np.ndarray) and raw.dtype != object:
        samples: list[Any] = list(raw) if raw.ndim >= 2 else [raw]
    elif isinstance(raw, (list, tuple)):
        samples = list(raw)
    else:
        raise DataError(
            f"inputs: series as a list of samples, each [C][L] (C = {channels}) or, with one "
            f"channel, [L]; got {type(raw).__name__}"
        )
    rows = []
    for i, sample in enumerate(samples):
        try:
            array = np.asarray(sample, dtype=np.float32)
        except (TypeError, ValueError):
            raise DataError(
                f"inputs[{i}]: a series is [C][L] numbers (C = {channels}); its channels must "
                "have one length (pad shorter ones with NaN or null at the end)"
            ) from None
        if array.ndim == 1 and channels == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[0] != channels:
            raise DataError(
                f"inputs[{i}]: shape {list(array.shape)}; this run reads series of "
                f"{channels} channel(s): [C][L] with C = {channels}"
            )
        if array.shape[1] > longest or array.shape[1] < 1:
            raise DataError(
                f"inputs[{i}]: {array.shape[1]} steps; this run takes 1 to {longest} steps "
                "(the longest series it was trained on)"
            )
        rows.append(pad_to(array[None], longest)[0])
    if not rows:
        raise DataError("inputs: no series given")
    return as_series(np.stack(rows), "NCL", "inputs")
