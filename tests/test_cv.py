"""``nntune cv``: k-fold, repeated and leave-one-out cross-validation, no preprocessing leakage,
the JSON contract and bad input."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nntune.errors import ConfigError
from nntune.evaluate.cv import cross_validate
from tests.helpers import nntune_in_process, write_config

IRIS: dict = {
    "seed": 0,
    "data": {"dataset": "iris", "val_split": 0.0, "test_split": 0.2},
    "model": {"arch": "mlp", "hidden": [8]},
    "train": {"epochs": 3, "batch_size": 32, "threads": 1},
}


def test_three_folds_give_three_values_and_their_statistics(in_tmp: Path) -> None:
    lines: list[str] = []
    result = cross_validate(IRIS, folds=3, progress=lines.append)
    assert result["method"] == "stratified_kfold" and result["folds"] == 3
    assert result["repeats"] == 1 and result["metric"] == "test_accuracy"
    values = result["values"]
    assert len(values) == 3 and len(result["per_fold"]) == 3 and len(lines) == 3
    assert all(0.0 <= v <= 1.0 for v in values)
    assert result["mean"] == pytest.approx(statistics.fmean(values))
    assert result["std"] == pytest.approx(statistics.stdev(values))  # sample std, ddof 1
    assert result["metrics"]["accuracy"]["mean"] == pytest.approx(result["mean"])
    assert set(result["metrics"]) == {"loss", "accuracy", "f1", "auc"}
    # the pool is iris' training part: 150 - 30 held out by test_split, which stays unused
    assert result["n_samples"] == 120
    assert sum(r["n_test"] for r in result["per_fold"]) == 120
    assert all(r["n_train"] == 80 and r["n_test"] == 40 for r in result["per_fold"])
    assert "unused" in result["note"]
    # equal fold sizes: the pooled accuracy is the mean of the folds'
    assert result["pooled"]["accuracy"] == pytest.approx(result["mean"])
    assert not list(in_tmp.iterdir())  # no run folders


def test_repeats_multiply_the_folds_and_regression_uses_kfold(in_tmp: Path) -> None:
    result = cross_validate(IRIS, folds=3, repeats=2)
    assert result["method"] == "repeated_stratified_kfold" and len(result["values"]) == 6
    assert [(r["repeat"], r["fold"]) for r in result["per_fold"]] == [
        (r, f) for r in range(2) for f in range(3)
    ]
    diabetes = {**IRIS, "data": {"dataset": "diabetes", "limit": 60, "val_split": 0.0}}
    plain = cross_validate(diabetes, folds=3)
    assert plain["method"] == "kfold" and plain["metric"] == "test_rmse"
    assert plain["n_samples"] == 60 and len(plain["values"]) == 3
    repeated = cross_validate(diabetes, folds=2, repeats=2)
    assert repeated["method"] == "repeated_kfold" and len(repeated["values"]) == 4


def test_leave_one_out(in_tmp: Path) -> None:
    moons = {
        **IRIS,
        "data": {"dataset": "moons", "n_samples": 16, "val_split": 0.0, "test_split": 0.0},
        "train": {**IRIS["train"], "epochs": 1},
    }
    result = cross_validate(moons, loo=True)
    assert result["method"] == "leave_one_out" and result["folds"] == 16
    assert len(result["values"]) == 16 and set(result["values"]) <= {0.0, 1.0}
    assert result["pooled"]["accuracy"] == pytest.approx(result["mean"])


def test_each_fold_fits_preprocessing_on_its_own_training_rows_only(in_tmp: Path) -> None:
    rng = np.random.default_rng(0)
    n = 30
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["label"] = np.arange(n) % 2
    frame.loc[7, "a"] = 1.0e6  # an extreme outlier in a single row
    path = in_tmp / "table.csv"
    frame.to_csv(path, index=False)
    config = {
        **IRIS,
        "data": {
            "dataset": str(path),
            "target": "label",
            "val_split": 0.0,
            "test_split": 0.0,
            "preprocess": ["standardize"],
        },
    }
    raw = frame[["a", "b"]].to_numpy(dtype=np.float64)
    shifts: list[np.ndarray] = []

    def check(record: dict[str, Any], trainer: Any) -> None:
        bundle = trainer.bundle
        ((_, step),) = bundle.pipeline.steps
        shift, scale = np.asarray(step.shift_, float), np.asarray(step.scale_, float)
        # which rows were held out: un-standardize column b (outlier-free, so float32-exact
        # enough) with the fold's fitted statistics and find those rows in the table
        held_b = bundle.x_test.numpy()[:, 1].astype(float) * scale[1] + shift[1]
        held = [int(np.argmin(np.abs(raw[:, 1] - v))) for v in held_b]
        assert len(set(held)) == len(held) == record["n_test"]
        training = np.setdiff1d(np.arange(n), held)
        # the fitted mean is the mean of the fold's training rows: the held-out ones are out
        np.testing.assert_allclose(shift, raw[training].mean(axis=0), rtol=1e-6)
        assert record["n_train"] + record["n_test"] == n
        shifts.append(shift)

    cross_validate(config, folds=3, on_fold=check)
    assert len(shifts) == 3
    # only the fold that holds the outlier out is free of it; the others' means carry it
    clean = [s for s in shifts if abs(s[0]) < 10]
    assert len(clean) == 1
    assert all(s[0] > 1e4 for s in shifts if abs(s[0]) >= 10)
    assert len({round(float(s[1]), 6) for s in shifts}) == 3  # a different mean in every fold


def test_bad_arguments_are_config_errors() -> None:
    for kwargs in ({"folds": 1}, {"folds": 0}, {"repeats": 0}, {"loo": True, "repeats": 2}):
        with pytest.raises(ConfigError):
            cross_validate(IRIS, **kwargs)
    with pytest.raises(ConfigError, match="fewer folds"):
        cross_validate(IRIS, folds=41)  # 40 samples per class in the pool
    big = {**IRIS, "data": {"dataset": "moons", "n_samples": 700, "test_split": 0.0}}
    with pytest.raises(ConfigError, match="500"):
        cross_validate(big, loo=True)
    with pytest.raises(ConfigError, match="held-out"):
        cross_validate(IRIS, folds=3, metric="val_accuracy")
    with pytest.raises(ConfigError):
        cross_validate(IRIS, folds=3, metric="test_rmse")  # not a classification metric


def test_cli_json_contract_progress_and_exit_2(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(in_tmp / "iris.yaml", IRIS)
    done = nntune_in_process(
        capsys, "cv", str(path), "--folds", "3", "--set", "train.epochs=1", "--json", cwd=in_tmp
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for key in (
        "folds",
        "repeats",
        "method",
        "metric",
        "mean",
        "std",
        "values",
        "metrics",
        "per_fold",
        "pooled",
    ):
        assert key in result
    assert result["folds"] == 3 and len(result["per_fold"]) == 3
    assert result["per_fold"][0]["epochs_run"] == 1
    assert len([ln for ln in done.stderr.splitlines() if ln.startswith("cv: [")]) == 3
    text = nntune_in_process(capsys, "cv", str(path), "--folds", "2", "--quiet", cwd=in_tmp)
    assert text.returncode == 0 and "test_accuracy" in text.stdout and not text.stderr
    for args in (
        ["--folds", "1"],
        ["--folds", "41"],
        ["--loo", "--repeats", "3"],
        ["--metric", "nope"],
    ):
        bad = nntune_in_process(capsys, "cv", str(path), *args, cwd=in_tmp)
        assert bad.returncode == 2, (args, bad.stderr)
        assert bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
