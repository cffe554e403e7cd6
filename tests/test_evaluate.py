"""``nntune evaluate``: the metrics (scikit-learn's), the exact rebuild of a run's splits, the
model's cost, the JSON contract and bad run folders."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

import nntune
from nntune.evaluate import classification_scores, evaluate_run, regression_scores
from tests.conftest import TINY
from tests.helpers import nntune_in_process


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained TINY run folder (moons, mlp, 3 epochs), shared by the tests of this module."""
    out = tmp_path_factory.mktemp("evaluate") / "run"
    nntune.train(copy.deepcopy(TINY), out=out)
    return out


# --- the metrics on fixed predictions -------------------------------------------------------


def _probabilities(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k  # every class present
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y] * rng.random((n, 1))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probs


@pytest.mark.parametrize("k", [2, 4])
def test_classification_scores_are_sklearns(k: int) -> None:
    y, probs = _probabilities(60, k, seed=k)
    pred = probs.argmax(axis=1)
    out = classification_scores(y, probs, class_names=[f"c{i}" for i in range(k)])
    m = out["metrics"]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, probs))
    if k == 2:
        assert m["auc"] == pytest.approx(skm.roc_auc_score(y, probs[:, 1]))
        assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, probs[:, 1]))
    else:
        assert m["auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr"))
        onehot = np.eye(k)[y]
        assert m["pr_auc"] == pytest.approx(
            skm.average_precision_score(onehot, probs, average="macro")
        )
    assert out["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    p, r, f, s = skm.precision_recall_fscore_support(y, pred)
    assert [row["class"] for row in out["per_class"]] == [f"c{i}" for i in range(k)]
    for i, row in enumerate(out["per_class"]):
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p[i], r[i], f[i]))
        assert row["support"] == s[i]


def test_undefined_classification_scores_are_none_not_nan() -> None:
    y = np.zeros(5, dtype=np.int64)  # a single class: ROC-AUC and PR-AUC are undefined
    probs = np.tile([0.7, 0.2, 0.1], (5, 1))
    out = classification_scores(y, probs)
    assert out["metrics"]["auc"] is None and out["metrics"]["pr_auc"] is None
    assert out["metrics"]["accuracy"] == 1.0
    assert [row["support"] for row in out["per_class"]] == [5, 0, 0]  # absent classes listed
    json.dumps(out, allow_nan=False)


def test_regression_scores_are_sklearns() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 1))
    pred = y + rng.normal(scale=0.3, size=(50, 1))
    m = regression_scores(y, pred)["metrics"]
    assert m["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, pred)))
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred))


# --- a run folder -----------------------------------------------------------------------------


