"""Preprocessing steps, fitted on the training part only and saved with the checkpoint.

Each step is a small fit/transform class over a DataFrame. The arithmetic is written here rather
than wrapping scikit-learn transformers because the fitted state must travel inside checkpoints
that are read with ``torch.load(weights_only=True)``: plain tensors, numbers and strings, never
pickled objects. Every step's state is exactly that.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from nntune.errors import DataError
from nntune.registry import Registry


class StepOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: list[str] | None = Field(
        None, description="columns to transform (default: every column the step applies to)"
    )


class Preprocessor:
    """Base class: ``fit`` learns from the training part, ``transform`` applies to any part.

    The pipeline fits a step and then transforms the very frame it was fitted on: that first
    transform is the *training pass*. Steps that treat training rows differently (``outliers``
    with ``method: remove``, ``lags``, ``differences``) drop rows there only, keeping the index
    labels of the rows that remain so the pipeline can drop the matching targets. Every later
    transform (validation, test, prediction inputs) keeps every row.
    """

    name = ""

    def __init__(self, options: StepOptions) -> None:
        self.options = options
        self._fitted_frame: weakref.ref[pd.DataFrame] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fitted_frame": None}  # a weak reference does not pickle

    def _remember_training(self, frame: pd.DataFrame) -> None:
        """Called by ``fit`` of steps that need to recognise their training pass."""
        self._fitted_frame = weakref.ref(frame)

    def _is_training_pass(self, frame: pd.DataFrame) -> bool:
        """True once: for the first transform of the frame given to ``fit``."""
        fitted = self._fitted_frame() if self._fitted_frame is not None else None
        if fitted is not None and fitted is frame:
            self._fitted_frame = None
            return True
        return False

    def fit(self, frame: pd.DataFrame) -> None:
        raise NotImplementedError

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _columns(self, frame: pd.DataFrame, numeric: bool | None) -> list[str]:
        if self.options.columns is not None:
            missing = [c for c in self.options.columns if c not in frame.columns]
            if missing:
                raise DataError(
                    f"data.preprocess {self.name}: column(s) {missing} not found "
                    f"(columns: {', '.join(map(str, frame.columns))})"
                )
            return list(self.options.columns)
        if numeric is None:
            return list(frame.columns)
        return [c for c in frame.columns if is_numeric(frame[c]) == numeric]


def is_numeric(column: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column)) and not pd.api.types.is_bool_dtype(column)


def _tensor(values: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64))


def _array(value: torch.Tensor) -> np.ndarray:
    return value.detach().cpu().numpy()


def _numeric_block(frame: pd.DataFrame, columns: list[str], step: str) -> np.ndarray:
    bad = [c for c in columns if not is_numeric(frame[c])]
    if bad:
        raise DataError(
            f"data.preprocess {step}: column(s) {bad} are not numeric; put an encoder "
            "(onehot or label_encode) before this step"
        )
    return frame[columns].to_numpy(dtype=np.float64)


PREPROCESS: Registry[type[Preprocessor]] = Registry("preprocess step", plural="preprocess steps")


class _ColumnAffine(Preprocessor):
    """x → (x - shift) / scale per column; subclasses choose shift and scale."""

    def fit(self, frame: pd.DataFrame) -> None:
        self.columns_ = self._columns(frame, numeric=True)
        block = _numeric_block(frame, self.columns_, self.name)
        self.shift_, self.scale_ = self._fit_block(block)

    def _fit_block(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        block = _numeric_block(frame, self.columns_, self.name)
        out[self.columns_] = (block - self.shift_) / self.scale_
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns_),
            "shift": _tensor(self.shift_),
            "scale": _tensor(self.scale_),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns_ = list(state["columns"])
        self.shift_ = _array(state["shift"])
        self.scale_ = _array(state["scale"])


def _safe_scale(scale: np.ndarray) -> np.ndarray:
    # a constant column keeps scale 1 instead of dividing by zero
    return np.where(np.isfinite(scale) & (scale > 1e-12), scale, 1.0)


@PREPROCESS.register("standardize", options=StepOptions, aliases=("standard", "zscore"))
class Standardize(_ColumnAffine):
    """Zero mean and unit variance per column (constant columns are only centred)."""

    name = "standardize"

    def _fit_block(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.nanmean(block, axis=0), _safe_scale(np.nanstd(block, axis=0))


class MinMaxOptions(StepOptions):
    feature_range: tuple[float, float] = (0.0, 1.0)

    @field_validator("feature_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] >= value[1]:
            raise ValueError(f"feature_range must be [low, high] with low < high, got {value}")
        return value


@PREPROCESS.register("minmax", options=MinMaxOptions)
class MinMax(_ColumnAffine):
    """Scale each column to [0, 1] (or ``feature_range``) using the training min and max."""

    name = "minmax"
    options: MinMaxOptions

    def _fit_block(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low, high = self.options.feature_range
        data_min, data_max = np.nanmin(block, axis=0), np.nanmax(block, axis=0)
        scale = _safe_scale(data_max - data_min) / (high - low)
        return data_min - low * scale, scale


class ZcaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    eps: float = Field(1e-5, gt=0.0, description="added to the eigenvalues")


class WhitenOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    eps: float = Field(1e-5, gt=0.0, description="added to the eigenvalues")
    n_components: int | None = Field(None, ge=1, description="pca_whiten only: keep this many")


class _Whitening(Preprocessor):
    """Decorrelate and scale all columns with the training covariance's eigenvectors."""

    options: WhitenOptions | ZcaOptions  # type: ignore[assignment]
    zca = True

    def fit(self, frame: pd.DataFrame) -> None:
        block = _numeric_block(frame, list(frame.columns), self.name)
        self.columns_ = list(frame.columns)
        self.mean_ = block.mean(axis=0)
        cov = np.cov(block - self.mean_, rowvar=False).reshape(block.shape[1], block.shape[1])
        eigvals, eigvecs = np.linalg.eigh(cov)
        order = np.argsort(eigvals)[::-1]
        eigvals, eigvecs = np.clip(eigvals[order], 0.0, None), eigvecs[:, order]
        keep = getattr(self.options, "n_components", None) or len(eigvals)
        if keep > len(eigvals):
            raise DataError(
                f"data.preprocess {self.name}: n_components={keep} but the data has only "
                f"{len(eigvals)} features"
            )
        scaled = eigvecs[:, :keep] / np.sqrt(eigvals[:keep] + self.options.eps)
        # ZCA rotates back to the original axes; PCA whitening keeps the principal axes
        self.matrix_ = scaled @ eigvecs[:, :keep].T if self.zca else scaled

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        block = _numeric_block(frame, self.columns_, self.name)
        out = (block - self.mean_) @ self.matrix_
        names = self.columns_ if self.zca else [f"pc{i}" for i in range(out.shape[1])]
        return pd.DataFrame(out, columns=names, index=frame.index)

    def state_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns_),
            "mean": _tensor(self.mean_),
            "matrix": _tensor(self.matrix_),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns_ = list(state["columns"])
        self.mean_ = _array(state["mean"])
        self.matrix_ = _array(state["matrix"])


