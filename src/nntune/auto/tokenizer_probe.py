"""Which tokens a text bag reads, chosen before the search by a linear probe.

A bag with TF-IDF weights and no hidden layer is a linear model on TF-IDF features; which
tokens carry the label (words and bigrams, or character n-grams: style and spelling) is the
data's to say, and the search cannot say it at a small budget: a 10-minute ``auto`` on 2 cores
ran one trial of the fortune categories' bag. So each candidate tokenizer is fitted on the
training part exactly as the run will fit it (``prepare_data``), the same TF-IDF vectors the
bag pools are built from its token ids, and scikit-learn's LinearSVC (classification) or Ridge
(regression) is fitted on them and scored on the validation part: seconds per candidate (a
linear SVM fits 11,450 fortunes in 4 s on words, 11 s on character 4-grams). The test part is
never read. Why a linear SVM rather than the bag itself: it reaches its optimum in seconds,
and where it separated the tokenizers the bag did too (fortunes, split 0, test: 57.4 % on
character 4-grams against 47.2 % on words; the bag 55.3 % against 47.7 %). Where it did not
(Rotten Tomatoes: 78.0 against 78.1 %) the bag was better on words (77.5 against 75.8 %): so
the first candidate, the words, stays unless another beats it by more than the validation
score's standard error.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from nntune.config import validate_config
from nntune.data import RawDataset


def tfidf_matrix(ids: np.ndarray, idf: np.ndarray) -> Any:
    """The bag's TF-IDF vectors of token ids (N, length) as a sparse matrix: the bag's own
    per-position weights (``tfidf_weights``) summed per distinct token; PAD and OOV (idf 0)
    dropped."""
    import torch
    from scipy import sparse

    from nntune.models.text import tfidf_weights

    weights = tfidf_weights(torch.from_numpy(ids), torch.from_numpy(idf)).numpy().reshape(-1)
    rows = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
    keep = weights != 0
    vectors = sparse.csr_matrix(
        (weights[keep], (rows[keep], ids.reshape(-1)[keep])), shape=(ids.shape[0], len(idf))
    )
    vectors.sum_duplicates()
    return vectors


def probe_score(
    config: dict[str, Any], seed: int, raw: RawDataset | None = None
) -> dict[str, Any] | None:
    """The validation score of a linear model on the config's tokens (accuracy for
    classification, R² for regression) and its standard error; None without a validation
    part. ``raw``: the data as loaded already (read once for every candidate)."""
    from sklearn.linear_model import Ridge
    from sklearn.svm import LinearSVC

    from nntune.data.pipeline import prepare_data
    from nntune.data.text import Tokenizer

    data = validate_config(config).data
    bundle = prepare_data(data, seed, raw=raw)
    if bundle.text is None or bundle.x_val is None or bundle.y_val is None or not len(bundle.y_val):
        return None
    idf = Tokenizer.from_state(bundle.text["tokenizer"]).idf().astype(np.float64)
    x_train = tfidf_matrix(bundle.x_train.numpy(), idf)
    x_val = tfidf_matrix(bundle.x_val.numpy(), idf)
    y_train, y_val = bundle.y_train.numpy(), bundle.y_val.numpy()
    n = len(y_val)
    if bundle.task == "classification":
        right = LinearSVC().fit(x_train, y_train).predict(x_val) == y_val
        accuracy = float(right.mean())
        # the binomial standard error of an accuracy on n texts
        error = float(np.sqrt(max(accuracy * (1.0 - accuracy), 1.0 / n) / n))
        return {"score": accuracy, "metric": "accuracy", "standard_error": error, "texts": n}
    y_train, y_val = y_train.reshape(len(y_train), -1), y_val.reshape(n, -1)
    squared = (Ridge().fit(x_train, y_train).predict(x_val) - y_val) ** 2
    total = float(((y_val - y_val.mean(axis=0)) ** 2).sum())
    r2 = 1.0 - float(squared.sum()) / max(total, 1e-12)
    # R² is 1 - mean squared error / variance: its error is that of the mean of the squares
    per_text = squared.sum(axis=1)
    error = float(per_text.std() / np.sqrt(n) * n / max(total, 1e-12))
    return {"score": r2, "metric": "r2", "standard_error": error, "texts": n}


def choose_tokenizer(
    config: dict[str, Any], candidates: list[dict[str, Any]], seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the chosen candidate, the record auto.json keeps): the first candidate unless another
    scores above it by more than the first's standard error (then the best of those); the
    first also when there is no validation part to score on."""
    from nntune.data.pipeline import load_raw

    started = time.perf_counter()
    raw = load_raw(validate_config(config).data)  # the tokenizer does not change what is read
    scores: list[dict[str, Any]] = []
    for options in candidates:
        trial = copy.deepcopy(config)
        trial["data"]["tokenizer"] = options
        found = probe_score(trial, seed, raw)
        if found is None:
            return candidates[0], {"skipped": "no validation part to score the tokenizers on"}
        scores.append({"tokenizer": options, **{k: _round(v) for k, v in found.items()}})
    first = scores[0]
    bar = first["score"] + first["standard_error"]
    better = [i for i in range(1, len(scores)) if scores[i]["score"] > bar]
    chosen = max(better, key=lambda i: scores[i]["score"]) if better else 0
    record = {
        "model": "LinearSVC" if first["metric"] == "accuracy" else "Ridge",
        "rule": "the first unless another scores above it by more than its standard error",
        "scores": scores,
        "chosen": candidates[chosen],
        "seconds": round(time.perf_counter() - started, 2),
    }
    return candidates[chosen], record


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