def test_evaluate_equals_the_runs_summary(tiny_run: Path) -> None:
    summary = json.loads((tiny_run / "summary.json").read_text())
    # the summary measured the final weights: last.pt (and best.pt when the last epoch was best)
    checkpoints = ["last"] + (["best"] if summary["best_epoch"] == summary["epochs_run"] else [])
    for checkpoint in checkpoints:
        result = evaluate_run(tiny_run, checkpoint=checkpoint, cost=checkpoint == "last")
        assert result["checkpoint"] == checkpoint
        assert result["task"] == "classification"
        for name, value in summary["test"].items():
            assert result["metrics"][name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
        assert result["n"] == sum(row["support"] for row in result["per_class"])
        assert sum(map(sum, result["confusion_matrix"])) == result["n"]
    val = evaluate_run(tiny_run, split="val", checkpoint="last", cost=False)
    for name, value in summary["val"].items():
        assert val["metrics"][name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    cost = result["cost"] if checkpoints == ["last"] else evaluate_run(tiny_run)["cost"]
    assert cost["parameters"] == summary["parameters"] == 2 * 16 + 16 + 16 * 16 + 16 + 16 * 2 + 2
    # FlopCounterMode counts 2 FLOPs per multiply-add of the three linear layers
    assert cost["flops_per_sample"] == 2 * (2 * 16 + 16 * 16 + 16 * 2)
    for key in ("latency_ms_batch1", "latency_ms_per_sample_batch256"):
        assert cost[key] > 0


def test_last_of_a_weight_averaged_run_is_its_average(in_tmp: Path, tiny: dict) -> None:
    summary = nntune.train(tiny, {"train.ema": {"decay": 0.9}}, out="ema").summary
    result = evaluate_run("ema", checkpoint="last", cost=False)
    for name, value in summary["test"].items():
        assert result["metrics"][name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_evaluate_a_regression_run(in_tmp: Path, tiny: dict) -> None:
    tiny["data"] = {"dataset": "diabetes"}
    summary = nntune.train(tiny, {"train.epochs": 2}, out="reg").summary
    result = evaluate_run("reg", checkpoint="last", cost=False)
    assert result["task"] == "regression"
    assert set(result["metrics"]) == {"loss", "rmse", "mae", "r2"}
    for name, value in summary["test"].items():
        assert result["metrics"][name] == pytest.approx(value, rel=1e-9), name
    assert result["per_class"] == [] and result["confusion_matrix"] is None


def test_cli_json_follows_the_contract(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = nntune_in_process(capsys, "evaluate", str(tiny_run), "--json", cwd=tiny_run.parent)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout is one JSON document
    assert result["split"] == "test"
    assert {"accuracy", "f1", "auc"} <= set(result["metrics"])
    assert {"run", "checkpoint", "task", "per_class", "confusion_matrix", "cost"} <= set(result)
    assert set(result["per_class"][0]) == {"class", "precision", "recall", "f1", "support"}
    assert {
        "parameters",
        "flops_per_sample",
        "latency_ms_batch1",
        "latency_ms_per_sample_batch256",
    } <= set(result["cost"])
    text = nntune_in_process(
        capsys, "evaluate", str(tiny_run), "--split", "train", "--threads", "1", cwd=tiny_run.parent
    )
    assert text.returncode == 0, text.stderr
    for word in ("accuracy", "pr_auc", "per class", "confusion matrix", "FLOPs per sample"):
        assert word in text.stdout


def _error(capsys: pytest.CaptureFixture[str], cwd: Path, *args: str) -> str:
    done = nntune_in_process(capsys, "evaluate", *args, cwd=cwd)
    assert done.returncode == 2, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stderr


def test_bad_run_folders_and_arguments_exit_2(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = str(tiny_run)
    assert "not found" in _error(capsys, tmp_path, "nowhere")
    (tmp_path / "empty").mkdir()
    assert "config.yaml" in _error(capsys, tmp_path, "empty")
    assert "allowed: test, val, train" in _error(capsys, tmp_path, run, "--split", "dev")
    assert "allowed: best, last" in _error(capsys, tmp_path, run, "--checkpoint", "first")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    for name in ("best.pt", "last.pt"):  # truncated, as by a full disk
        path = broken / "checkpoints" / name
        path.write_bytes(path.read_bytes()[:200])
    assert "corrupt or truncated" in _error(capsys, tmp_path, "broken")
    shutil.rmtree(broken / "checkpoints")
    assert "not found" in _error(capsys, tmp_path, "broken")


def test_a_split_the_run_does_not_have_exits_2(
    in_tmp: Path, tiny: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    nntune.train(tiny, {"data.val_split": 0, "train.epochs": 1}, out="noval")
    assert "no val part" in _error(capsys, in_tmp, "noval", "--split", "val")
    assert nntune_in_process(capsys, "evaluate", "noval", "--json", cwd=in_tmp).returncode == 0


def test_changed_or_unsaved_data_is_refused(
    in_tmp: Path, tiny: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    table = pd.DataFrame(x, columns=["a", "b", "c"]).assign(label=(x[:, 0] > 0).astype(int))
    table.to_csv("data.csv", index=False)
    tiny["data"] = {"dataset": "data.csv", "target": "label"}
    nntune.train(tiny, {"train.epochs": 1}, out="csv")
    assert evaluate_run("csv", cost=False)["n"] == 40  # the same data: fine
    table.assign(a=table["a"] * 10).to_csv("data.csv", index=False)
    assert "not the data it was trained on" in _error(capsys, in_tmp, "csv")
    nntune.train(tiny, {"train.epochs": 1}, out="arrays", data=(x, table["label"].to_numpy()))
    assert "data given in Python" in _error(capsys, in_tmp, "arrays")