@PREPROCESS.register("whiten", options=ZcaOptions, aliases=("zca",))
class Whiten(_Whitening):
    """ZCA whitening: identity covariance, closest to the original features."""

    name = "whiten"


@PREPROCESS.register("pca_whiten", options=WhitenOptions)
class PcaWhiten(_Whitening):
    """PCA whitening: project on the principal axes (optionally the first n_components)."""

    name = "pca_whiten"
    zca = False


class ImputeOptions(StepOptions):
    strategy: Literal["mean", "median", "most_frequent", "interpolate", "drop"] = Field(
        "mean",
        description="interpolate: linear along row order (ordered data), edges take the "
        "nearest value; drop: remove incomplete rows",
    )


@PREPROCESS.register("impute", options=ImputeOptions)
class Impute(Preprocessor):
    """Fill missing values (training mean/median/most frequent, or interpolation) or drop rows.

    ``interpolate`` works within whatever frame it transforms, in row order; a numeric column
    with no value at all in that frame takes the training mean. Non-numeric columns take the
    most frequent training value under every strategy but ``drop``.
    """

    name = "impute"
    options: ImputeOptions

    def fit(self, frame: pd.DataFrame) -> None:
        self.columns_ = self._columns(frame, numeric=None)
        self.fill_: dict[str, Any] = {}
        self.interpolate_: list[str] = []
        if self.options.strategy == "drop":
            return
        for column in self.columns_:
            values = frame[column].dropna()
            if values.empty:
                raise DataError(
                    f"data.preprocess impute: column '{column}' has no values in the training part"
                )
            strategy = self.options.strategy
            if not is_numeric(frame[column]) and strategy in ("mean", "median", "interpolate"):
                strategy = "most_frequent"  # categories have no mean and no line between them
            if strategy == "interpolate":
                self.interpolate_.append(column)
                strategy = "mean"  # the fallback for a column with nothing to interpolate
            if strategy == "mean":
                self.fill_[column] = float(values.mean())
            elif strategy == "median":
                self.fill_[column] = float(values.median())
            else:
                mode = values.mode().iloc[0]
                self.fill_[column] = mode.item() if hasattr(mode, "item") else mode

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.options.strategy == "drop":
            return frame.dropna(subset=self.columns_)
        if self.interpolate_:
            frame = frame.copy()
            for column in self.interpolate_:
                values = frame[column].astype(np.float64)
                frame[column] = values.interpolate(method="linear", limit_direction="both")
        return frame.fillna(self.fill_)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"columns": list(self.columns_), "fill": dict(self.fill_)}
        if self.interpolate_:  # only then: older run folders' states compare equal
            state["interpolate"] = list(self.interpolate_)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns_ = list(state["columns"])
        self.fill_ = dict(state["fill"])
        self.interpolate_ = list(state.get("interpolate", []))  # absent in older run folders


