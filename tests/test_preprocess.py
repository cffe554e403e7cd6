"""Preprocessing steps: fit/transform, checkpointable state, and each step's arithmetic."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from nntune.config import Component
from nntune.data import PREPROCESS, Pipeline
from nntune.errors import ConfigError, DataError
from nntune.registry import Entry
from nntune.train.checkpoint import same_state

CATEGORICAL = {"onehot", "label_encode", "ordinal_encode"}
# steps of series only (tests/test_series.py): on a table they are bad input
SERIES_ONLY = {"resample"}
TABLE_STEPS = [name for name in PREPROCESS.list() if name not in SERIES_ONLY]
# options a step needs (drop) or that exercise more of it on the shared frames
OPTIONS: dict[str, dict[str, Any]] = {
    "drop": {"columns": ["c"]},
    "outliers": {"method": "remove", "factor": 1.0},
    "lags": {"lags": [1, 3]},
    "differences": {"order": 2},
}


def make_step(name: str, **options: Any) -> Any:
    entry: Entry = PREPROCESS.get(name)
    return entry.builder(entry.parse_options(options, f"data.preprocess {name}"))


def numeric_frame(n: int, seed: int) -> pd.DataFrame:
    """Three correlated columns with different scales."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    mix = np.array([[2.0, 0.6, 0.0], [0.0, 1.0, 0.4], [0.0, 0.0, 0.5]])
    x = z @ mix + np.array([5.0, -1.0, 0.3])
    return pd.DataFrame(x, columns=["a", "b", "c"])


def mixed_frame(n: int, seed: int) -> pd.DataFrame:
    frame = numeric_frame(n, seed)
    rng = np.random.default_rng(seed + 100)
    frame["color"] = rng.choice(["red", "green", "blue"], size=n)
    return frame


def dated_frame(n: int, seed: int) -> pd.DataFrame:
    frame = numeric_frame(n, seed)
    start = pd.Timestamp("2021-03-01") + pd.Timedelta(days=400 * seed)
    frame["when"] = pd.date_range(start, periods=n, freq="37h")
    return frame


