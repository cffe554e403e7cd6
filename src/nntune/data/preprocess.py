"""Preprocessing steps, fitted on the training part only and saved with the checkpoint.

Each step is a small fit/transform class over a DataFrame. The arithmetic is written here rather
than wrapping scikit-learn transformers because the fitted state must travel inside checkpoints
that are read with ``torch.load(weights_only=True)``: plain tensors, numbers and strings, never
pickled objects. Every step's state is exactly that.
"""

from __future__ import annotations

from typing import Any, Literal

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
    """Base class: ``fit`` learns from the training part, ``transform`` applies to any part."""

    name = ""

    def __init__(self, options: StepOptions) -> None:
        self.options = options

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
    strategy: Literal["mean", "median", "most_frequent", "drop"] = "mean"


@PREPROCESS.register("impute", options=ImputeOptions)
class Impute(Preprocessor):
    """Fill missing values with the training mean/median/most frequent value, or drop rows."""

    name = "impute"
    options: ImputeOptions

    def fit(self, frame: pd.DataFrame) -> None:
        self.columns_ = self._columns(frame, numeric=None)
        self.fill_: dict[str, Any] = {}
        if self.options.strategy == "drop":
            return
        for column in self.columns_:
            values = frame[column].dropna()
            if values.empty:
                raise DataError(
                    f"data.preprocess impute: column '{column}' has no values in the training part"
                )
            strategy = self.options.strategy
            if not is_numeric(frame[column]) and strategy in ("mean", "median"):
                strategy = "most_frequent"  # categories have no mean
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
        return frame.fillna(self.fill_)

    def state_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns_), "fill": dict(self.fill_)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns_ = list(state["columns"])
        self.fill_ = dict(state["fill"])


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


@PREPROCESS.register("winsorize", options=WinsorizeOptions, aliases=("clip_outliers",))
class Winsorize(Preprocessor):
    """Clip each numeric column to its training quantiles (limits, 1 - limits)."""

    name = "winsorize"
    options: WinsorizeOptions

    def fit(self, frame: pd.DataFrame) -> None:
        self.columns_ = self._columns(frame, numeric=True)
        limits = self.options.limits
        low, high = (limits, limits) if isinstance(limits, (int, float)) else limits
        block = _numeric_block(frame, self.columns_, self.name)
        self.low_ = np.nanquantile(block, low, axis=0)
        self.high_ = np.nanquantile(block, 1.0 - high, axis=0)

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


@PREPROCESS.register("label_encode", options=StepOptions, aliases=("ordinal",))
class LabelEncode(Preprocessor):
    """Integer codes per training category (non-numeric columns by default); unseen → -1."""

    name = "label_encode"

    def fit(self, frame: pd.DataFrame) -> None:
        self.columns_ = self._columns(frame, numeric=False)
        self.categories_ = {c: _categories(frame[c]) for c in self.columns_}

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        for column in self.columns_:
            codes = {category: i for i, category in enumerate(self.categories_[column])}
            mapped = frame[column].map(codes)
            # unseen categories become -1; missing values stay missing for an impute step
            out[column] = mapped.where(mapped.notna() | frame[column].isna(), -1).astype(float)
        return out

    state_dict = OneHot.state_dict
    load_state_dict = OneHot.load_state_dict