class WinsorizeOptions(StepOptions):
    limits: float | tuple[float, float] = Field(
        0.01, description="fraction clipped at the low and high end (one value for both)"
    )

    @field_validator("limits")
    @classmethod
    def _in_range(cls, value: float | tuple[float, float]) -> float | tuple[float, float]:
        pair = (value, value) if isinstance(value, (int, float)) else value
        if not all(0.0 <= v < 0.5 for v in pair):
            raise ValueError(f"limits must be in [0, 0.5), got {value}")
        return value


class _Clip(Preprocessor):
    """Clip each numeric column to limits learned from the training part."""

    def fit(self, frame: pd.DataFrame) -> None:
        self.columns_ = self._columns(frame, numeric=True)
        self.low_, self.high_ = self._limits(_numeric_block(frame, self.columns_, self.name))

    def _limits(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        block = _numeric_block(frame, self.columns_, self.name)
        out[self.columns_] = np.clip(block, self.low_, self.high_)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns_),
            "low": _tensor(self.low_),
            "high": _tensor(self.high_),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns_ = list(state["columns"])
        self.low_ = _array(state["low"])
        self.high_ = _array(state["high"])


@PREPROCESS.register("winsorize", options=WinsorizeOptions, aliases=("clip_outliers",))
class Winsorize(_Clip):
    """Clip each numeric column to its training quantiles (limits, 1 - limits)."""

    name = "winsorize"
    options: WinsorizeOptions

    def _limits(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        limits = self.options.limits
        low, high = (limits, limits) if isinstance(limits, (int, float)) else limits
        return np.nanquantile(block, low, axis=0), np.nanquantile(block, 1.0 - high, axis=0)


OUTLIER_FACTORS = {"iqr": 1.5, "zscore": 3.0}


class OutlierOptions(StepOptions):
    method: Literal["clip", "remove"] = Field(
        "clip", description="remove drops training rows only; other parts are always clipped"
    )
    rule: Literal["iqr", "zscore"] = Field(
        "iqr", description="iqr: [q1 - f·IQR, q3 + f·IQR]; zscore: mean ± f·std"
    )
    factor: float | None = Field(
        None, gt=0.0, description="f (default: 1.5 for iqr, 3.0 for zscore)"
    )


@PREPROCESS.register("outliers", options=OutlierOptions)
class Outliers(_Clip):
    """Outliers by the IQR or z-score rule on the training part: clipped, or removed in training.

    ``method: remove`` drops the training rows with a value outside the limits (their targets go
    with them); validation, test and prediction inputs are clipped, never dropped. A column with
    no spread (IQR or std 0) has no limits.
    """

    name = "outliers"
    options: OutlierOptions

    def fit(self, frame: pd.DataFrame) -> None:
        super().fit(frame)
        self._remember_training(frame)

    def _limits(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return outlier_limits(block, self.options.rule, self.options.factor)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.options.method == "remove" and self._is_training_pass(frame):
            block = _numeric_block(frame, self.columns_, self.name)
            # NaN is missing, not an outlier: it compares False on both sides and stays
            outside = ((block < self.low_) | (block > self.high_)).any(axis=1)
            return frame.loc[~outside]
        return super().transform(frame)


def outlier_limits(
    block: np.ndarray, rule: str, factor: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (low, high) limits by ``rule`` (iqr | zscore); ±inf where there is no spread."""
    factor = OUTLIER_FACTORS[rule] if factor is None else factor
    with warnings.catch_warnings():  # an all-missing column gives NaN limits: no clipping
        warnings.simplefilter("ignore", RuntimeWarning)
        if rule == "iqr":
            q1, q3 = np.nanquantile(block, 0.25, axis=0), np.nanquantile(block, 0.75, axis=0)
            spread, low, high = q3 - q1, q1, q3
        else:
            centre = np.nanmean(block, axis=0)
            spread, low, high = np.nanstd(block, axis=0), centre, centre
    flat = ~(np.isfinite(spread) & (spread > 0.0))
    low = np.where(flat, -np.inf, low - factor * spread)
    high = np.where(flat, np.inf, high + factor * spread)
    return low, high


def _categories(column: pd.Series) -> list[Any]:
    values = column.dropna().unique().tolist()
    return sorted(values, key=lambda v: (str(type(v)), v))


@PREPROCESS.register("onehot", options=StepOptions, aliases=("one_hot",))
class OneHot(Preprocessor):
    """One column per training category (non-numeric columns by default); unseen → all zeros."""

    name = "onehot"

    def fit(self, frame: pd.DataFrame) -> None:
        self.columns_ = self._columns(frame, numeric=False)
        self.categories_ = {c: _categories(frame[c]) for c in self.columns_}

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        parts = [frame.drop(columns=self.columns_)]
        for column in self.columns_:
            values = frame[column]
            encoded = {
                f"{column}={category}": (values == category).astype(np.float32)
                for category in self.categories_[column]
            }
            parts.append(pd.DataFrame(encoded, index=frame.index))
        return pd.concat(parts, axis=1)

    def state_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns_), "categories": dict(self.categories_)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns_ = list(state["columns"])
        self.categories_ = {k: list(v) for k, v in state["categories"].items()}


class _Codes(Preprocessor):
    """Integer codes per category, in ``categories_`` order; missing values stay missing."""

    def fit(self, frame: pd.DataFrame) -> None:
        self.columns_ = self._columns(frame, numeric=False)
        self.categories_ = {c: self._order(c, frame[c]) for c in self.columns_}

    def _order(self, column: str, values: pd.Series) -> list[Any]:
        return _categories(values)

    def _unknown(self, column: str, unknown: list[Any]) -> float:
        return -1.0

    def _encode(self, values: pd.Series, column: str) -> pd.Series:
        codes = {category: i for i, category in enumerate(self.categories_[column])}
        mapped = values.map(codes)
        unseen = mapped.isna() & values.notna()
        if unseen.any():
            fill = self._unknown(column, values[unseen].unique().tolist())
            mapped = mapped.where(~unseen, fill)
        return mapped.astype(float)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        for column in self.columns_:
            out[column] = self._encode(frame[column], column)
        return out

    state_dict = OneHot.state_dict
    load_state_dict = OneHot.load_state_dict


@PREPROCESS.register("label_encode", options=StepOptions, aliases=("ordinal",))
class LabelEncode(_Codes):
    """Integer codes per training category, sorted (non-numeric columns by default); unseen → -1.

    ``ordinal`` is this step's old alias and keeps its meaning; for a chosen order or an error on
    unseen categories use ``ordinal_encode``.
    """

    name = "label_encode"


Category = str | int | float | bool


class OrdinalOptions(StepOptions):
    order: list[Category] | dict[str, list[Category]] | None = Field(
        None,
        description="the categories from lowest to highest: one list for every column, or a "
        "list per column (default: sorted training categories)",
    )
    unknown: Literal["error", "value"] = Field(
        "error", description="a category outside the order: an error, or unknown_value"
    )
    unknown_value: float = -1.0

    @field_validator("order")
    @classmethod
    def _distinct(
        cls, value: list[Category] | dict[str, list[Category]] | None
    ) -> list[Category] | dict[str, list[Category]] | None:
        lists = value.values() if isinstance(value, dict) else [value] if value else []
        for order in lists:
            if not order or len(set(map(repr, order))) != len(order):
                raise ValueError(f"each order must list distinct categories, got {order}")
        return value


@PREPROCESS.register("ordinal_encode", options=OrdinalOptions)
class OrdinalEncode(_Codes):
    """Categories → 0, 1, 2... in a given ``order`` (or sorted); unknown → error or a value."""

    name = "ordinal_encode"
    options: OrdinalOptions

    def fit(self, frame: pd.DataFrame) -> None:
        order = self.options.order
        if isinstance(order, dict):
            columns = self._columns(frame, numeric=False)
            stray = [c for c in order if c not in columns]
            if stray:
                raise DataError(
                    f"data.preprocess ordinal_encode: order names column(s) {stray} that the "
                    f"step does not encode (encoded columns: {columns}); list them in columns"
                )
        super().fit(frame)
        if order is not None:  # training values outside the given order
            for column in self.columns_:
                self._encode(frame[column], column)

    def _order(self, column: str, values: pd.Series) -> list[Any]:
        order = self.options.order
        if isinstance(order, dict):
            order = order.get(column)
        return list(order) if order is not None else _categories(values)

    def _unknown(self, column: str, unknown: list[Any]) -> float:
        if self.options.unknown == "value":
            return self.options.unknown_value
        raise DataError(
            f"data.preprocess ordinal_encode: column '{column}' has value(s) {unknown[:10]} "
            f"outside its categories {self.categories_[column][:20]}; add them to order, or set "
            f"unknown: value to encode them as unknown_value ({self.options.unknown_value:g})"
        )


class DropOptions(StepOptions):
    columns: list[str] = Field(..., min_length=1, description="columns to remove")


@PREPROCESS.register("drop", options=DropOptions)
class Drop(Preprocessor):
    """Remove columns (identifiers, leaks); later parts may lack them."""

    name = "drop"
    options: DropOptions

    def fit(self, frame: pd.DataFrame) -> None:
        self.columns_ = self._columns(frame, numeric=None)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=[c for c in self.columns_ if c in frame.columns])

    def state_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns_)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns_ = list(state["columns"])


# --- dates and time series ------------------------------------------------------------------

DatetimePart = Literal[
    "year", "quarter", "month", "day", "dayofweek", "dayofyear", "hour", "minute", "second"
]
DATETIME_PARTS: tuple[str, ...] = get_args(DatetimePart)
DEFAULT_DATETIME_PARTS: list[DatetimePart] = ["year", "month", "day", "dayofweek"]
_PANDAS_PART = {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}  # pandas' own names


def parse_datetimes(values: pd.Series, format: str | None = None) -> pd.Series:
    """Datetime values, or date strings parsed; what does not parse becomes NaT.

    Raises ValueError for numbers and booleans (not dates) and for values pandas refuses as a
    whole (e.g. mixed time zones).
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise ValueError(f"it holds {values.dtype} values, not dates")
    with warnings.catch_warnings():  # "could not infer format": we fall back on purpose
        warnings.simplefilter("ignore", UserWarning)
        if format is not None:
            return pd.to_datetime(values, errors="coerce", format=format)
        parsed = pd.to_datetime(values, errors="coerce")  # one format, inferred: fast
        if (parsed.isna() & values.notna()).any():
            parsed = pd.to_datetime(values, errors="coerce", format="mixed")  # element-wise
    return parsed


class DatetimeOptions(StepOptions):
    parts: list[DatetimePart] = Field(
        default_factory=lambda: list(DEFAULT_DATETIME_PARTS),
        min_length=1,
        description=f"numeric parts to extract, of: {', '.join(DATETIME_PARTS)}",
    )
    format: str | None = Field(
        None, description="strftime format of date strings (default: inferred)"
    )


@PREPROCESS.register("datetime_parts", options=DatetimeOptions, aliases=("date_parts",))
class DatetimeParts(Preprocessor):
    """Datetime columns (or date strings) → numeric ``<column>_<part>`` columns, original dropped.

    Without ``columns``: every column of datetime type; date strings must be named. Missing dates
    give missing parts (impute after); a value that is not a date is an error.
    """

    name = "datetime_parts"
    options: DatetimeOptions

    def fit(self, frame: pd.DataFrame) -> None:
        if self.options.columns is None:
            self.columns_ = [
                c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])
            ]
            if not self.columns_:
                raise DataError(
                    "data.preprocess datetime_parts: no column has a datetime type; name the "
                    "columns that hold dates (date strings are read from named columns only): "
                    f"columns: [...] (columns: {', '.join(map(str, frame.columns))})"
                )
        else:
            self.columns_ = self._columns(frame, numeric=None)
        for column in self.columns_:
            self._parse(frame[column], column)

    def _parse(self, values: pd.Series, column: str) -> pd.Series:
        where = f"data.preprocess datetime_parts: column '{column}'"
        try:
            parsed = parse_datetimes(values, self.options.format)
        except (ValueError, TypeError) as err:
            raise DataError(f"{where} cannot be read as dates: {err}") from None
        bad = values[parsed.isna() & values.notna()]
        if len(bad):
            given = f"format '{self.options.format}'" if self.options.format else "any format"
            raise DataError(
                f"{where}: {len(bad)} value(s) are not dates in {given}, e.g. "
                f"{bad.astype(str).unique()[:3].tolist()}"
            )
        return parsed

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame
        for column in self.columns_:
            parsed = self._parse(frame[column], column).dt
            parts = {
                f"{column}_{p}": getattr(parsed, _PANDAS_PART.get(p, p)).astype(np.float64)
                for p in self.options.parts
            }
            at = out.columns.get_loc(column)
            assert isinstance(at, int)
            out = pd.concat(
                [out.iloc[:, :at], pd.DataFrame(parts, index=frame.index), out.iloc[:, at + 1 :]],
                axis=1,
            )
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns_)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns_ = list(state["columns"])


