"""``nntune compare``: the paired statistics, the verdict on real trainings, the JSON contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from nntune.errors import ConfigError
from nntune.evaluate.compare import compare
from nntune.evaluate.stats import (
    bootstrap_ci,
    cohens_d,
    mcnemar_test,
    paired_t_test,
    wilcoxon_test,
)
from tests.helpers import nntune_in_process, write_config

# --- the statistics on fixed numbers ------------------------------------------------------------

A = np.array([0.91, 0.88, 0.93, 0.90, 0.87, 0.92, 0.89])
B = np.array([0.85, 0.865, 0.88, 0.83, 0.86, 0.94, 0.855])  # no tied |A - B|


def test_paired_t_test_is_scipys() -> None:
    result = paired_t_test(A, B)
    expected = stats.ttest_rel(A, B)
    assert result["p_value"] == pytest.approx(expected.pvalue)
    assert result["statistic"] == pytest.approx(expected.statistic)
    assert result["df"] == len(A) - 1


def test_t_test_of_equal_differences_is_undefined_not_infinite() -> None:
    zero = paired_t_test(A, A.copy())
    assert zero["p_value"] is None and "zero" in zero["reason"]
    # differences equal up to rounding (0.9 - 0.8875 vs 0.8875 - 0.875): zero variance
    same = paired_t_test(np.array([0.9, 0.8875, 0.9125]), np.array([0.8875, 0.875, 0.9]))
    assert same["p_value"] is None and "equal" in same["reason"]


def test_wilcoxon_is_scipys_and_says_when_it_cannot_reach_significance() -> None:
    result = wilcoxon_test(A, B)
    assert result["p_value"] == pytest.approx(stats.wilcoxon(A, B).pvalue)
    assert result["method"] == "exact" and "note" not in result
    small = wilcoxon_test(A[:4], B[:4])
    assert small["p_value"] == pytest.approx(0.125)  # 2 / 2^4: all four differences positive
    assert "cannot reach 0.05" in small["note"]
    zeros = wilcoxon_test(A, A.copy())
    assert zeros["p_value"] is None and "zero" in zeros["reason"]
    # zero differences are dropped, tied magnitudes get the exact sign-flip distribution
    tied = wilcoxon_test(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([1.0, 1.5, 2.5, 4.5, 4.5]))
    assert tied["n_nonzero"] == 4 and tied["method"].startswith("exact")
    assert tied["p_value"] == pytest.approx(0.625)  # |d| all 0.5, one negative: 10/16 flips


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_pairs() -> None:
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1])
    a = y.copy()
    b = y.copy()
    b[:7] = 1 - b[:7]  # B wrong on 7 samples A gets right
    a[7] = 1 - a[7]  # A wrong on one B gets right
    result = mcnemar_test(y, a, b)
    assert (result["a_only_correct"], result["b_only_correct"]) == (7, 1)
    assert result["p_value"] == pytest.approx(stats.binomtest(7, 8, 0.5).pvalue)
    same = mcnemar_test(y, a, a)
    assert same["p_value"] == 1.0 and same["reason"] == "no discordant predictions"


def test_bootstrap_interval_and_effect_size() -> None:
    d = A - B
    ci = bootstrap_ci(d)
    assert ci == bootstrap_ci(d)  # seeded
    assert ci["low"] < d.mean() < ci["high"] and ci["resamples"] == 10_000
    assert d.min() <= ci["low"] and ci["high"] <= d.max()
    assert cohens_d(d)["cohens_d"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert cohens_d(np.zeros(4))["cohens_d"] is None


# --- real trainings ---------------------------------------------------------------------------

MOONS = {
    "data": {"dataset": "moons", "n_samples": 400},
    "model": {"arch": "mlp", "hidden": [16, 16]},
    "train": {"epochs": 5, "batch_size": 32, "threads": 1},
}


def _sgd(lr: float) -> dict:
    return {**MOONS, "optimizer": {"name": "sgd", "lr": lr}}


def test_identical_configs_give_no_evidence(in_tmp: Path, tiny: dict) -> None:
    lines: list[str] = []
    result = compare(tiny, tiny, seeds=2, progress=lines.append)
    assert result["verdict"] == "no evidence"
    assert result["metric"] == "test_accuracy" and result["higher_is_better"]
    assert result["p_value"] is None and "zero" in result["tests"]["t_test"]["reason"]
    assert result["a"]["values"] == result["b"]["values"]
    assert result["difference"]["values"] == [0.0, 0.0]
    assert result["tests"]["mcnemar"]["p_value"] == 1.0  # the same predictions: same split
    assert len(lines) == 4 and all("test_accuracy" in line for line in lines)
    json.dumps(result, allow_nan=False)


def test_a_learning_rate_far_too_small_loses(in_tmp: Path) -> None:
    slow, fast = _sgd(1e-5), _sgd(0.1)
    result = compare(slow, fast, seeds=4)
    assert result["verdict"] == "B better", result
    assert result["p_value"] < 0.05
    assert result["a"]["mean"] < result["b"]["mean"]
    assert result["difference"]["ci95"]["high"] < 0
    assert result["effect_size"]["cohens_d"] < 0
    assert (
        result["tests"]["mcnemar"]["b_only_correct"] > result["tests"]["mcnemar"]["a_only_correct"]
    )
    # lower is better for a loss: the good config, now A, wins on test_loss
    flipped = compare(fast, slow, seeds=4, metric="test_loss")
    assert flipped["verdict"] == "A better" and not flipped["higher_is_better"]
    assert flipped["a"]["mean"] < flipped["b"]["mean"]


def test_regression_compares_test_rmse(in_tmp: Path, tiny: dict) -> None:
    tiny["data"] = {"dataset": "diabetes"}
    result = compare(tiny, tiny, seeds=2, overrides={"train.epochs": 1})
    assert result["metric"] == "test_rmse" and not result["higher_is_better"]
    assert result["verdict"] == "no evidence"
    assert "classification only" in result["tests"]["mcnemar"]["reason"]


def test_bad_seeds_and_metrics_are_errors(tiny: dict) -> None:
    with pytest.raises(ConfigError, match="at least 2 seeds"):
        compare(tiny, tiny, seeds=1)
    with pytest.raises(ConfigError, match="did you mean 'accuracy'"):
        compare(tiny, tiny, seeds=2, metric="test_acuracy")


def test_cli_json_contract_progress_and_exit_2(
    in_tmp: Path, tiny: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_config(in_tmp / "a.yaml", tiny)
    b = write_config(in_tmp / "b.yaml", tiny)
    done = nntune_in_process(
        capsys,
        "compare",
        str(a),
        str(b),
        "--seeds",
        "2",
        "--set",
        "train.epochs=1",
        "--json",
        cwd=in_tmp,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout is one JSON document; progress went to stderr
    assert {"verdict", "metric", "a", "b", "p_value", "test"} <= set(result)
    assert {"mean", "std", "values"} <= set(result["a"]) and len(result["b"]["values"]) == 2
    assert result["verdict"] == "no evidence" and "t-test" in result["test"]
    assert len([line for line in done.stderr.splitlines() if "seed" in line]) == 4
    text = nntune_in_process(
        capsys, "compare", str(a), str(b), "--seeds", "2", "--set", "train.epochs=1", cwd=in_tmp
    )
    assert text.returncode == 0 and "verdict     no evidence" in text.stdout
    for args in (("--seeds", "1"), ("--metric", "test_r2"), ("--set", "optimizer.lr=fast")):
        bad = nntune_in_process(capsys, "compare", str(a), str(b), *args, cwd=in_tmp)
        assert bad.returncode == 2, (args, bad.stderr)
        assert "Traceback" not in bad.stderr
