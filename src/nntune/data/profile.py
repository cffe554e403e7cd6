"""Data understanding: what each column holds, what is missing or extreme, what the target is,
and the preprocessing that follows from it, as plain ``data.preprocess`` config.

``profile_frame`` reads a table; ``suggest_preprocess`` turns its profile into config steps a
user can read and edit. The rules are simple and stated where they are applied.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nntune.data.pipeline import MAX_CLASSES_FOR_INTEGER_TARGET, infer_task
from nntune.data.preprocess import is_numeric, outlier_limits, parse_datetimes
from nntune.errors import DataError

# a string column is an identifier (or free text) when nearly every value is distinct...
ID_UNIQUE_SHARE = 0.95
# ...among at least this many values (in a handful of rows any category looks unique)
ID_MIN_ROWS = 20
ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|guid|key|index)$", re.IGNORECASE)
CAMEL_ID = re.compile(r"[a-z](Id|ID)$")  # userId, orderID
BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "y", "n", "t", "f"})
# a date string holds a whole date: 2024-05-01, 2024/5/1, 1.5.2024, 05/01/24 (a cheap test
# before parsing; "3-4" or "12:30" alone are not dates)
DATE_LIKE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
# categoricals with at most this many categories are one-hot encoded, others get codes
ONEHOT_MAX_CATEGORIES = 10
# outliers are counted outside Tukey's fences, q1 - 1.5·IQR and q3 + 1.5·IQR (0.7 % of normal
# data lies there); far outliers outside the outer fences at 3·IQR (normal data: 2 in a
# million). Columns with far outliers are clipped at the outer fences, so plain skew survives.
OUTLIER_FACTOR = 1.5
FAR_OUTLIER_FACTOR = 3.0
# a class ratio (largest / smallest) above this is worth a warning
IMBALANCE_WARNING = 3.0
# a string column is free text (read by a tokenizer, data.text) when its values have at least
# this many words at the median and at least half of them are distinct (categories repeat)
TEXT_MIN_WORDS = 3
TEXT_UNIQUE_SHARE = 0.5
MOSTLY_MISSING = 0.5

TARGET_RULE = (
    "classification when the target is non-numeric or boolean, holds whole numbers with at "
    f"most {MAX_CLASSES_FOR_INTEGER_TARGET} distinct values (for floats also at most a fifth of "
    "the rows), else regression (the rule nntune train uses for data.task: auto)"
)


@dataclass
class ColumnProfile:
    """One feature column. ``kind``: numeric, categorical, boolean, datetime, text (free
    text: words) or text_id (an identifier)."""

    name: str
    kind: str
    dtype: str
    missing: int
    missing_fraction: float
    n_unique: int
    outliers: int = 0  # numeric only: values outside q1 - 1.5·IQR, q3 + 1.5·IQR
    outlier_fraction: float = 0.0
    far_outliers: int = 0  # outside q1 - 3·IQR, q3 + 3·IQR
    has_time: bool = False  # datetime only: some value has a time of day
    drop: str | None = None  # why suggest_preprocess drops it (identifier, no values, constant)


@dataclass
class TargetProfile:
    """The target column: the task it implies and, for classification, the class balance."""

    name: str
    kind: str  # classification | regression
    rule: str
    n_unique: int
    missing: int
    class_counts: dict[str, int] | None = None
    imbalance_ratio: float | None = None  # largest class count / smallest


@dataclass
class DataProfile:
    n_rows: int
    columns: list[ColumnProfile]
    target: TargetProfile | None = None
    warnings: list[str] = field(default_factory=list)

    def column(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def kinds(self) -> dict[str, str]:
        return {c.name: c.kind for c in self.columns}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def profile_frame(frame: pd.DataFrame, target: str | None = None) -> DataProfile:
    """The profile of a table; ``target`` names its target column (left out of the features)."""
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    if target is not None and target not in columns:
        raise DataError(f"data.target = '{target}': no such column (columns: {', '.join(columns)})")
    profiles = [_profile_column(frame[c], c) for c in columns if c != target]
    warnings = [w for p in profiles for w in _column_warnings(p, len(frame))]
    target_profile = None
    if target is not None:
        target_profile = _profile_target(frame[target], target)
        warnings += _target_warnings(target_profile)
    return DataProfile(len(frame), profiles, target_profile, warnings)


def _profile_column(values: pd.Series, name: str) -> ColumnProfile:
    present = values.dropna()
    n_unique = int(present.nunique())
    column = ColumnProfile(
        name=name,
        kind=_kind(values, present, name),
        dtype=str(values.dtype),
        missing=int(values.isna().sum()),
        missing_fraction=float(values.isna().mean()) if len(values) else 0.0,
        n_unique=n_unique,
    )
    if present.empty:
        column.drop = "it has no values"
    elif column.kind == "text_id":
        column.drop = (
            f"all {len(present)} values unique"
            if n_unique == len(present)
            else f"{n_unique} of {len(present)} values unique"
        )
    elif n_unique == 1:
        only = present.iloc[0]
        column.drop = f"it holds one value only: {only.item() if hasattr(only, 'item') else only!r}"
    if column.kind == "numeric" and column.drop is None:
        block = present.to_numpy(dtype=np.float64).reshape(-1, 1)
        low, high = outlier_limits(block, "iqr", OUTLIER_FACTOR)
        column.outliers = int(((block < low) | (block > high)).sum())
        column.outlier_fraction = column.outliers / len(present)
        low, high = outlier_limits(block, "iqr", FAR_OUTLIER_FACTOR)
        column.far_outliers = int(((block < low) | (block > high)).sum())
    if column.kind == "datetime" and column.drop is None:
        stamps = parse_datetimes(present)
        column.has_time = bool((stamps != stamps.dt.normalize()).any())
    return column


def _kind(values: pd.Series, present: pd.Series, name: str) -> str:
    """numeric, categorical, boolean, datetime or text_id (the rules, in order)."""
    n_unique = present.nunique()
    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime"
    if n_unique == 2 and _boolean_values(present):
        return "boolean"  # True/False, yes/no, 0/1... in any dtype
    if is_numeric(values):
        # integers all distinct that count rows (steps of ±1) or are named like an id
        if (
            pd.api.types.is_integer_dtype(values)
            and len(present) >= ID_MIN_ROWS
            and n_unique == len(present)
        ):
            steps = np.unique(np.diff(present.to_numpy(dtype=np.int64)))
            if (len(steps) == 1 and abs(int(steps[0])) == 1) or _id_name(name):
                return "text_id"
        return "numeric"
    if _dates(present):
        return "datetime"
    if _free_text(present, n_unique):
        return "text"
    if len(present) >= ID_MIN_ROWS and n_unique >= ID_UNIQUE_SHARE * len(present):
        return "text_id"
    return "categorical"


def _free_text(present: pd.Series, n_unique: int) -> bool:
    """Words rather than codes: several words per value at the median, mostly distinct."""
    if len(present) < ID_MIN_ROWS or n_unique < TEXT_UNIQUE_SHARE * len(present):
        return False
    words = present.astype(str).head(2000).str.split().str.len()
    return float(words.median()) >= TEXT_MIN_WORDS


def text_columns(profile: DataProfile) -> list[str]:
    """The free-text columns of a profiled table."""
    return [c.name for c in profile.columns if c.kind == "text" and c.drop is None]


def _id_name(name: str) -> bool:
    return bool(ID_NAME.search(name) or CAMEL_ID.search(name))


def _boolean_values(present: pd.Series) -> bool:
    values = set(present.unique().tolist())
    if values <= {0, 1}:  # also True/False, which compare equal to 1/0
        return True
    return {str(v).strip().lower() for v in values} <= BOOLEAN_WORDS


def _dates(present: pd.Series) -> bool:
    """Every value parses as a date (after a cheap look at a few of them)."""
    if present.empty or not pd.api.types.is_string_dtype(present):
        return False
    texts = present.astype(str)
    if not texts.head(50).map(lambda t: bool(DATE_LIKE.search(t))).all():
        return False
    try:
        parsed = parse_datetimes(texts)
    except (ValueError, TypeError):
        return False
    return not parsed.isna().any()


def _profile_target(values: pd.Series, name: str) -> TargetProfile:
    present = values.dropna()
    profile = TargetProfile(
        name=name,
        kind="regression",
        rule=TARGET_RULE,
        n_unique=int(present.nunique()),
        missing=int(values.isna().sum()),
    )
    if present.empty:
        return profile
    array = present.to_numpy()
    if array.dtype.kind not in "iufb":  # strings, pandas' str dtype, mixed objects
        array = array.astype(str).astype(object)
    profile.kind = infer_task(array)
    if profile.kind == "classification":
        counts = present.astype(str).value_counts()
        profile.class_counts = {str(k): int(v) for k, v in counts.items()}
        profile.imbalance_ratio = float(counts.max() / counts.min())
    return profile


def _column_warnings(column: ColumnProfile, n_rows: int) -> list[str]:
    name = column.name
    if column.kind == "text_id":
        return [f"column '{name}' looks like an identifier ({column.drop}): dropped"]
    if column.kind == "text" and column.drop is None:
        return [f"column '{name}' is free text: the model reads its words (data.text)"]
    if column.drop is not None:
        return [f"column '{name}' is useless as a feature ({column.drop}): dropped"]
    out = []
    if column.missing_fraction > MOSTLY_MISSING:
        out.append(
            f"column '{name}' is mostly missing ({column.missing} of {n_rows} values): imputed"
        )
    if column.far_outliers:
        out.append(
            f"column '{name}' has far outliers ({column.far_outliers} values beyond 3 IQR of the "
            f"quartiles; {column.outliers} beyond 1.5 IQR): clipped at 3 IQR"
        )
    return out


def _target_warnings(target: TargetProfile) -> list[str]:
    out = []
    if target.missing:
        out.append(f"target '{target.name}' has {target.missing} missing values; drop those rows")
    if target.imbalance_ratio is not None and target.imbalance_ratio > IMBALANCE_WARNING:
        counts = target.class_counts or {}
        out.append(
            f"target '{target.name}' is imbalanced: the largest class has "
            f"{target.imbalance_ratio:.1f}x the samples of the smallest ({counts}); consider "
            "loss: {name: cross_entropy, class_weights: balanced} or f1 as the metric"
        )
    return out


def suggest_preprocess(profile: DataProfile) -> list[dict[str, Any] | str]:
    """``data.preprocess`` steps for the profiled table, in the order they must run.

    drop identifiers, empty and constant columns → datetime parts → impute (median for numbers,
    most frequent for categories and booleans) → clip far outliers → encode (booleans and
    categoricals with more than ONEHOT_MAX_CATEGORIES categories get integer codes, the others
    one-hot) → standardize.
    """
    # free text is no feature column of a table: a text run reads it (data.text)
    kept = [c for c in profile.columns if c.drop is None and c.kind != "text"]
    by_kind: dict[str, list[ColumnProfile]] = {}
    for column in kept:
        by_kind.setdefault(column.kind, []).append(column)
    steps: list[dict[str, Any] | str] = []
    dropped = [c.name for c in profile.columns if c.drop is not None or c.kind == "text"]
    if dropped:
        steps.append({"name": "drop", "columns": dropped})

    median, frequent = [], []
    dates = by_kind.get("datetime", [])
    if dates:
        parts: list[str] = ["year", "month", "day", "dayofweek"]
        if any(c.has_time for c in dates):
            parts += ["hour", "minute"]
        steps.append({"name": "datetime_parts", "columns": [c.name for c in dates], "parts": parts})
        median += [f"{c.name}_{p}" for c in dates if c.missing for p in parts]
    for column in kept:
        if column.missing and column.kind == "numeric":
            median.append(column.name)
        elif column.missing and column.kind in ("categorical", "boolean"):
            frequent.append(column.name)
    if median:
        steps.append({"name": "impute", "strategy": "median", "columns": median})
    if frequent:
        steps.append({"name": "impute", "strategy": "most_frequent", "columns": frequent})

    far = [c.name for c in by_kind.get("numeric", []) if c.far_outliers]
    if far:
        steps.append(
            {
                "name": "outliers",
                "method": "clip",
                "rule": "iqr",
                "factor": FAR_OUTLIER_FACTOR,
                "columns": far,
            }
        )

    categorical = by_kind.get("categorical", [])
    onehot = [c.name for c in categorical if c.n_unique <= ONEHOT_MAX_CATEGORIES]
    # booleans in numeric columns (0/1) are numbers already
    codes = [c.name for c in by_kind.get("boolean", []) if not _number_dtype(c.dtype)]
    codes += [c.name for c in categorical if c.n_unique > ONEHOT_MAX_CATEGORIES]
    if codes:
        # categories unseen in training (likely when there are many) get -1, not an error
        steps.append({"name": "ordinal_encode", "columns": codes, "unknown": "value"})
    if onehot:
        steps.append({"name": "onehot", "columns": onehot})
    if kept:
        steps.append("standardize")
    return steps


def _number_dtype(dtype: str) -> bool:
    try:
        resolved = pd.api.types.pandas_dtype(dtype)
    except TypeError:
        return False
    return bool(pd.api.types.is_numeric_dtype(resolved)) and not pd.api.types.is_bool_dtype(
        resolved
    )