class _History(Preprocessor):
    """Columns derived from earlier rows (row order is time order): lags, differences.

    The training pass drops its first ``depth_`` rows, which have no history. A later frame
    (validation, test, prediction inputs) is taken to continue the training frame in time: the
    last ``depth_`` training rows serve as its history, so no row is dropped.
    """

    options: LagOptions | DifferenceOptions

    def fit(self, frame: pd.DataFrame) -> None:
        self.columns_ = self._columns(frame, numeric=True)
        block = _numeric_block(frame, self.columns_, self.name)
        self.depth_ = self._depth()
        if len(block) <= self.depth_:
            raise DataError(
                f"data.preprocess {self.name}: the training part has {len(block)} rows, too few "
                f"for a history of {self.depth_}"
            )
        self.history_ = block[len(block) - self.depth_ :].copy()
        self._remember_training(frame)

    def _depth(self) -> int:
        raise NotImplementedError

    def _derive(self, series: np.ndarray) -> dict[str, np.ndarray]:
        """Suffix → derived values per row of ``series`` (NaN where there is no history)."""
        raise NotImplementedError

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        block = _numeric_block(frame, self.columns_, self.name)
        training = self._is_training_pass(frame)
        full = block if training else np.concatenate([self.history_, block])
        start = 0 if training else self.depth_
        derived: dict[str, np.ndarray] = {}
        for j, column in enumerate(self.columns_):
            for suffix, values in self._derive(full[:, j]).items():
                derived[f"{column}_{suffix}"] = values[start:]
        clash = [c for c in derived if c in frame.columns]
        if clash:
            raise DataError(
                f"data.preprocess {self.name}: new column(s) {clash} already exist; rename them"
            )
        out = frame if self.options.keep else frame.drop(columns=self.columns_)
        out = pd.concat([out, pd.DataFrame(derived, index=frame.index)], axis=1)
        return out.iloc[self.depth_ :] if training else out

    def state_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns_),
            "depth": self.depth_,
            "history": _tensor(self.history_),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns_ = list(state["columns"])
        self.depth_ = int(state["depth"])
        self.history_ = _array(state["history"]).reshape(self.depth_, len(self.columns_))


