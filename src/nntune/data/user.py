"""A user's data components by reference: datasets, preprocessing steps, augmentations.

Datasets (``data.dataset: loaders.py:load_scans``).

The referenced function (or class) is called with its options, the keys of ``data:`` that nntune
does not define (``data: {dataset: loaders.py:load_scans, subject: 3}``), and may return:

- ``(x, y)``: arrays, tensors or a DataFrame of features and the targets; nntune splits and
  preprocesses them like a data file;
- ``{"train": (x, y), "val": (x, y), "test": (x, y)}``: splits of its own ("val" and "test" are
  optional; missing ones are split off the training part as usual);
- a pandas DataFrame: a table, read with ``data.target`` and ``data.features`` as a CSV is;
- a ``torch.utils.data.Dataset`` (or a dict of them by split): used as it is, split by index
  (stratified for classes, with ``data.split_seed``), training batches drawn by a DataLoader
  with worker processes, validation and test parts held in memory. Preprocessing needs the
  whole table, so it is not applied to a Dataset (do it in the Dataset); augmentation is, on
  the training batches.

Preprocessing steps (``preprocess: [prep.py:clip_counts, {name: prep.py:Scaler, q: 0.99}]``):
a function ``frame -> frame`` (stateless; options as keyword arguments), or a class built with
its options that has ``fit(frame)``, ``transform(frame) -> frame``, and, so that a run folder
can predict, ``state_dict()`` (plain numbers, lists, arrays or tensors) and
``load_state_dict(state)``. Frames are pandas DataFrames of the raw features.

Augmentations (``augment: [aug.py:jitter]``), on training batches only: a function
``(x, y, generator, **options) -> (x, y)`` on tensors (draw randomness from ``generator``, so
that a resumed run replays it), or a class built with its options (and ``sample_shape`` if it
asks) whose instances are called the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel
from torch.utils.data import Dataset, Subset

from nntune.config import DataConfig
from nntune.data.augment import AUGMENT, Augmentation, AugmentContext, Batch
from nntune.data.datasets import DATASETS, DatasetRequest, RawDataset, from_table
from nntune.data.preprocess import PREPROCESS, Preprocessor
from nntune.data.splits import split_off, subsample
from nntune.errors import ConfigError, DataError
from nntune.registry import Entry, user_entry
from nntune.usercode import (
    UserCodeError,
    call_with,
    load_callable,
    load_object,
    options_model,
    parameters,
    short_name,
)

SPLITS = ("train", "val", "test")
MAX_WORKERS = 4


@DATASETS.references
def user_dataset(reference: str, key: str) -> Entry[Any]:
    target = load_callable(reference, key)

    def build(request: DatasetRequest) -> Any:
        return call_with(target, request.options, {}, reference, key)

    return user_entry(reference, target, build, options_model(target, reference, ()))


def load_user_dataset(
    reference: str,
    options: dict[str, Any],
    target: str | None,
    features: list[str] | None,
    n_samples: int | None,
    noise: float | None,
) -> RawDataset:
    for name, given in (("n_samples", n_samples), ("noise", noise)):
        if given is not None:
            raise DataError(
                f"data.{name} applies to generated datasets only; a dataset of your own takes "
                "its options as other keys of data:"
            )
    entry = DATASETS.get(reference, key="data.dataset")
    parsed: BaseModel = entry.parse_options(options, "data")
    value = entry.builder(DatasetRequest(options=parsed.model_dump()))
    return as_raw(value, reference, target, features)


def as_raw(
    value: Any, reference: str, target: str | None, features: list[str] | None
) -> RawDataset:
    """What a user's dataset returned, as a RawDataset; anything else is an error saying what
    is allowed."""
    name = short_name(reference)
    where = f"data.dataset = '{reference}'"
    if isinstance(value, pd.DataFrame):
        return from_table(value, Path(name), target, features)
    table_keys = [k for k, v in (("data.target", target), ("data.features", features)) if v]
    if table_keys:
        raise DataError(f"{table_keys[0]} applies to tables; {where} returned no DataFrame")
    if isinstance(value, Dataset):
        return RawDataset(name=name, x=np.empty((0, 0)), y=np.empty(0), source={"train": value})
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(SPLITS))
        if unknown or "train" not in value:
            raise DataError(
                f"{where} returned a dict with keys {sorted(value)}; give 'train' and "
                "optionally 'val' and 'test'"
            )
        if all(isinstance(v, Dataset) for v in value.values()):
            return RawDataset(name=name, x=np.empty((0, 0)), y=np.empty(0), source=dict(value))
        parts = {k: _pair(v, f"{where}, part '{k}'") for k, v in value.items()}
        x, y = parts["train"]
        raw = RawDataset(name=name, x=x, y=y)
        if "test" in parts:
            raw.x_test, raw.y_test = parts["test"]
        if "val" in parts:
            raw.x_val, raw.y_val = parts["val"]
        return raw
    x, y = _pair(value, where)
    return RawDataset(name=name, x=x, y=y)


def _pair(value: Any, where: str) -> tuple[pd.DataFrame | np.ndarray, np.ndarray]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise DataError(
            f"{where}: returned a {type(value).__name__}; return (x, y), a dict of splits "
            "{'train': (x, y), 'val': ..., 'test': ...}, a pandas DataFrame, or a torch Dataset"
        )
    x, y = value
    features = x if isinstance(x, pd.DataFrame) else _numpy(x)
    targets = _numpy(y)
    if len(features) != len(targets):
        raise DataError(f"{where}: {len(features)} feature rows but {len(targets)} targets")
    return features, targets


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (pd.Series, pd.DataFrame)):
        return value.to_numpy()
    return np.asarray(value)


# --- a torch Dataset, used as it is ---------------------------------------------------------


def item_target(item: Any, where: str) -> torch.Tensor:
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise DataError(f"{where}: each item of the Dataset must be an (x, y) pair")
    return torch.as_tensor(item[1])


def dataset_targets(dataset: Dataset, where: str) -> torch.Tensor:
    """Every item's target, in one pass (the splits are stratified by them)."""
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise DataError(f"{where}: the Dataset is empty")
    return torch.stack([item_target(dataset[i], where) for i in range(n)])


