"""Preprocessing steps: fit/transform, checkpointable state, and each step's arithmetic."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from nntune.data import PREPROCESS
from nntune.errors import ConfigError
from nntune.registry import Entry

CATEGORICAL = {"onehot", "label_encode"}


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


def frames_for(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    if name in CATEGORICAL:
        return mixed_frame(50, 0), mixed_frame(20, 1)
    if name == "impute":
        fit, other = mixed_frame(50, 0), mixed_frame(20, 1)
        fit.loc[::7, "a"] = np.nan
        other.loc[::3, "a"] = np.nan
        other.loc[1::4, "color"] = None
        return fit, other
    return numeric_frame(50, 0), numeric_frame(20, 1)


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", PREPROCESS.list())
def test_fit_transform_and_state_round_trip(name: str) -> None:
    fit_frame, other = frames_for(name)
    original_other = other.copy()
    step = make_step(name)
    step.fit(fit_frame)
    out = step.transform(other)
    assert isinstance(out, pd.DataFrame)
    pd.testing.assert_frame_equal(other, original_other)  # the input is not modified
    assert len(out) <= len(other)
    assert set(out.index) <= set(other.index)

    restored = make_step(name)
    restored.load_state_dict(roundtrip(step.state_dict()))
    pd.testing.assert_frame_equal(restored.transform(other), out)
    pd.testing.assert_frame_equal(restored.transform(fit_frame), step.transform(fit_frame))


@pytest.mark.parametrize("name", PREPROCESS.list())
def test_unknown_option_is_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_step(name, no_such_option=1)


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