class LagOptions(StepOptions):
    lags: list[int] = Field(
        default_factory=lambda: [1], min_length=1, description="how many rows back, e.g. [1, 2, 7]"
    )
    keep: bool = Field(True, description="keep the original columns (false: only the past)")

    @field_validator("lags")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(lag < 1 for lag in value) or len(set(value)) != len(value):
            raise ValueError(f"lags must be distinct whole numbers of at least 1, got {value}")
        return value


@PREPROCESS.register("lags", options=LagOptions, aliases=("lag",))
class Lags(_History):
    """``<column>_lag<k>``: the value k rows earlier (row order = time order; numeric columns)."""

    name = "lags"
    options: LagOptions

    def _depth(self) -> int:
        return max(self.options.lags)

    def _derive(self, series: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for lag in self.options.lags:
            shifted = np.full(len(series), np.nan)
            shifted[lag:] = series[:-lag]
            out[f"lag{lag}"] = shifted
        return out


class DifferenceOptions(StepOptions):
    order: int = Field(1, ge=1, description="1: x[t] - x[t-1]; 2: the difference of that...")
    keep: bool = Field(True, description="keep the original columns (false: replace them)")


@PREPROCESS.register("differences", options=DifferenceOptions, aliases=("diff",))
class Differences(_History):
    """``<column>_diff<order>``: the order-th difference along rows (row order = time order)."""

    name = "differences"
    options: DifferenceOptions

    def _depth(self) -> int:
        return self.options.order

    def _derive(self, series: np.ndarray) -> dict[str, np.ndarray]:
        order = self.options.order
        out = np.full(len(series), np.nan)
        out[order:] = np.diff(series, n=order)
        return {f"diff{order}": out}


# --- series steps on a table ----------------------------------------------------------------
# On series (.npz x read as NCL/NLC, see nntune.data.series) these names are series steps; a
# 2-D x given one of them is read as one-channel series. On a table's rows they mean:


@PREPROCESS.register("znorm", options=StepOptions, aliases=("znormalize",), tags=("series",))
class RowZNorm(Preprocessor):
    """Each row (a series) to zero mean and unit variance over its columns; on series: each
    series and channel over its own steps (the time-series archives' convention)."""

    name = "znorm"

    def fit(self, frame: pd.DataFrame) -> None:
        self.columns_ = self._columns(frame, numeric=True)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        block = _numeric_block(frame, self.columns_, self.name)
        with warnings.catch_warnings():  # a row of NaN: left as it is
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(block, axis=1, keepdims=True)
            std = np.nanstd(block, axis=1, keepdims=True)
        out[self.columns_] = (block - mean) / _safe_scale(std)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns_)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns_ = list(state["columns"])


class ResampleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    length: int = Field(..., ge=2, description="steps of every series after resampling")


@PREPROCESS.register("resample", options=ResampleOptions, tags=("series",))
class Resample(Preprocessor):
    """Series only: each series stretched or shrunk to ``length`` steps (linear interpolation
    over its own steps)."""

    name = "resample"

    def fit(self, frame: pd.DataFrame) -> None:
        raise DataError(
            "data.preprocess resample: it resamples series (an .npz x read with data.layout "
            "NCL or NLC), not the columns of a table"
        )