def frames_for(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    if name in CATEGORICAL:
        return mixed_frame(50, 0), mixed_frame(20, 1)
    if name == "impute":
        fit, other = mixed_frame(50, 0), mixed_frame(20, 1)
        fit.loc[::7, "a"] = np.nan
        other.loc[::3, "a"] = np.nan
        other.loc[1::4, "color"] = None
        return fit, other
    if name == "datetime_parts":
        return dated_frame(50, 0), dated_frame(20, 1)
    return numeric_frame(50, 0), numeric_frame(20, 1)


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", TABLE_STEPS)
def test_fit_transform_and_state_round_trip(name: str) -> None:
    fit_frame, other = frames_for(name)
    original_fit, original_other = fit_frame.copy(), other.copy()
    step = make_step(name, **OPTIONS.get(name, {}))
    step.fit(fit_frame)
    trained = step.transform(fit_frame)  # the training pass, as the pipeline runs it
    out = step.transform(other)
    assert isinstance(out, pd.DataFrame)
    pd.testing.assert_frame_equal(other, original_other)  # the inputs are not modified
    pd.testing.assert_frame_equal(fit_frame, original_fit)
    assert len(out) <= len(other)
    assert set(out.index) <= set(other.index)
    assert set(trained.index) <= set(fit_frame.index)  # rows may go, never come
    assert list(trained.columns) == list(out.columns)

    restored = make_step(name, **OPTIONS.get(name, {}))
    restored.load_state_dict(roundtrip(step.state_dict()))
    pd.testing.assert_frame_equal(restored.transform(other), out)
    pd.testing.assert_frame_equal(restored.transform(fit_frame), step.transform(fit_frame))


@pytest.mark.parametrize("name", TABLE_STEPS)
def test_a_fitted_pipeline_reloads_from_its_saved_state(name: str) -> None:
    fit_frame, other = frames_for(name)
    component = Component(name=name, options=OPTIONS.get(name, {}))
    pipeline = Pipeline.from_components([component])
    trained = pipeline.fit_transform(fit_frame)
    reloaded = Pipeline.from_state(roundtrip(pipeline.state_dict()))
    assert same_state(reloaded.state_dict(), pipeline.state_dict())
    pd.testing.assert_frame_equal(reloaded.transform(other), pipeline.transform(other))
    # only the training pass may drop rows (impute's drop strategy aside)
    if name != "impute":
        assert len(pipeline.transform(fit_frame)) == len(fit_frame) >= len(trained)


@pytest.mark.parametrize("name", PREPROCESS.list())
def test_unknown_option_is_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_step(name, no_such_option=1)


def test_a_series_only_step_on_a_table_is_bad_input_naming_it() -> None:
    step = make_step("resample", length=10)
    with pytest.raises(DataError, match="resample: it resamples series"):
        step.fit(numeric_frame(20, 0))


def test_znorm_on_a_table_normalizes_each_row() -> None:
    frame = numeric_frame(30, 0)
    out = make_step("znorm")
    out.fit(frame)
    values = out.transform(frame).to_numpy()
    np.testing.assert_allclose(values.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(values.std(axis=1), 1.0, atol=1e-12)


# --- scaling --------------------------------------------------------------------------------


def test_standardize_zero_mean_unit_std_on_train() -> None:
    train, other = numeric_frame(200, 0), numeric_frame(50, 1)
    step = make_step("standardize")
    step.fit(train)
    out = step.transform(train).to_numpy()
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-12)
    expected = (other - train.mean()) / train.std(ddof=0)
    pd.testing.assert_frame_equal(step.transform(other), expected)


def test_standardize_constant_column_is_only_centred() -> None:
    train = pd.DataFrame({"k": [3.0] * 10, "v": np.arange(10.0)})
    step = make_step("standardize")
    step.fit(train)
    out = step.transform(train)
    assert np.all(out["k"].to_numpy() == 0.0)


def test_minmax_scales_train_to_unit_interval() -> None:
    train, other = numeric_frame(200, 0), numeric_frame(50, 1)
    step = make_step("minmax")
    step.fit(train)
    out = step.transform(train).to_numpy()
    np.testing.assert_allclose(out.min(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.max(axis=0), 1.0, atol=1e-12)
    expected = (other - train.min()) / (train.max() - train.min())
    pd.testing.assert_frame_equal(step.transform(other), expected)


def test_minmax_feature_range() -> None:
    train = numeric_frame(100, 0)
    step = make_step("minmax", feature_range=(-1.0, 1.0))
    step.fit(train)
    out = step.transform(train).to_numpy()
    np.testing.assert_allclose(out.min(axis=0), -1.0, atol=1e-12)
    np.testing.assert_allclose(out.max(axis=0), 1.0, atol=1e-12)


def test_column_option_leaves_other_columns() -> None:
    train = numeric_frame(100, 0)
    step = make_step("standardize", columns=["b"])
    step.fit(train)
    out = step.transform(train)
    pd.testing.assert_series_equal(out["a"], train["a"])
    assert abs(out["b"].mean()) < 1e-12


# --- whitening ------------------------------------------------------------------------------


def test_whiten_is_zca() -> None:
    train = numeric_frame(500, 0)
    step = make_step("whiten")
    step.fit(train)
    out = step.transform(train)
    assert list(out.columns) == ["a", "b", "c"]
    np.testing.assert_allclose(np.cov(out.to_numpy(), rowvar=False), np.eye(3), atol=1e-3)
    # ZCA: x ↦ (x - μ) C^{-1/2}, the symmetric inverse square root of the covariance
    from scipy.linalg import sqrtm

    centred = train.to_numpy() - train.to_numpy().mean(axis=0)
    inv_sqrt = np.linalg.inv(np.real(sqrtm(np.cov(centred, rowvar=False))))
    np.testing.assert_allclose(out.to_numpy(), centred @ inv_sqrt, atol=1e-3)
    # the closest whitening to the original axes: each column stays correlated with its own
    for column in out.columns:
        corr = np.corrcoef(out[column], train[column])[0, 1]
        assert corr > 0.7, (column, corr)


def test_pca_whiten_reduces_columns_and_whitens() -> None:
    train, other = numeric_frame(500, 0), numeric_frame(50, 1)
    step = make_step("pca_whiten", n_components=2)
    step.fit(train)
    out = step.transform(train).to_numpy()
    assert out.shape == (500, 2)
    assert step.transform(other).shape == (50, 2)
    np.testing.assert_allclose(np.cov(out, rowvar=False), np.eye(2), atol=1e-3)
    from sklearn.decomposition import PCA

    reference = PCA(n_components=2, whiten=True).fit(train.to_numpy()).transform(train.to_numpy())
    for i in range(2):  # the same principal axes, up to sign
        assert abs(np.corrcoef(out[:, i], reference[:, i])[0, 1]) > 0.9999


def test_pca_whiten_too_many_components() -> None:
    from nntune.errors import DataError

    step = make_step("pca_whiten", n_components=5)
    with pytest.raises(DataError, match="n_components"):
        step.fit(numeric_frame(50, 0))


# --- winsorize ------------------------------------------------------------------------------


def test_winsorize_clips_to_training_quantiles() -> None:
    train, other = numeric_frame(300, 0), numeric_frame(300, 1) * 3.0
    step = make_step("winsorize", limits=0.1)
    step.fit(train)
    low, high = train.quantile(0.1), train.quantile(0.9)
    out = step.transform(train)
    np.testing.assert_allclose(out.min().to_numpy(), low.to_numpy())
    np.testing.assert_allclose(out.max().to_numpy(), high.to_numpy())
    inside = (train >= low) & (train <= high)
    assert (out[inside] == train[inside]).sum().sum() == inside.sum().sum()
    clipped = step.transform(other)
    pd.testing.assert_frame_equal(clipped, other.clip(low, high, axis=1))


def test_winsorize_asymmetric_limits() -> None:
    train = pd.DataFrame({"v": np.arange(101.0)})
    step = make_step("winsorize", limits=(0.0, 0.2))
    step.fit(train)
    out = step.transform(train)["v"]
    assert out.min() == 0.0
    assert out.max() == pytest.approx(80.0)


# --- encoders -------------------------------------------------------------------------------


def test_onehot_columns_and_unseen_category() -> None:
    train = pd.DataFrame({"n": [1.0, 2.0, 3.0], "color": ["red", "blue", "red"]})
    other = pd.DataFrame({"n": [4.0, 5.0, 6.0], "color": ["blue", "purple", None]})
    step = make_step("onehot")
    step.fit(train)
    out = step.transform(other)
    assert list(out.columns) == ["n", "color=blue", "color=red"]
    np.testing.assert_array_equal(out["n"], other["n"])
    np.testing.assert_array_equal(
        out[["color=blue", "color=red"]].to_numpy(), [[1, 0], [0, 0], [0, 0]]
    )


def test_label_encode_codes_and_unseen_category() -> None:
    train = pd.DataFrame({"size": ["s", "m", "l", "m"], "n": [1.0, 2.0, 3.0, 4.0]})
    other = pd.DataFrame({"size": ["l", "xl", None, "s"], "n": [0.0] * 4})
    step = make_step("label_encode")
    step.fit(train)
    out = step.transform(other)
    codes = step.transform(train)["size"].to_numpy()
    # one distinct code per training category, in 0..K-1
    assert sorted(set(codes.tolist())) == [0.0, 1.0, 2.0]
    code_of = dict(zip(train["size"], codes, strict=True))
    assert out["size"].iloc[0] == code_of["l"]
    assert out["size"].iloc[1] == -1
    assert np.isnan(out["size"].iloc[2])  # missing stays missing, for an impute step
    assert out["size"].iloc[3] == code_of["s"]
    np.testing.assert_array_equal(out["n"], other["n"])


# --- impute ---------------------------------------------------------------------------------


def impute_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    train = pd.DataFrame(
        {
            "x": [1.0, 2.0, 2.0, 10.0, np.nan, 2.0],
            "color": ["red", "blue", "blue", None, "red", "blue"],
        }
    )
    other = pd.DataFrame({"x": [np.nan, 5.0, np.nan], "color": [None, "red", "green"]})
    return train, other


@pytest.mark.parametrize(
    ("strategy", "fill"),
    [
        ("mean", lambda s: s.dropna().mean()),
        ("median", lambda s: float(np.median(s.dropna()))),
        ("most_frequent", lambda s: s.dropna().value_counts().idxmax()),
    ],
)
def test_impute_fills_with_the_training_statistic(strategy: str, fill: Any) -> None:
    train, other = impute_frames()
    step = make_step("impute", strategy=strategy)
    step.fit(train)
    out = step.transform(other)
    expected_x = fill(train["x"])
    assert out["x"].tolist() == [pytest.approx(expected_x), 5.0, pytest.approx(expected_x)]
    # categories have no mean or median: the most frequent is used
    assert out["color"].tolist() == ["blue", "red", "green"]
    assert not out.isna().any().any()


def test_impute_drop_removes_incomplete_rows() -> None:
    train, other = impute_frames()
    step = make_step("impute", strategy="drop")
    step.fit(train)
    out = step.transform(other)
    assert list(out.index) == [1]
    assert list(out.index) == [i for i in other.index if not other.loc[i].isna().any()]
    pd.testing.assert_frame_equal(out, other.dropna())


def test_impute_interpolates_along_row_order() -> None:
    train = pd.DataFrame(
        {"x": [np.nan, 1.0, np.nan, 3.0, np.nan], "color": ["a", None, "b", "a", "a"]},
        index=[10, 11, 12, 13, 14],
    )
    step = make_step("impute", strategy="interpolate")
    step.fit(train)
    out = step.transform(train)
    # linear between neighbours, the edges take the nearest value; categories: most frequent
    assert out["x"].tolist() == [1.0, 1.0, 2.0, 3.0, 3.0]
    assert out["color"].tolist() == ["a", "a", "b", "a", "a"]
    assert list(out.index) == list(train.index)
    # new data is interpolated within itself; a column with no value takes the training mean
    other = pd.DataFrame({"x": [4.0, np.nan, np.nan, 10.0], "color": ["b"] * 4})
    assert step.transform(other)["x"].tolist() == [4.0, 6.0, 8.0, 10.0]
    empty = pd.DataFrame({"x": [np.nan, np.nan], "color": [None, "b"]})
    assert step.transform(empty)["x"].tolist() == [2.0, 2.0]
    restored = make_step("impute", strategy="interpolate")
    restored.load_state_dict(roundtrip(step.state_dict()))
    pd.testing.assert_frame_equal(restored.transform(other), step.transform(other))


def test_impute_state_of_the_older_strategies_is_unchanged() -> None:
    # run folders written before interpolation existed must compare equal when re-fitted
    train, _ = impute_frames()
    step = make_step("impute", strategy="median")
    step.fit(train)
    assert set(step.state_dict()) == {"columns", "fill"}


# --- outliers -------------------------------------------------------------------------------


def outlier_frame() -> pd.DataFrame:
    values = np.concatenate([np.linspace(0.0, 10.0, 21), [100.0, -50.0]])
    return pd.DataFrame({"v": values, "flat": np.ones(23), "w": np.linspace(0.0, 1.0, 23)})


def test_outliers_iqr_clip_uses_tukey_fences_of_the_training_part() -> None:
    train = outlier_frame()
    step = make_step("outliers")
    step.fit(train)
    q1, q3 = train["v"].quantile(0.25), train["v"].quantile(0.75)
    low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    out = step.transform(train)
    assert len(out) == len(train)  # clip keeps every row
    assert out["v"].max() == pytest.approx(high)
    assert out["v"].min() == pytest.approx(low)
    inside = (train["v"] >= low) & (train["v"] <= high)
    pd.testing.assert_series_equal(out["v"][inside], train["v"][inside])
    assert (out["flat"] == 1.0).all()  # no spread, no limits


def test_outliers_zscore_rule_and_factor() -> None:
    train = outlier_frame()
    step = make_step("outliers", rule="zscore", columns=["v"])
    step.fit(train)
    mean, std = train["v"].mean(), train["v"].std(ddof=0)
    assert step.high_[0] == pytest.approx(mean + 3.0 * std)
    narrow = make_step("outliers", rule="zscore", factor=1.0, columns=["v"])
    narrow.fit(train)
    assert narrow.low_[0] == pytest.approx(mean - std)
    assert narrow.transform(train)["v"].max() == pytest.approx(mean + std)


def test_outliers_remove_drops_training_rows_only() -> None:
    train = outlier_frame()
    step = make_step("outliers", method="remove")
    step.fit(train)
    out = step.transform(train)  # the training pass
    assert list(out.index) == list(range(21))  # 100 and -50 are gone, index labels kept
    # any later frame is clipped, never dropped: also the training rows seen again
    again = step.transform(train)
    assert len(again) == len(train)
    assert again["v"].max() < 100.0
    other = pd.DataFrame({"v": [1000.0, 5.0], "flat": [3.0, 1.0], "w": [0.5, 0.5]})
    clipped = step.transform(other)
    assert len(clipped) == 2 and clipped["v"].iloc[0] == pytest.approx(step.high_[0])
    assert clipped["flat"].iloc[0] == 3.0


def test_outliers_removed_in_training_take_their_targets_along() -> None:
    from nntune.config import DataConfig
    from nntune.data.datasets import RawDataset
    from nntune.data.pipeline import prepare_data

    n = 200
    values = np.arange(n, dtype=float)
    values[[5, 50, 150]] = [1e4, -1e4, 1e5]
    rows = np.arange(n, dtype=float)
    raw = RawDataset("outlying", pd.DataFrame({"v": values, "i": rows}), rows)
    config = DataConfig(
        dataset="unused",
        task="regression",
        test_split=0.0,
        val_split=0.25,
        preprocess=[Component(name="outliers", options={"method": "remove", "columns": ["v"]})],
    )
    bundle = prepare_data(config, seed=0, raw=raw)
    rows = bundle.x_train[:, 1].numpy().astype(int)
    # the targets (the row number) still match their rows; the outlying rows are gone
    np.testing.assert_array_equal(bundle.y_train[:, 0].numpy(), rows)
    assert not {5, 50, 150} & set(rows.tolist())
    assert len(bundle.x_val) == 50  # validation rows are clipped, not dropped
    assert float(bundle.x_val[:, 0].abs().max()) < 1e3


# --- ordinal_encode and drop ----------------------------------------------------------------


def test_ordinal_encode_follows_the_given_order() -> None:
    train = pd.DataFrame({"size": ["m", "s", "l", None, "m"], "n": [1.0] * 5})
    step = make_step("ordinal_encode", order=["s", "m", "l"])
    step.fit(train)
    out = step.transform(train)
    assert out["size"].tolist()[:3] == [1.0, 0.0, 2.0]
    assert np.isnan(out["size"].iloc[3])  # missing stays missing, for an impute step
    np.testing.assert_array_equal(out["n"], train["n"])
    sorted_codes = make_step("ordinal_encode")
    sorted_codes.fit(train)
    assert sorted_codes.categories_ == {"size": ["l", "m", "s"]}


def test_ordinal_encode_unknown_categories() -> None:
    train = pd.DataFrame({"size": ["s", "m", "l"], "grade": ["b", "a", "c"]})
    other = pd.DataFrame({"size": ["xl", "s", "xl"], "grade": ["a", "a", "b"]})
    step = make_step("ordinal_encode", order={"size": ["s", "m", "l"]})
    step.fit(train)
    with pytest.raises(DataError, match=r"ordinal_encode: column 'size'.*\['xl'\].*unknown"):
        step.transform(other)
    lenient = make_step("ordinal_encode", order={"size": ["s", "m", "l"]}, unknown="value")
    lenient.fit(train)
    out = lenient.transform(other)
    assert out["size"].tolist() == [-1.0, 0.0, -1.0]
    assert out["grade"].tolist() == [0.0, 0.0, 1.0]  # no order given: sorted
    custom = make_step("ordinal_encode", unknown="value", unknown_value=99)
    custom.fit(train)
    assert custom.transform(other)["size"].tolist() == [99.0, 2.0, 99.0]


def test_ordinal_encode_checks_the_order_against_the_training_part() -> None:
    train = pd.DataFrame({"size": ["s", "m", "xxl"]})
    with pytest.raises(DataError, match=r"'size'.*\['xxl'\]"):
        make_step("ordinal_encode", order=["s", "m", "l"]).fit(train)
    with pytest.raises(DataError, match=r"order names column\(s\) \['colour'\]"):
        make_step("ordinal_encode", order={"colour": ["red"]}).fit(train)
    with pytest.raises(ConfigError, match="distinct"):
        make_step("ordinal_encode", order=["s", "s"])


def test_ordinal_stays_the_alias_of_label_encode() -> None:
    assert PREPROCESS.canonical("ordinal") == "label_encode"
    assert PREPROCESS.get("ordinal_encode").name == "ordinal_encode"


def test_drop_removes_the_named_columns() -> None:
    train = mixed_frame(10, 0)
    step = make_step("drop", columns=["a", "color"])
    step.fit(train)
    assert list(step.transform(train).columns) == ["b", "c"]
    assert list(step.transform(train[["b", "c"]]).columns) == ["b", "c"]  # already gone: fine
    with pytest.raises(DataError, match=r"drop: column\(s\) \['nope'\] not found"):
        make_step("drop", columns=["nope"]).fit(train)
    with pytest.raises(ConfigError, match=r"drop\.columns"):
        make_step("drop")


# --- datetime_parts -------------------------------------------------------------------------


def test_datetime_parts_of_date_strings() -> None:
    train = pd.DataFrame(
        {"n": [1.0, 2.0, 3.0], "day": ["2024-02-29 13:45", None, "2023-12-31"], "m": [0, 1, 2]}
    )
    step = make_step(
        "datetime_parts", columns=["day"], parts=["year", "month", "dayofweek", "hour"]
    )
    step.fit(train)
    out = step.transform(train)
    # the parts take the original column's place
    assert list(out.columns) == ["n", "day_year", "day_month", "day_dayofweek", "day_hour", "m"]
    assert out.iloc[0, 1:5].tolist() == [2024.0, 2.0, 3.0, 13.0]  # a Thursday
    assert out.iloc[2, 1:5].tolist() == [2023.0, 12.0, 6.0, 0.0]
    assert out.iloc[1, 1:5].isna().all()  # a missing date: missing parts, for impute
    with pytest.raises(DataError, match=r"datetime_parts: column 'day'.*not dates.*'soon'"):
        step.transform(pd.DataFrame({"n": [1.0], "day": ["soon"], "m": [0]}))


def test_datetime_parts_defaults_and_errors() -> None:
    train = dated_frame(5, 0)
    step = make_step("datetime_parts")  # every datetime column, the default parts
    step.fit(train)
    out = step.transform(train)
    assert [c for c in out.columns if c.startswith("when")] == [
        "when_year",
        "when_month",
        "when_day",
        "when_dayofweek",
    ]
    assert "when" not in out.columns
    assert out["when_year"].tolist() == [2021.0] * 5
    with pytest.raises(DataError, match=r"column 'a' cannot be read as dates.*float64"):
        make_step("datetime_parts", columns=["a"]).fit(train)
    with pytest.raises(DataError, match=r"no column has a datetime type.*columns: a, b, c"):
        make_step("datetime_parts").fit(numeric_frame(5, 0))
    with pytest.raises(ConfigError, match="parts"):
        make_step("datetime_parts", parts=["fortnight"])
    dotted = pd.DataFrame({"d": ["01.02.2020", "31.12.2021"]})
    strict = make_step("datetime_parts", columns=["d"], format="%d.%m.%Y", parts=["month"])
    strict.fit(dotted)
    assert strict.transform(dotted)["d_month"].tolist() == [2.0, 12.0]


# --- lags and differences -------------------------------------------------------------------


def series_frame(start: int, n: int) -> pd.DataFrame:
    t = np.arange(start, start + n, dtype=float)
    return pd.DataFrame({"t": t, "sq": t**2}, index=np.arange(start, start + n) + 100)


def test_lags_drop_the_rows_without_history_in_training() -> None:
    train = series_frame(0, 10)
    step = make_step("lags", columns=["t"], lags=[1, 3])
    step.fit(train)
    out = step.transform(train)
    assert list(out.columns) == ["t", "sq", "t_lag1", "t_lag3"]
    assert list(out.index) == list(train.index[3:])  # the first max(lags) rows have no history
    np.testing.assert_array_equal(out["t_lag1"], out["t"] - 1)
    np.testing.assert_array_equal(out["t_lag3"], out["t"] - 3)


def test_lags_of_later_data_continue_the_training_series() -> None:
    train, later = series_frame(0, 10), series_frame(10, 4)
    step = make_step("lags", lags=[1, 2], keep=False)
    step.fit(train)
    step.transform(train)
    out = step.transform(later)
    # no row dropped: the last training rows are the history of the first later rows
    assert list(out.index) == list(later.index)
    assert list(out.columns) == ["t_lag1", "t_lag2", "sq_lag1", "sq_lag2"]
    np.testing.assert_array_equal(out["t_lag1"], later["t"] - 1)
    np.testing.assert_array_equal(out["sq_lag2"], (later["t"] - 2) ** 2)


def test_lags_errors() -> None:
    with pytest.raises(DataError, match=r"lags: the training part has 3 rows.*history of 7"):
        make_step("lags", lags=[1, 7]).fit(series_frame(0, 3))
    with pytest.raises(DataError, match=r"lags: column\(s\) \['color'\] are not numeric"):
        make_step("lags", columns=["color"]).fit(mixed_frame(10, 0))
    clash = series_frame(0, 5).assign(t_lag1=0.0)
    step = make_step("lags", columns=["t"])
    step.fit(clash)
    with pytest.raises(DataError, match=r"\['t_lag1'\] already exist"):
        step.transform(clash)
    with pytest.raises(ConfigError, match="at least 1"):
        make_step("lags", lags=[0])


@pytest.mark.parametrize("order", [1, 2])
def test_differences(order: int) -> None:
    train, later = series_frame(0, 8), series_frame(8, 3)
    step = make_step("differences", columns=["sq"], order=order)
    step.fit(train)
    out = step.transform(train)
    assert list(out.index) == list(train.index[order:])
    expected = np.diff(train["sq"].to_numpy(), n=order)
    np.testing.assert_array_equal(out[f"sq_diff{order}"], expected)
    both = pd.concat([train, later])["sq"].to_numpy()
    np.testing.assert_array_equal(
        step.transform(later)[f"sq_diff{order}"], np.diff(both, n=order)[-3:]
    )


def test_lags_through_the_pipeline_keep_targets_aligned() -> None:
    from nntune.config import DataConfig
    from nntune.data.datasets import RawDataset
    from nntune.data.pipeline import prepare_data

    n = 60
    raw = RawDataset(
        "series",
        pd.DataFrame({"t": np.arange(n, dtype=float)}),
        np.arange(n, dtype=float) * 10,
        x_test=pd.DataFrame({"t": np.arange(n, n + 5, dtype=float)}),
        y_test=np.arange(n, n + 5, dtype=float) * 10,
    )
    config = DataConfig(
        dataset="unused",
        task="regression",
        val_split=0.0,
        preprocess=[Component(name="lags", options={"lags": [1, 2]})],
    )
    bundle = prepare_data(config, seed=0, raw=raw)
    assert bundle.feature_names == ["t", "t_lag1", "t_lag2"]
    assert len(bundle.x_train) == n - 2
    np.testing.assert_array_equal(bundle.y_train[:, 0].numpy(), bundle.x_train[:, 0].numpy() * 10)
    np.testing.assert_array_equal(bundle.x_train[:, 1], bundle.x_train[:, 0] - 1)
    test_x = bundle.x_test.numpy()
    np.testing.assert_array_equal(test_x[:, 0], np.arange(n, n + 5))
    np.testing.assert_array_equal(test_x[:, 2], np.arange(n - 2, n + 3))  # history: training tail