def materialize(dataset: Dataset, indices: np.ndarray | None = None) -> tuple[Any, Any]:
    """(x, y) tensors of a Dataset's items (validation and test parts live in memory)."""
    chosen = range(len(dataset)) if indices is None else indices.tolist()  # type: ignore[arg-type]
    items = [dataset[i] for i in chosen]
    xs = torch.stack([torch.as_tensor(x, dtype=torch.float32) for x, _ in items])
    ys = torch.stack([torch.as_tensor(y) for _, y in items])
    return xs, ys


def default_workers(data: DataConfig) -> int:
    if data.workers is not None:
        return data.workers
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(0, min(MAX_WORKERS, cores - 1))


def split_dataset(
    source: dict[str, Dataset], data: DataConfig, seed: int, where: str
) -> tuple[dict[str, Any], Dataset, str]:
    """The parts of a user's Dataset (or Datasets by split): validation and test parts as
    tensors, the training part as a Subset; returns ``(parts, train_subset, task)``."""
    given = [
        (p.name, {k: v for k, v in p.options.items() if v is not None}) for p in data.preprocess
    ]
    if given and given != [("standardize", {})]:  # the default is dropped (resolved: [])
        raise ConfigError(
            f"data.preprocess = {[p.name for p in data.preprocess]}: {where} returned a torch "
            "Dataset, which nntune uses as it is (preprocessing is fitted on a whole table); "
            "preprocess in the Dataset and set data.preprocess: []"
        )
    seed = data.split_seed if data.split_seed is not None else seed
    pool = source["train"]
    targets = dataset_targets(pool, where)
    task = data.task
    if task == "auto":
        task = "regression" if targets.is_floating_point() else "classification"
    labels = targets.numpy() if task == "classification" else None
    positions = np.arange(len(targets))
    parts: dict[str, Any] = {}
    if "test" in source:
        parts["test"] = materialize(source["test"])
    elif data.test_split > 0:
        positions, held = split_off(labels, data.test_split, seed, "data.test_split", "a test part")
        parts["test"] = materialize(pool, held)
    else:
        parts["test"] = None
    if "val" in source:
        parts["val"] = materialize(source["val"])
    else:
        rest = labels[positions] if labels is not None else None
        keep, held = split_off(
            rest if rest is not None else np.zeros(len(positions), dtype=np.float32),
            data.val_split,
            seed + 1,
            "data.val_split",
            "a validation part",
        )
        parts["val"] = materialize(pool, positions[held]) if len(held) else None
        positions = positions[keep]
    if data.limit is not None:
        chosen = labels[positions] if labels is not None else np.zeros(len(positions))
        positions = positions[subsample(chosen, data.limit, seed + 2)]
    parts["n_outputs"] = (
        int(targets.max()) + 1 if task == "classification" else int(targets[0].numel())
    )
    parts["sample_shape"] = tuple(torch.as_tensor(pool[0][0]).shape)
    return parts, Subset(pool, positions.tolist()), task


