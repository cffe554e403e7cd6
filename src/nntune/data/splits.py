"""Train/validation/test splits, stratified for classification."""

from __future__ import annotations

import math

import numpy as np

from nntune.errors import DataError


def split_off(
    labels: np.ndarray | None,
    fraction: float,
    seed: int,
    key: str,
    what: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(kept, held_out)`` holding out ``fraction`` of the samples.

    ``labels`` (class codes) makes the split stratified: each class keeps its share on both
    sides. ``key`` names the config key in errors. Uses scikit-learn's splitter.
    """
    from sklearn.model_selection import train_test_split

    n = len(labels) if labels is not None else 0
    positions = np.arange(n)
    if fraction <= 0.0:
        return positions, positions[:0]
    n_out = math.ceil(fraction * n)
    n_in = n - n_out
    if n_out < 1 or n_in < 1:
        raise DataError(
            f"{key} = {fraction}: {n} samples are too few to hold out {what} "
            f"({n_in} would remain); use more data or set {key}: 0"
        )
    stratify = None
    if labels is not None and labels.dtype.kind in "iub":
        classes, counts = np.unique(labels, return_counts=True)
        if n_out < len(classes) or n_in < len(classes):
            raise DataError(
                f"{key} = {fraction} of {n} samples gives {n_out} {what} samples and {n_in} "
                f"others, fewer than the {len(classes)} classes: a stratified split needs at "
                f"least one sample of each class on each side; use a larger {key}, more data, "
                f"or {key}: 0"
            )
        if counts.min() < 2:
            rare = classes[counts < 2].tolist()
            raise DataError(
                f"{key} = {fraction}: class(es) {rare} have a single sample, so the data "
                f"cannot be split with every class on both sides; remove them or set {key}: 0"
            )
        stratify = labels
    kept, held = train_test_split(
        positions, test_size=n_out, random_state=seed, stratify=stratify, shuffle=True
    )
    return np.sort(kept), np.sort(held)


def subsample(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Positions of at most ``limit`` samples, stratified when ``labels`` are class codes."""
    n = len(labels)
    if limit >= n:
        return np.arange(n)
    kept, _ = split_off(labels, 1.0 - limit / n, seed, "data.limit", "the rest")
    if len(kept) > limit:  # ceil on the held-out side may leave one extra
        kept = kept[:limit]
    return kept


def fold_out(
    labels: np.ndarray, folds: int, index: int, seed: int, key: str
) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(kept, held_out)`` where ``held_out`` is fold ``index`` of a shuffled k-fold
    split (scikit-learn's StratifiedKFold when ``labels`` are class codes, KFold otherwise).
    The same ``seed`` cuts the same folds, so folds 0..k-1 of one seed cover every sample once.
    """
    import warnings

    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(labels)
    if n < folds:
        raise DataError(f"{key}: {n} samples cannot be cut into {folds} folds; use fewer folds")
    splitter: KFold | StratifiedKFold = KFold(folds, shuffle=True, random_state=seed)
    if labels.dtype.kind in "iub":
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # a class rarer than k: some folds lack it, which a validation part can live with
        warnings.filterwarnings("ignore", message="The least populated class")
        kept, held = list(splitter.split(np.zeros(n), labels))[index]
    return np.sort(kept), np.sort(held)
