"""Significance tests for paired measurements (two configs trained on the same seeds).

Every function returns a plain dict ready for JSON; a test that is undefined for the data
(all differences zero, zero variance, no discordant predictions) reports ``p_value: None`` or
the conventional value with a ``reason``, never an exception.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

# differences this close to each other (relative to their size) count as all equal: values
# like accuracies k/n subtract with rounding errors of ~1e-16, which must not make a t statistic
# of 1e14 out of what is really zero variance
_EQUAL = 1e-12


def _all_equal(d: np.ndarray) -> bool:
    return bool(np.ptp(d) <= _EQUAL * max(1.0, float(np.max(np.abs(d)))))


def _all_zero(d: np.ndarray) -> bool:
    return bool(np.max(np.abs(d)) <= _EQUAL)


def paired_t_test(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Two-sided paired t-test of ``a`` against ``b`` (``scipy.stats.ttest_rel``)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = a - b
    result: dict[str, Any] = {
        "name": "paired t-test (scipy.stats.ttest_rel, two-sided)",
        "n": len(d),
        "statistic": None,
        "df": len(d) - 1,
        "p_value": None,
    }
    if len(d) < 2:
        return {**result, "reason": "needs at least 2 pairs"}
    if _all_zero(d):
        return {**result, "reason": "all paired differences are zero: no difference to test"}
    if _all_equal(d):
        return {
            **result,
            "reason": "all paired differences are equal (zero variance): the t statistic is "
            "undefined; use more seeds or look at the Wilcoxon and McNemar tests",
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test = stats.ttest_rel(a, b)
    p = float(test.pvalue)
    return {
        **result,
        "statistic": float(test.statistic),
        "p_value": p if math.isfinite(p) else None,
    }


def wilcoxon_test(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test of the paired differences (``scipy.stats.wilcoxon``).

    Zero differences are dropped (Wilcoxon's original treatment). The p-value is exact: from
    the exact null distribution when the remaining |differences| have no ties, else from all
    2^n sign flips (``scipy.stats.PermutationMethod``, n ≤ 16), else the normal approximation.
    With n < 6 non-zero differences the smallest attainable two-sided p-value is 2/2^n ≥
    0.0625: the test cannot reach α = 0.05, which the ``note`` says.
    """
    from scipy import stats

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(d)))) if len(d) else 1.0
    nonzero = d[np.abs(d) > _EQUAL * scale]
    n = len(nonzero)
    result: dict[str, Any] = {
        "name": "Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided, zeros dropped)",
        "n": len(d),
        "n_nonzero": n,
        "statistic": None,
        "p_value": None,
        "method": None,
    }
    if n == 0:
        return {**result, "reason": "all paired differences are zero: no difference to test"}
    magnitudes = np.round(np.abs(nonzero), 12)
    ties = len(np.unique(magnitudes)) < n
    method: Any
    if not ties:
        method, label = "exact", "exact"
    elif n <= 16:
        method, label = stats.PermutationMethod(n_resamples=2**n), "exact (all sign flips)"
    else:
        method, label = "approx", "normal approximation"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test = stats.wilcoxon(nonzero, method=method)
    p = float(test.pvalue)
    result.update(
        statistic=float(test.statistic),
        p_value=min(1.0, p) if math.isfinite(p) else None,
        method=label,
    )
    if n < 6:
        result["note"] = (
            f"only {n} non-zero difference(s): the smallest two-sided p-value possible is "
            f"{min(1.0, 2.0 / 2**n):.4g}, so this test cannot reach 0.05; use 6 or more seeds"
        )
    return result


def mcnemar_test(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, Any]:
    """McNemar's test on the predictions of two classifiers for the same samples: the exact
    binomial test (``scipy.stats.binomtest``, two-sided, p = 0.5) on the discordant counts.

    ``a_only``: samples A gets right and B wrong; ``b_only``: the reverse.
    """
    from scipy import stats

    y, pa, pb = (np.asarray(v).reshape(-1) for v in (y_true, pred_a, pred_b))
    right_a, right_b = pa == y, pb == y
    a_only = int(np.sum(right_a & ~right_b))
    b_only = int(np.sum(~right_a & right_b))
    result: dict[str, Any] = {
        "name": "McNemar's exact test (scipy.stats.binomtest on the discordant pairs)",
        "n": len(y),
        "a_only_correct": a_only,
        "b_only_correct": b_only,
        "both_correct": int(np.sum(right_a & right_b)),
        "both_wrong": int(np.sum(~right_a & ~right_b)),
    }
    if a_only + b_only == 0:
        return {**result, "p_value": 1.0, "reason": "no discordant predictions"}
    p = float(stats.binomtest(a_only, a_only + b_only, 0.5).pvalue)
    return {**result, "p_value": min(1.0, p)}


def bootstrap_ci(
    d: np.ndarray, level: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> dict[str, Any]:
    """Percentile bootstrap confidence interval of the mean of ``d`` (pairs resampled with
    replacement, numpy's default_rng(seed))."""
    d = np.asarray(d, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return {
        "low": float(low),
        "high": float(high),
        "level": level,
        "resamples": resamples,
        "seed": seed,
        "method": "percentile bootstrap of the mean paired difference",
    }


def cohens_d(d: np.ndarray) -> dict[str, Any]:
    """Cohen's d of paired differences (d_z): mean(d) / sd(d), sd with ddof 1."""
    d = np.asarray(d, dtype=np.float64)
    result: dict[str, Any] = {"cohens_d": None, "definition": "mean(A - B) / sd(A - B), ddof 1"}
    if len(d) < 2:
        return {**result, "reason": "needs at least 2 pairs"}
    if _all_equal(d):
        reason = "all paired differences are " + ("zero" if _all_zero(d) else "equal")
        return {**result, "reason": f"{reason}: the standard deviation is 0"}
    return {**result, "cohens_d": float(np.mean(d) / np.std(d, ddof=1))}
