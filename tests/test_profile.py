"""Data understanding: column kinds, missing values, outliers, the target, and the suggested
preprocessing, which must be config that trains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nntune
from nntune.config import Component
from nntune.data import Pipeline, profile_frame, suggest_preprocess
from nntune.data.pipeline import frame_to_array
from nntune.errors import DataError


def customers(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A table of every kind: ids, numbers with gaps and outliers, categories, booleans, dates,
    a constant, and an imbalanced target that depends on age, membership and city."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40.0, 12.0, n)
    income = rng.lognormal(10.0, 0.3, n)
    income[rng.random(n) < 0.04] *= 40.0  # heavy outliers
    city = rng.choice(["paris", "rome", "oslo"], n).astype(object)
    member = rng.choice(["yes", "no"], n)
    signup = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    score = (age - 40.0) / 12.0 + 1.5 * (member == "yes") + 1.0 * (city == "rome")
    label = np.where(score + rng.normal(0.0, 0.3, n) > 2.0, "churn", "stay")
    frame = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "customer": [f"c{rng.integers(10**9):09d}" for _ in range(n)],
            "age": age,
            "income": income,
            "city": city,
            "zip": rng.choice([f"z{i:02d}" for i in range(30)], n),
            "member": member,
            "newsletter": rng.random(n) < 0.3,
            "signup": signup.strftime("%Y-%m-%d").to_numpy(dtype=object),
            "version": np.full(n, 2.0),
            "label": label,
        }
    )
    frame.loc[rng.random(n) < 0.1, "age"] = np.nan
    frame.loc[rng.random(n) < 0.05, "city"] = None
    frame.loc[rng.random(n) < 0.05, "signup"] = None
    return frame


def test_column_kinds_missing_values_and_identifiers() -> None:
    frame = customers()
    profile = profile_frame(frame, target="label")
    assert profile.n_rows == len(frame)
    assert profile.kinds() == {
        "id": "text_id",
        "customer": "text_id",
        "age": "numeric",
        "income": "numeric",
        "city": "categorical",
        "zip": "categorical",
        "member": "boolean",
        "newsletter": "boolean",
        "signup": "datetime",
        "version": "numeric",
    }
    age = profile.column("age")
    assert age.missing == int(frame["age"].isna().sum()) > 0
    assert age.missing_fraction == pytest.approx(frame["age"].isna().mean())
    assert profile.column("city").n_unique == 3
    assert profile.column("signup").missing > 0 and not profile.column("signup").has_time
    assert profile.column("id").drop == "all 400 values unique"
    assert profile.column("version").drop is not None  # constant
    assert "column 'id' looks like an identifier (all 400 values unique): dropped" in (
        profile.warnings
    )
    assert any("'customer' looks like an identifier" in w for w in profile.warnings)


def test_outliers_are_counted_with_the_iqr_rule() -> None:
    frame = customers()
    profile = profile_frame(frame, target="label")
    income = frame["income"]
    q1, q3 = income.quantile(0.25), income.quantile(0.75)
    outside = (income < q1 - 1.5 * (q3 - q1)) | (income > q3 + 1.5 * (q3 - q1))
    assert profile.column("income").outliers == int(outside.sum()) > 0
    far = (income < q1 - 3 * (q3 - q1)) | (income > q3 + 3 * (q3 - q1))
    assert profile.column("income").far_outliers == int(far.sum()) > 0
    assert profile.column("age").far_outliers == 0  # normal data has none
    assert any("'income' has far outliers" in w for w in profile.warnings)
    assert profile.column("city").outliers == 0  # categories have none


def test_classification_target_balance() -> None:
    frame = customers()
    target = profile_frame(frame, target="label").target
    assert target is not None
    counts = frame["label"].value_counts()
    assert target.kind == "classification"
    assert target.class_counts == {k: int(v) for k, v in counts.items()}
    assert target.imbalance_ratio == pytest.approx(counts.max() / counts.min())
    assert target.imbalance_ratio > 3.0
    assert "classification when" in target.rule
    warnings = profile_frame(frame, target="label").warnings
    assert any("target 'label' is imbalanced" in w and "class_weights" in w for w in warnings)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (np.random.default_rng(0).normal(size=100), "regression"),
        (np.arange(100) % 3, "classification"),
        (np.arange(100) * 1.0, "regression"),  # 100 distinct whole numbers: too many classes
        (np.where(np.arange(100) % 2 == 0, "a", "b"), "classification"),
    ],
)
def test_target_kind_follows_the_training_rule(values: np.ndarray, kind: str) -> None:
    frame = pd.DataFrame({"x": np.arange(100.0), "y": values})
    target = profile_frame(frame, target="y").target
    assert target is not None and target.kind == kind
    assert (target.class_counts is None) == (kind == "regression")


def test_identifier_rules() -> None:
    rng = np.random.default_rng(1)
    n = 50
    frame = pd.DataFrame(
        {
            "row": np.arange(n) + 1000,  # counts rows: an identifier
            "order_id": rng.permutation(n),  # distinct and named so
            "userId": rng.permutation(n) * 7,
            "paid": rng.permutation(n),  # distinct, not sorted, not named like an id
            "amount": rng.normal(size=n),  # floats are never identifiers
            "note": [f"free text {i}" for i in range(n)],  # words: text, read by data.text
            "code": [f"ORD-{i:04d}" for i in range(n)],  # one distinct word each: an identifier
        }
    )
    kinds = profile_frame(frame).kinds()
    assert kinds == {
        "row": "text_id",
        "order_id": "text_id",
        "userId": "text_id",
        "paid": "numeric",
        "amount": "numeric",
        "note": "text",
        "code": "text_id",
    }
    # a few rows do not make categories look like identifiers
    small = pd.DataFrame({"color": ["red", "blue", "green"], "n": [3, 1, 2]})
    assert profile_frame(small).kinds() == {"color": "categorical", "n": "numeric"}


def test_dates_booleans_and_empty_columns() -> None:
    frame = pd.DataFrame(
        {
            "stamp": pd.date_range("2024-01-01 08:30", periods=6, freq="5h"),
            "day": ["01/02/2024", "03/02/2024", None, "07/02/2024", "09/02/2024", "11/02/2024"],
            "range": ["3-4", "5-6", "3-4", "7-8", "5-6", "3-4"],  # not dates
            "flag": ["Y", "N", "N", "Y", None, "Y"],
            "bit": [0, 1, 1, 0, 0, 1],
            "nothing": [np.nan] * 6,
        }
    )
    profile = profile_frame(frame)
    assert profile.kinds() == {
        "stamp": "datetime",
        "day": "datetime",
        "range": "categorical",
        "flag": "boolean",
        "bit": "boolean",
        "nothing": "numeric",
    }
    assert profile.column("stamp").has_time
    assert profile.column("nothing").drop == "it has no values"
    steps = suggest_preprocess(profile)
    assert steps[0] == {"name": "drop", "columns": ["nothing"]}
    assert steps[1] == {
        "name": "datetime_parts",
        "columns": ["stamp", "day"],
        "parts": ["year", "month", "day", "dayofweek", "hour", "minute"],
    }
    # numeric 0/1 needs no encoding; Y/N does
    encode = next(s for s in steps if isinstance(s, dict) and s["name"] == "ordinal_encode")
    assert encode["columns"] == ["flag"]


def test_unknown_target_column() -> None:
    with pytest.raises(DataError, match=r"data.target = 'nope'.*columns: a"):
        profile_frame(pd.DataFrame({"a": [1.0]}), target="nope")


def test_profile_is_plain_json() -> None:
    profile = profile_frame(customers(), target="label")
    text = json.dumps(profile.to_json())
    back = json.loads(text)
    assert back["target"]["kind"] == "classification"
    assert {c["name"] for c in back["columns"]} >= {"id", "age", "signup"}
    assert back["warnings"] == profile.warnings


def test_suggested_steps_are_readable_config() -> None:
    profile = profile_frame(customers(), target="label")
    steps = suggest_preprocess(profile)
    assert steps == [
        {"name": "drop", "columns": ["id", "customer", "version"]},
        {
            "name": "datetime_parts",
            "columns": ["signup"],
            "parts": ["year", "month", "day", "dayofweek"],
        },
        {
            "name": "impute",
            "strategy": "median",
            "columns": [
                "signup_year",
                "signup_month",
                "signup_day",
                "signup_dayofweek",
                "age",
            ],
        },
        {"name": "impute", "strategy": "most_frequent", "columns": ["city"]},
        {"name": "outliers", "method": "clip", "rule": "iqr", "factor": 3.0, "columns": ["income"]},
        {"name": "ordinal_encode", "columns": ["member", "newsletter", "zip"], "unknown": "value"},
        {"name": "onehot", "columns": ["city"]},
        "standardize",
    ]


def test_suggested_steps_give_finite_numeric_features() -> None:
    frame = customers().drop(columns="label")
    steps = suggest_preprocess(profile_frame(frame))
    components = [
        Component(name=s)
        if isinstance(s, str)
        else Component(name=s["name"], options={k: v for k, v in s.items() if k != "name"})
        for s in steps
    ]
    pipeline = Pipeline.from_components(components)
    train, later = frame.iloc[:300], frame.iloc[300:]
    out = pipeline.fit_transform(train)
    assert "id" not in out.columns and "signup_year" in out.columns
    assert np.isfinite(frame_to_array(out, "train", "customers")).all()
    assert np.isfinite(frame_to_array(pipeline.transform(later), "test", "customers")).all()


def test_training_on_a_csv_with_the_suggested_preprocessing(in_tmp: Path) -> None:
    frame = customers(n=500)
    frame.to_csv("customers.csv", index=False)
    # the profile of the file as read (strings, not the generator's objects)
    steps = suggest_preprocess(profile_frame(pd.read_csv("customers.csv"), target="label"))
    config = {
        "seed": 0,
        "data": {"dataset": "customers.csv", "target": "label", "preprocess": steps},
        "model": {"arch": "mlp", "hidden": [32]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 15, "batch_size": 32, "threads": 1},
    }
    result = nntune.train(config, out="run")
    majority = frame["label"].value_counts(normalize=True).max()
    assert result.test["accuracy"] > majority + 0.05  # more than the majority class
    predictor = nntune.load_run("run")
    rows = frame.drop(columns="label").head(5)
    rows.loc[0, "city"] = "lisbon"  # unseen category: onehot gives zeros
    rows.loc[1, "zip"] = "z99"  # unseen code: -1
    rows.loc[2, "age"] = np.nan  # imputed
    out = predictor.predict(rows)
    assert len(out["predictions"]) == 5
    assert set(out["predictions"]) <= {"churn", "stay"}