# --- preprocessing steps --------------------------------------------------------------------


@PREPROCESS.references
def user_preprocess(reference: str, key: str) -> Entry[Any]:
    target = load_object(reference, key)
    is_class = isinstance(target, type)
    if is_class:
        lacking = [m for m in ("fit", "transform", "state_dict", "load_state_dict")
                   if not callable(getattr(target, m, None))]  # fmt: skip
        if lacking:
            raise ConfigError(
                f"{key} = '{reference}': a preprocessing class needs fit(frame), "
                f"transform(frame), state_dict() and load_state_dict(state); it lacks "
                f"{', '.join(lacking)} (a stateless step can be a function frame -> frame)"
            )
    elif not callable(target):
        raise ConfigError(f"{key} = '{reference}': {type(target).__name__} is not callable")
    options = options_model(target, reference, (), skip=0 if is_class else 1)

    class UserStep(Preprocessor):
        name = short_name(reference)

        def __init__(self, parsed: BaseModel) -> None:
            super().__init__(parsed)  # type: ignore[arg-type]
            values = parsed.model_dump()
            if is_class:
                self.step = call_with(target, values, {}, reference, key)
            else:
                self.step = None
                self.values = values

        def fit(self, frame: pd.DataFrame) -> None:
            if self.step is not None:
                self.step.fit(frame)

        def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
            if self.step is not None:
                out = self.step.transform(frame)
            else:
                out = target(frame, **self.values)
            if not isinstance(out, pd.DataFrame):
                raise UserCodeError(
                    f"{key} = '{reference}': it returned a {type(out).__name__}, not a pandas "
                    "DataFrame"
                )
            return out

        def state_dict(self) -> dict[str, Any]:
            return dict(self.step.state_dict()) if self.step is not None else {}

        def load_state_dict(self, state: dict[str, Any]) -> None:
            if self.step is not None:
                self.step.load_state_dict(state)

    return user_entry(reference, target, UserStep, options)


# --- augmentations --------------------------------------------------------------------------

AUGMENT_FACTS = ("sample_shape", "image_shape")


@AUGMENT.references
def user_augment(reference: str, key: str) -> Entry[Any]:
    target = load_object(reference, key)
    is_class = isinstance(target, type)
    if not is_class and (not callable(target) or len(parameters(target)) < 3):
        raise ConfigError(
            f"{key} = '{reference}': an augmentation is a function (x, y, generator, "
            "**options) -> (x, y), or a class whose instances are called so"
        )

    def build(parsed: BaseModel, context: AugmentContext) -> Augmentation:
        values = parsed.model_dump()
        facts = {"sample_shape": context.sample_shape, "image_shape": context.image_shape}
        if is_class:
            made = call_with(target, values, facts, reference, key)

            def apply_made(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> Any:
                return made(x, y, gen)

            fn = apply_made
        else:

            def apply_fn(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> Any:
                return target(x, y, gen, **values)

            fn = apply_fn

        def apply(batch: Batch, gen: torch.Generator) -> Batch:
            out = fn(batch.x, batch.y, gen)
            x, y = out if isinstance(out, tuple) else (out, batch.y)
            if x.shape[0] != batch.x.shape[0] or y.shape[0] != batch.y.shape[0]:
                raise UserCodeError(
                    f"{key} = '{reference}': it changed the batch size; an augmentation "
                    "returns as many samples as it gets"
                )
            return Batch(x=x, y=y, y_mix=batch.y_mix, lam=batch.lam)

        return apply

    skip = 0 if is_class else 3
    return user_entry(
        reference,
        target,
        build,
        options_model(target, reference, AUGMENT_FACTS, skip),
        AUGMENT_FACTS,
    )
