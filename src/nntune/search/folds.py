"""``search.folds: auto``: whether a study scores each trial on one validation split or by k-fold
cross-validation of the training part.

With a few hundred validation rows, accuracy moves in steps of 0.2 % or more, many trials tie at
the top, and the best of hundreds of trials on one split is mostly the luckiest one: a
zero-config 300-second study on breast_cancer (91 validation rows) retrained to 95.3 % test
accuracy, with 5 folds to 96.5 %; on diabetes (about 70 rows) to an RMSE of 60.6 ± 2.7, with 5
folds 57.9 ± 0.1 (docs/benchmarks.md, Small budgets). scikit-learn's searches cross-validate
by default for the same reason. From 500 validation rows one split is steady enough, and k
trainings per trial would cost k times the trials.
"""

from __future__ import annotations

from typing import Any

from nntune.config import Config
from nntune.data import DataBundle, RawDataset

SMALL_VALIDATION = 500  # fewer validation rows than this: cross-validated trials
SEARCH_FOLDS = 5


def validation_rows(bundle: DataBundle) -> int:
    return 0 if bundle.x_val is None else len(bundle.x_val)


def resolve_folds(config: Config, raw: RawDataset, bundle: DataBundle) -> tuple[int | None, str]:
    """The folds a study scores its trials by (None: one split), and why."""
    folds: Any = config.search.folds
    if folds != "auto":
        return folds, "search.folds as given" if folds else "search.folds: null (one split)"
    if raw.source is not None:
        return None, "the training part is a torch Dataset: one split"
    if brings_validation(raw):
        return None, "the data brings its own validation part: one split"
    if config.data.val_fold is not None:
        return None, "data.val_fold names the validation part: one split"
    rows = validation_rows(bundle)
    if rows == 0:
        return None, "no validation part (data.val_split: 0): one split"
    if rows >= SMALL_VALIDATION:
        return None, f"{rows} validation rows (≥ {SMALL_VALIDATION}): one split"
    return SEARCH_FOLDS, (
        f"{rows} validation rows (< {SMALL_VALIDATION}): each trial scored by "
        f"{SEARCH_FOLDS}-fold cross-validation of the training part"
    )


def refit_blocker(raw: RawDataset, bundle: DataBundle) -> str | None:
    """Why best.yaml of a one-split study cannot be refit on the whole training part (None: it
    can). The refit drops the validation part that ``data.val_split`` (or ``data.val_fold``)
    cut from the training part; a validation part the data brings stays one."""
    if brings_validation(raw):
        return "the data brings its own validation part"
    if validation_rows(bundle) == 0:
        return "no validation part (data.val_split: 0)"
    return None


def brings_validation(raw: RawDataset) -> bool:
    """Whether the data has a validation part of its own (arrays, or a user Dataset's val)."""
    return raw.x_val is not None or (isinstance(raw.source, dict) and "val" in raw.source)
