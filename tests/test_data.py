"""Data: built-in datasets, data files, splits, limits, and preprocessing fitted on train only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nntune.config import Component, DataConfig, ValFold, load_config
from nntune.data import DATASETS, RawDataset, load_dataset, prepare_data
from nntune.errors import ConfigError, DataError

# facts about the built-in datasets, from their sources (not from nntune)
KNOWN = {
    "mnist1d": ("classification", 10),
    "digits": ("classification", 10),
    "iris": ("classification", 3),
    "wine": ("classification", 3),
    "breast_cancer": ("classification", 2),
    "diabetes": ("regression", 1),
    "spirals": ("classification", 2),
    "moons": ("classification", 2),
    "circles": ("classification", 2),
    "xor": ("classification", 2),
    "blobs": ("classification", 3),
}


@pytest.mark.parametrize("name", DATASETS.list())
def test_builtin_dataset_prepares(name: str) -> None:
    bundle = prepare_data(DataConfig(dataset=name), seed=0)
    raw = load_dataset(name)
    if name in KNOWN:
        task, n_outputs = KNOWN[name]
    else:  # a dataset added later: at least agree with its own labels
        task = "classification" if raw.y.dtype.kind in "iub" else "regression"
        n_outputs = len(np.unique(raw.y)) if task == "classification" else 1
    assert bundle.task == task
    assert bundle.n_outputs == n_outputs
    for x, y in (bundle.split("train"), bundle.split("val"), bundle.split("test")):
        assert x.dtype == torch.float32
        assert len(x) > 0 and len(x) == len(y)
        assert torch.isfinite(x).all()
        assert tuple(x.shape[1:]) == bundle.sample_shape
        if task == "classification":
            assert y.dtype == torch.int64
            assert int(y.min()) >= 0 and int(y.max()) < n_outputs
        else:
            assert y.dtype == torch.float32
    # nothing lost or duplicated by the splits
    n_total = len(raw.y) + (len(raw.y_test) if raw.y_test is not None else 0)
    assert len(bundle.x_train) + len(bundle.x_val) + len(bundle.x_test) == n_total
    if task == "classification":
        assert len(bundle.class_names) == n_outputs


# --- tables ---------------------------------------------------------------------------------


def table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "label": np.arange(n) % 3,
        }
    )


def csv(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def test_csv_with_target_column(tmp_path: Path) -> None:
    frame = table().rename(columns={"label": "kind"})
    bundle = prepare_data(DataConfig(dataset=csv(tmp_path, frame), target="kind"), seed=0)
    assert bundle.task == "classification"
    assert bundle.n_outputs == 3
    assert bundle.feature_names == ["a", "b"]
    assert bundle.sample_shape == (2,)
    total = len(bundle.x_train) + len(bundle.x_val) + len(bundle.x_test)
    assert total == len(frame)


def test_csv_target_is_guessed(tmp_path: Path) -> None:
    bundle = prepare_data(DataConfig(dataset=csv(tmp_path, table())), seed=0)
    assert bundle.feature_names == ["a", "b"]
    assert bundle.n_outputs == 3


def test_csv_regression_target(tmp_path: Path) -> None:
    frame = table()
    frame["price"] = frame["a"] * 3.3 + 0.1
    frame = frame.drop(columns="label")
    bundle = prepare_data(DataConfig(dataset=csv(tmp_path, frame), target="price"), seed=0)
    assert bundle.task == "regression"
    assert bundle.n_outputs == 1
    assert bundle.y_train.shape == (len(bundle.x_train), 1)


def test_missing_target_column(tmp_path: Path) -> None:
    path = csv(tmp_path, table())
    with pytest.raises(DataError) as info:
        prepare_data(DataConfig(dataset=path, target="lable"), seed=0)
    message = str(info.value)
    assert "data.target" in message
    assert "lable" in message
    for column in ("a", "b", "label"):
        assert column in message


def test_no_target_to_guess(tmp_path: Path) -> None:
    path = csv(tmp_path, table().rename(columns={"label": "outcome"}))
    with pytest.raises(DataError, match=r"data\.target") as info:
        prepare_data(DataConfig(dataset=path), seed=0)
    assert "outcome" in str(info.value)


def test_non_numeric_feature_without_encoder(tmp_path: Path) -> None:
    frame = table()
    frame["color"] = np.where(np.arange(len(frame)) % 2 == 0, "red", "blue")
    with pytest.raises(DataError) as info:
        prepare_data(DataConfig(dataset=csv(tmp_path, frame)), seed=0)
    message = str(info.value)
    assert "color" in message
    assert "onehot" in message and "label_encode" in message


def test_nan_in_features_without_impute(tmp_path: Path) -> None:
    frame = table()
    frame.loc[::4, "b"] = np.nan
    with pytest.raises(DataError) as info:
        prepare_data(DataConfig(dataset=csv(tmp_path, frame)), seed=0)
    assert "impute" in str(info.value)
    assert "b" in str(info.value)


def test_impute_and_onehot_pipeline(tmp_path: Path) -> None:
    frame = table(90)
    frame["color"] = np.array(["red", "green", "blue"])[np.arange(90) % 3]
    frame.loc[::5, "a"] = np.nan
    frame.loc[1::7, "color"] = np.nan
    data = DataConfig(
        dataset=csv(tmp_path, frame),
        preprocess=[Component(name="impute"), Component(name="onehot"), Component(name="minmax")],
    )
    bundle = prepare_data(data, seed=0)
    assert bundle.feature_names == ["a", "b", "color=blue", "color=green", "color=red"]
    assert bundle.sample_shape == (5,)
    for x, _ in (bundle.split("train"), bundle.split("val"), bundle.split("test")):
        assert torch.isfinite(x).all()
        onehot = x[:, 2:]
        # filled by the most frequent colour, so exactly one column is hot after minmax
        assert torch.equal(onehot.sum(dim=1), torch.ones(len(x)))


def test_label_strings_become_class_names(tmp_path: Path) -> None:
    names = np.array(["dog", "cat", "fish"])
    codes = np.arange(60) % 3
    frame = pd.DataFrame({"x": codes.astype(float), "animal": names[codes]})
    data = DataConfig(dataset=csv(tmp_path, frame), target="animal", preprocess=[])
    bundle = prepare_data(data, seed=0)
    assert bundle.task == "classification"
    assert sorted(bundle.class_names) == ["cat", "dog", "fish"]
    # every sample's label still names its own animal
    for x, y in (bundle.split("train"), bundle.split("val"), bundle.split("test")):
        for feature, label in zip(x[:, 0].tolist(), y.tolist(), strict=True):
            assert bundle.class_names[label] == names[int(feature)]


def test_parquet(tmp_path: Path) -> None:
    frame = table()
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    bundle = prepare_data(DataConfig(dataset=str(path), target="label"), seed=0)
    assert bundle.n_outputs == 3
    assert bundle.feature_names == ["a", "b"]
    assert bundle.x_train.dtype == torch.float32


def test_npz_images_keep_their_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 1, 8, 8)).astype(np.float32)
    y = np.arange(60) % 3
    path = tmp_path / "images.npz"
    np.savez(path, x=x, y=y)
    bundle = prepare_data(DataConfig(dataset=str(path)), seed=0)
    assert bundle.sample_shape == (1, 8, 8)
    assert bundle.x_train.shape[1:] == (1, 8, 8)
    assert bundle.x_test.shape[1:] == (1, 8, 8)
    assert bundle.n_outputs == 3


def test_npz_with_own_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "split.npz"
    np.savez(
        path,
        x=rng.normal(size=(40, 5)),
        y=np.arange(40) % 2,
        x_test=rng.normal(size=(11, 5)),
        y_test=np.arange(11) % 2,
    )
    bundle = prepare_data(DataConfig(dataset=str(path)), seed=0)
    assert len(bundle.x_test) == 11
    assert len(bundle.x_train) + len(bundle.x_val) == 40


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        prepare_data(DataConfig(dataset=str(tmp_path / "absent.csv")), seed=0)


# --- splits ---------------------------------------------------------------------------------


def imbalanced(counts: tuple[int, ...] = (60, 30, 10)) -> RawDataset:
    y = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    x = np.arange(len(y), dtype=np.float32).reshape(-1, 1)  # the row id
    return RawDataset(name="imbalanced", x=x, y=y)


def test_stratified_splits_keep_class_proportions() -> None:
    counts = np.array([60, 30, 10])
    raw = imbalanced(tuple(counts))
    data = DataConfig(dataset="unused", val_split=0.25, test_split=0.2, preprocess=[])
    bundle = prepare_data(data, seed=3, raw=raw)
    share = counts / counts.sum()
    for _, y in (bundle.split("train"), bundle.split("val"), bundle.split("test")):
        per_class = np.bincount(y.numpy(), minlength=3)
        assert np.all(np.abs(per_class - share * len(y)) <= 1.0), per_class
    ids = torch.cat([bundle.x_train, bundle.x_val, bundle.x_test]).flatten()
    assert sorted(ids.tolist()) == list(range(counts.sum()))  # disjoint and complete


def test_splits_depend_on_the_seed_only() -> None:
    data = DataConfig(dataset="unused", preprocess=[])
    first = prepare_data(data, seed=1, raw=imbalanced())
    again = prepare_data(data, seed=1, raw=imbalanced())
    other = prepare_data(data, seed=2, raw=imbalanced())
    assert torch.equal(first.x_test, again.x_test)
    assert not torch.equal(first.x_test, other.x_test)


def test_limit_caps_training_samples() -> None:
    data = DataConfig(dataset="unused", preprocess=[])
    full = prepare_data(data, seed=0, raw=imbalanced())
    limited = prepare_data(data.model_copy(update={"limit": 20}), seed=0, raw=imbalanced())
    assert len(limited.x_train) == 20
    assert len(full.x_train) > 20
    assert set(limited.x_train.flatten().tolist()) <= set(full.x_train.flatten().tolist())
    assert torch.equal(limited.x_val, full.x_val)
    assert torch.equal(limited.x_test, full.x_test)
    assert set(limited.y_train.tolist()) == {0, 1, 2}


def test_limit_larger_than_data_is_harmless() -> None:
    data = DataConfig(dataset="unused", preprocess=[], limit=10_000)
    limited = prepare_data(data, seed=0, raw=imbalanced())
    full = prepare_data(data.model_copy(update={"limit": None}), seed=0, raw=imbalanced())
    assert torch.equal(limited.x_train, full.x_train)


def test_test_split_too_small_for_the_classes() -> None:
    y = np.arange(40) % 10
    raw = RawDataset(name="many", x=np.zeros((40, 2), dtype=np.float32), y=y)
    with pytest.raises(DataError, match=r"data\.test_split"):
        prepare_data(DataConfig(dataset="unused", test_split=0.1), seed=0, raw=raw)


def test_val_folds_cover_the_training_part_once_stratified_and_keep_the_test_part() -> None:
    counts = np.array([60, 30, 10])
    base = DataConfig(dataset="unused", test_split=0.2, preprocess=[])
    plain = prepare_data(base, seed=3, raw=imbalanced(tuple(counts)))
    pool = set(torch.cat([plain.x_train, plain.x_val]).flatten().tolist())
    folds: list[set[float]] = []
    for index in range(4):
        data = base.model_copy(update={"val_fold": ValFold(folds=4, index=index)})
        bundle = prepare_data(data, seed=3, raw=imbalanced(tuple(counts)))
        assert torch.equal(bundle.x_test, plain.x_test)  # the test part does not move
        val = set(bundle.x_val.flatten().tolist())
        train = set(bundle.x_train.flatten().tolist())
        assert not val & train and val | train == pool
        per_class = np.bincount(bundle.y_val.numpy(), minlength=3)
        assert np.all(np.abs(per_class - counts / counts.sum() * len(val)) <= 1.0), per_class
        folds.append(val)
    assert sum(len(f) for f in folds) == len(pool) and set().union(*folds) == pool


def test_bad_val_folds_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"data\.val_fold.*index 4 is not a fold of 4"):
        load_config({"data": {"dataset": "moons", "val_fold": {"folds": 4, "index": 4}}})
    with pytest.raises(ConfigError, match=r"data\.val_fold"):
        load_config({"data": {"dataset": "moons", "val_fold": {"folds": 1}}})
    data = DataConfig(dataset="unused", preprocess=[], val_fold=ValFold(folds=90, index=0))
    with pytest.raises(DataError, match=r"data\.val_fold: 80 samples cannot be cut into 90"):
        prepare_data(data, seed=0, raw=imbalanced())


def test_zero_splits_keep_everything_for_training() -> None:
    data = DataConfig(dataset="unused", val_split=0.0, test_split=0.0, preprocess=[])
    bundle = prepare_data(data, seed=0, raw=imbalanced())
    assert len(bundle.x_train) == 100
    assert bundle.x_val is None and bundle.x_test is None


# --- preprocessing is fitted on the training part only -------------------------------------


def shifted_raw() -> RawDataset:
    """A pool around 0 and a test part around 100: fitting on all rows would be far off."""
    rng = np.random.default_rng(0)
    n = 80
    pool = pd.DataFrame({"id": np.arange(n, dtype=float), "value": rng.exponential(2.0, n)})
    test = pd.DataFrame({"id": -np.arange(1, 21, dtype=float), "value": 100 + rng.normal(size=20)})
    return RawDataset(
        name="shifted",
        x=pool,
        y=np.arange(n) % 2,
        x_test=test,
        y_test=np.arange(20) % 2,
    )


def test_standardize_is_fitted_on_training_rows_only() -> None:
    raw = shifted_raw()
    step = Component(name="standardize", options={"columns": ["value"]})
    bundle = prepare_data(DataConfig(dataset="unused", preprocess=[step]), seed=0, raw=raw)
    train_ids = bundle.x_train[:, 0].numpy().astype(int)  # the id column is left as it is
    values = raw.x["value"].to_numpy()
    train_values = values[train_ids]
    state = bundle.pipeline.steps[0][1].state_dict()
    mean = float(state["shift"][0])
    assert mean == pytest.approx(train_values.mean(), rel=1e-9)
    assert mean != pytest.approx(values.mean(), rel=1e-3)  # not the whole pool
    assert float(state["scale"][0]) == pytest.approx(train_values.std(), rel=1e-9)
    # hence the training part is exactly standardized, the others are not
    train_x = bundle.x_train[:, 1].double()
    assert float(train_x.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(train_x.std(unbiased=False)) == pytest.approx(1.0, abs=1e-5)
    assert float(bundle.x_val[:, 1].mean()) != pytest.approx(0.0, abs=1e-3)
    assert float(bundle.x_test[:, 1].mean()) > 10.0


@pytest.mark.parametrize("name", ["minmax", "whiten", "winsorize"])
def test_other_steps_do_not_see_the_test_part(name: str) -> None:
    raw = shifted_raw()
    bundle = prepare_data(
        DataConfig(dataset="unused", preprocess=[Component(name=name)]), seed=0, raw=raw
    )
    # fitted on the pool only, the test part (around 100) lands far outside the train range
    high = bundle.x_train[:, 1].max()
    assert float(bundle.x_test[:, 1].min()) > float(high) or name == "winsorize"
    if name == "winsorize":  # clipped to the training quantiles
        assert float(bundle.x_test[:, 1].max()) <= float(high) + 1e-6
