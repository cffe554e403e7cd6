"""From a data config to tensors: load, split, fit preprocessing on the training part, encode."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from nntune.config import Component, DataConfig
from nntune.data.datasets import RawDataset, load_dataset
from nntune.data.preprocess import PREPROCESS, Preprocessor, is_numeric
from nntune.data.splits import fold_out, split_off, subsample
from nntune.errors import DataError

MAX_CLASSES_FOR_INTEGER_TARGET = 50


class Pipeline:
    """Fitted preprocessing steps plus the facts needed to apply them to new raw inputs."""

    def __init__(self, steps: Sequence[tuple[Component, Preprocessor]]) -> None:
        self.steps = list(steps)
        self.input_columns: list[str] = []
        self.raw_shape: tuple[int, ...] = ()

    @classmethod
    def from_components(cls, components: Sequence[Component]) -> Pipeline:
        steps = []
        for i, component in enumerate(components):
            entry = PREPROCESS.get(component.name, key=f"data.preprocess[{i}]")
            options = entry.parse_options(component.options, f"data.preprocess[{i}]")
            steps.append((component, entry.builder(options)))  # type: ignore[arg-type]
        return cls(steps)

    def fit_transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.input_columns = [str(c) for c in frame.columns]
        for _, step in self.steps:
            step.fit(frame)
            frame = step.transform(frame)
        return frame

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        for _, step in self.steps:
            frame = step.transform(frame)
        return frame

    def state_dict(self) -> dict[str, Any]:
        return {
            "input_columns": list(self.input_columns),
            "raw_shape": list(self.raw_shape),
            "steps": [
                {"name": c.name, "options": dict(c.options), "state": s.state_dict()}
                for c, s in self.steps
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Pipeline:
        components = [Component(name=s["name"], options=s["options"]) for s in state["steps"]]
        pipeline = cls.from_components(components)
        for (_, step), saved in zip(pipeline.steps, state["steps"], strict=True):
            step.load_state_dict(saved["state"])
        pipeline.input_columns = list(state["input_columns"])
        pipeline.raw_shape = tuple(state["raw_shape"])
        return pipeline


@dataclass
class DataBundle:
    """Tensors of every split plus what is needed to build a model and read its outputs."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor | None
    y_val: torch.Tensor | None
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    task: str
    n_outputs: int
    sample_shape: tuple[int, ...]
    class_names: list[str] | None = None
    feature_names: list[str] = field(default_factory=list)
    pipeline: Pipeline | None = None
    dataset: str = ""
    # a user's torch Dataset: the training part, batched by a DataLoader (x_train is empty)
    train_dataset: Any = None
    # an image folder: uint8 (N, C, H, W) tensors; how they were read and the normalization
    # (per-channel mean and std in 0..1 units) the model applies to them
    image: dict[str, Any] | None = None
    # a text column: token ids (N, max_length); the fitted tokenizer's state and what
    # tokenizing found (see nntune.data.text)
    text: dict[str, Any] | None = None
    # series (data.layout NCL/NLC): float (N, C, L) with NaN after shorter series; the layout,
    # lengths and the fitted series steps (see nntune.data.series)
    series: dict[str, Any] | None = None

    @classmethod
    def of_dataset(
        cls,
        val: tuple[torch.Tensor, torch.Tensor] | None,
        test: tuple[torch.Tensor, torch.Tensor] | None,
        *,
        task: str,
        n_outputs: int,
        sample_shape: tuple[int, ...],
        dataset: str,
        train_dataset: Any = None,
    ) -> DataBundle:
        """A bundle whose training part is a torch Dataset (x_train is empty): validation and
        test parts in memory."""
        empty = torch.empty(0)
        return cls(
            x_train=empty,
            y_train=empty,
            x_val=val[0] if val else None,
            y_val=val[1] if val else None,
            x_test=test[0] if test else None,
            y_test=test[1] if test else None,
            task=task,
            n_outputs=n_outputs,
            sample_shape=sample_shape,
            dataset=dataset,
            train_dataset=train_dataset,
        )

    @classmethod
    def from_parts(
        cls,
        train: tuple[torch.Tensor, torch.Tensor],
        val: tuple[torch.Tensor, torch.Tensor] | None,
        test: tuple[torch.Tensor, torch.Tensor] | None,
        **facts: Any,
    ) -> DataBundle:
        """A bundle from the (inputs, targets) of each split plus its other fields."""
        return cls(
            x_train=train[0],
            y_train=train[1],
            x_val=val[0] if val else None,
            y_val=val[1] if val else None,
            x_test=test[0] if test else None,
            y_test=test[1] if test else None,
            **facts,
        )

    def train_sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """At most ``n`` training samples as tensors (from a torch Dataset: items spread over
        it), for checks that read data rather than train on it."""
        if self.train_dataset is None:
            return self.x_train[:n], self.y_train[:n]
        from nntune.data.user import materialize

        total = len(self.train_dataset)
        picked = np.unique(np.linspace(0, total - 1, min(total, n)).astype(int))
        return materialize(self.train_dataset, picked)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        x, y = getattr(self, f"x_{name}"), getattr(self, f"y_{name}")
        return None if x is None or y is None else (x, y)

    def meta(self) -> dict[str, Any]:
        """Plain facts saved with checkpoints, so that a run folder can predict on raw inputs."""
        return {
            "task": self.task,
            "n_outputs": self.n_outputs,
            "sample_shape": list(self.sample_shape),
            "class_names": self.class_names,
            "feature_names": list(self.feature_names),
            "dataset": self.dataset,
            "pipeline": self.pipeline.state_dict() if self.pipeline else None,
            "image": self.image,
            "text": self.text,
            "series": self.series,
        }


def infer_task(y: np.ndarray) -> str:
    """classification for labels (non-numeric, bool, or few whole numbers), else regression."""
    if y.ndim > 1 and y.shape[1] > 1:
        return "regression"
    flat = y.reshape(-1)
    if flat.dtype.kind in "OUSb":
        return "classification"
    if flat.dtype.kind in "iu":
        return (
            "classification"
            if len(np.unique(flat)) <= MAX_CLASSES_FOR_INTEGER_TARGET
            else "regression"
        )
    if flat.dtype.kind == "f":
        whole = np.all(np.isfinite(flat)) and np.all(flat == np.round(flat))
        few = len(np.unique(flat)) <= min(MAX_CLASSES_FOR_INTEGER_TARGET, max(2, len(flat) // 5))
        return "classification" if whole and few else "regression"
    return "regression"


def encode_targets(
    y: np.ndarray, task: str, known: list[str] | None
) -> tuple[np.ndarray, list[str] | None]:
    """Class codes 0..K-1 and the class names (classification), or float targets (regression)."""
    if task == "regression":
        if y.dtype.kind not in "iuf":
            raise DataError(
                f"data.task = regression but the target holds non-numeric values "
                f"(e.g. {y.reshape(-1)[0]!r}); use task: classification"
            )
        values = y.astype(np.float32)
        return (values.reshape(len(values), -1), None)
    flat = y.reshape(-1)
    if (
        known is not None
        and flat.dtype.kind in "iu"
        and flat.min() >= 0
        and flat.max() < len(known)
    ):
        return flat.astype(np.int64), known
    classes, codes = np.unique(
        flat.astype(str) if flat.dtype.kind == "O" else flat, return_inverse=True
    )
    return codes.astype(np.int64), [str(c) for c in classes]


def to_frame(x: pd.DataFrame | np.ndarray) -> tuple[pd.DataFrame, tuple[int, ...]]:
    """A table of features plus the per-sample shape (arrays of rank > 2 are flattened)."""
    if isinstance(x, pd.DataFrame):
        return x.reset_index(drop=True), (x.shape[1],)
    array = np.asarray(x)
    shape = tuple(array.shape[1:])
    flat = array.reshape(len(array), -1)
    columns = [f"x{i}" for i in range(flat.shape[1])]
    return pd.DataFrame(flat, columns=columns), shape


def frame_to_array(frame: pd.DataFrame, part: str, dataset: str) -> np.ndarray:
    """Float32 features; non-numeric columns or NaN/inf left by preprocessing are errors."""
    bad = [str(c) for c in frame.columns if not is_numeric(frame[c])]
    if bad:
        raise DataError(
            f"data.dataset '{dataset}': non-numeric feature column(s) {bad[:10]} and no encoder "
            "for them; add onehot or label_encode to data.preprocess "
            "(e.g. preprocess: [onehot, standardize])"
        )
    values = frame.to_numpy(dtype=np.float32)
    if not values.flags.writeable:  # pandas' copy-on-write hands out read-only views
        values = values.copy()
    finite = np.isfinite(values)
    if not finite.all():
        columns = [
            str(c) for c, ok in zip(frame.columns, finite.all(axis=0), strict=True) if not ok
        ]
        raise DataError(
            f"data.dataset '{dataset}': NaN or infinite values in feature column(s) "
            f"{columns[:10]} of the {part} part; add an impute step first in data.preprocess "
            "(e.g. {name: impute, strategy: median}) or clean the data"
        )
    return values


def load_raw(data: DataConfig) -> RawDataset:
    """The dataset a data config names, as loaded (before splits and preprocessing)."""
    from nntune.data.images import ImageOptions

    image = data.image
    return load_dataset(
        data.dataset,
        target=data.target,
        features=data.features,
        n_samples=data.n_samples,
        noise=data.noise,
        options=dict(data.model_extra or {}),
        image=ImageOptions(image.side_pair(), image.fit, image.channels, image.on_error),
        text=data.text_columns() or None,
    )


def _dataset_bundle(raw: RawDataset, data: DataConfig, seed: int) -> DataBundle:
    """A user's torch Dataset, split by index; no preprocessing (see nntune.data.user)."""
    from nntune.data.user import split_dataset

    parts, train, task = split_dataset(raw.source, data, seed, f"data.dataset = '{data.dataset}'")
    return DataBundle.of_dataset(
        parts["val"],
        parts["test"],
        task=task,
        n_outputs=parts["n_outputs"],
        sample_shape=parts["sample_shape"],
        dataset=raw.name,
        train_dataset=train,
    )


def prepare_data(
    data: DataConfig,
    seed: int,
    raw: RawDataset | None = None,
    val: tuple[np.ndarray, np.ndarray] | None = None,
) -> DataBundle:
    """Load (unless ``raw`` is given), split, preprocess and encode the data of a config.

    ``val`` (raw features and targets) replaces the validation split.
    """
    if raw is None:
        raw = load_raw(data)
    if raw.source is not None:
        return _dataset_bundle(raw, data, seed)
    if raw.x_val is not None and raw.y_val is not None and val is None:
        val = (np.asarray(raw.x_val), raw.y_val)  # the dataset's own validation split
    seed = data.split_seed if data.split_seed is not None else seed  # the splits' seed
    extra = [y for y in (raw.y_test, val[1] if val else None) if y is not None]
    y_all = np.concatenate([raw.y, *extra]) if extra else raw.y
    task = data.task if data.task != "auto" else (raw.task or infer_task(y_all))
    codes_all, class_names = encode_targets(y_all, task, raw.class_names)
    n_pool, n_test = len(raw.y), len(raw.y_test) if raw.y_test is not None else 0
    y_pool = codes_all[:n_pool]
    y_given_test = codes_all[n_pool : n_pool + n_test]
    y_given_val = codes_all[n_pool + n_test :]

    train_pos, val_pos, test_pos = split_positions(
        y_pool, task, class_names, data, seed, raw.x_test is not None, val is not None
    )
    if raw.image is not None:
        return _image_bundle(
            raw, data, task, class_names, y_pool, (train_pos, val_pos, test_pos),
            (y_given_val, y_given_test), val,
        )  # fmt: skip
    if raw.text is not None:
        return _text_bundle(
            raw, data, task, class_names, y_pool, (train_pos, val_pos, test_pos),
            (y_given_val, y_given_test), val,
        )  # fmt: skip
    if isinstance(raw.x, np.ndarray):
        from nntune.data.series import SERIES_LAYOUTS, resolve_layout

        layout = resolve_layout(raw.x, data.layout, [p.name for p in data.preprocess])
        if layout[0] in SERIES_LAYOUTS:
            return _series_bundle(
                raw, data, task, class_names, y_pool, (train_pos, val_pos, test_pos),
                (y_given_val, y_given_test), val, layout,
            )  # fmt: skip
    elif data.layout != "auto":
        raise DataError(f"data.layout = {data.layout}: it applies to an .npz's x, not to a table")
    frame_pool, sample_shape = to_frame(raw.x)
    if raw.x_test is not None:
        frame_test, y_test = to_frame(raw.x_test)[0], y_given_test
    elif test_pos is not None:
        frame_test, y_test = frame_pool.iloc[test_pos], y_pool[test_pos]
    else:
        frame_test, y_test = None, None

    pipeline = Pipeline.from_components(data.preprocess)
    pipeline.raw_shape = sample_shape
    raw_parts: dict[str, tuple[pd.DataFrame, np.ndarray] | None] = {
        "train": (frame_pool.iloc[train_pos], y_pool[train_pos]),
        "val": (frame_pool.iloc[val_pos], y_pool[val_pos]) if len(val_pos) else None,
        **({"val": (to_frame(val[0])[0], y_given_val)} if val is not None else {}),
        "test": (frame_test, y_test) if frame_test is not None and y_test is not None else None,
    }
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor] | None] = {}
    feature_names: list[str] = []
    out_shape = sample_shape
    for name, part in raw_parts.items():
        if part is None:
            tensors[name] = None
            continue
        before, labels = part
        if name == "train":
            after = pipeline.fit_transform(before)
            feature_names = [str(c) for c in after.columns]
            # steps that change the number of features (onehot, pca_whiten) make samples flat
            if len(feature_names) != math.prod(sample_shape):
                out_shape = (len(feature_names),)
        else:
            after = pipeline.transform(before)
        # rows dropped by an impute step take their targets with them
        labels = labels[before.index.get_indexer(after.index)]
        x = torch.from_numpy(frame_to_array(after, name, raw.name)).reshape(len(after), *out_shape)
        tensors[name] = (x, torch.from_numpy(labels))
    train = tensors["train"]
    assert train is not None
    if len(train[0]) == 0:
        raise DataError(f"data: no training samples left from '{raw.name}' after preprocessing")
    n_outputs = len(class_names or []) if task == "classification" else int(train[1].shape[1])
    if task == "classification" and n_outputs < 2:
        raise DataError(f"data: the target of '{raw.name}' has a single class; nothing to learn")
    return DataBundle.from_parts(
        train,
        tensors["val"],
        tensors["test"],
        task=task,
        n_outputs=n_outputs,
        sample_shape=tuple(out_shape),
        class_names=class_names,
        feature_names=feature_names,
        pipeline=pipeline,
        dataset=raw.name,
    )


def _refuse_preprocess(data: DataConfig, what: str, instead: str) -> None:
    """Images and texts have no preprocessing pipeline: only the untouched default passes."""
    given_steps = [(p.name, {k: v for k, v in p.options.items() if v is not None})
                   for p in data.preprocess]  # fmt: skip
    if given_steps and given_steps != [("standardize", {})]:
        raise DataError(
            f"data.preprocess = {[p.name for p in data.preprocess]}: '{data.dataset}' is "
            f"{what}, {instead}; set data.preprocess: []"
        )


def _text_bundle(
    raw: RawDataset,
    data: DataConfig,
    task: str,
    class_names: list[str] | None,
    y_pool: np.ndarray,
    positions: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    given: tuple[np.ndarray, np.ndarray],
    val: tuple[Any, np.ndarray] | None,
) -> DataBundle:
    """A table's text column(s) as token ids, with a tokenizer fitted on the training part."""
    from nntune.data.text import build_tokenizer, joined_texts

    assert raw.text is not None
    _refuse_preprocess(data, "text (data.text)", "read by its tokenizer (data.tokenizer)")
    train_pos, val_pos, test_pos = positions
    y_given_val, y_given_test = given
    where = f"'{raw.name}'"
    pool = joined_texts(raw.x, raw.text, where)
    texts: dict[str, tuple[list[str], np.ndarray] | None] = {
        "train": ([pool[i] for i in train_pos], y_pool[train_pos]),
        "val": ([pool[i] for i in val_pos], y_pool[val_pos]) if len(val_pos) else None,
        "test": None,
    }
    if val is not None:
        texts["val"] = (joined_texts(to_frame(val[0])[0], raw.text, "the validation part"),
                        y_given_val)  # fmt: skip
    if raw.x_test is not None:
        test_frame = to_frame(raw.x_test)[0]
        texts["test"] = (joined_texts(test_frame, raw.text, where), y_given_test)
    elif test_pos is not None:
        texts["test"] = ([pool[i] for i in test_pos], y_pool[test_pos])
    tokenizer = build_tokenizer(data.tokenizer.name, dict(data.tokenizer.options))
    train_texts = texts["train"][0]  # type: ignore[index]
    tokenizer.fit(train_texts)
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor] | None] = {}
    counts: dict[str, dict[str, int]] = {}
    for name, part in texts.items():
        if part is None:
            tensors[name] = None
            continue
        ids, counts[name] = tokenizer.encode(part[0])
        labels = part[1]
        tensors[name] = (torch.from_numpy(ids), torch.from_numpy(labels))
    # the same text in two parts (empty texts are counted as empty, not as duplicates)
    seen = {" ".join(t.lower().split()) for t in train_texts} - {""}
    held = [t for name in ("val", "test") if texts[name] for t in texts[name][0]]  # type: ignore[index]
    shared = sum(" ".join(t.lower().split()) in seen for t in held)
    n_texts = sum(len(part[0]) for part in texts.values() if part is not None)
    truncated = sum(c["truncated"] for c in counts.values())
    checks = {
        "texts": n_texts,
        "empty_texts": sum(c["empty"] for c in counts.values()),
        "truncated_texts": truncated,
        "truncated_share": truncated / max(n_texts, 1),
        "duplicate_texts": shared,
        "duplicate_fraction": shared / len(held) if held else 0.0,
    }
    judged = counts.get("val") or counts.get("test")
    if judged:  # OOV on held-out texts: words the model never learned an embedding for, of the
        # single words or characters (an unseen bigram of two known words is no unknown word:
        # with bigrams, 0.25 of Rotten Tomatoes' tokens were unseen, 0.04 of its words)
        checks["oov_rate"] = judged["oov_units"] / max(judged["units"], 1)
    n_outputs = (
        len(class_names or [])
        if task == "classification"
        else int(y_pool.reshape(len(y_pool), -1).shape[1])
    )
    if task == "classification" and n_outputs < 2:
        raise DataError(f"data: the target of '{raw.name}' has a single class; nothing to learn")
    train = tensors["train"]
    assert train is not None
    return DataBundle.from_parts(
        train,
        tensors["val"],
        tensors["test"],
        task=task,
        n_outputs=n_outputs,
        sample_shape=(tokenizer.length,),
        class_names=class_names,
        feature_names=list(raw.text),
        dataset=raw.name,
        text={
            "columns": list(raw.text),
            "tokenizer": tokenizer.state_dict(),
            "vocab_size": tokenizer.vocab_size,
            "max_length": tokenizer.length,
            "checks": checks,
        },
    )


def _series_bundle(
    raw: RawDataset,
    data: DataConfig,
    task: str,
    class_names: list[str] | None,
    y_pool: np.ndarray,
    positions: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    given: tuple[np.ndarray, np.ndarray],
    val: tuple[Any, np.ndarray] | None,
    layout: tuple[str, str],
) -> DataBundle:
    """Series (N, C, L) of every part, NaN-padded to the longest one, with the series steps of
    data.preprocess fitted on the training part."""
    from nntune.data.series import (
        apply_steps,
        as_series,
        build_steps,
        fit_steps,
        lengths_of,
        pad_to,
        steps_state,
    )

    train_pos, val_pos, test_pos = positions
    y_given_val, y_given_test = given
    where = f"data.dataset '{raw.name}'"
    pool = as_series(np.asarray(raw.x), layout[0], where)
    parts: dict[str, tuple[np.ndarray, np.ndarray] | None] = {
        "train": (pool[train_pos], y_pool[train_pos]),
        "val": (pool[val_pos], y_pool[val_pos]) if len(val_pos) else None,
        "test": (pool[test_pos], y_pool[test_pos]) if test_pos is not None else None,
    }
    if val is not None:
        parts["val"] = (as_series(val[0], layout[0], f"{where}, validation part"), y_given_val)
    if raw.x_test is not None:
        parts["test"] = (as_series(np.asarray(raw.x_test), layout[0], f"{where}, x_test"),
                         y_given_test)  # fmt: skip
    channels = pool.shape[1]
    for name, part in parts.items():
        if part is not None and part[0].shape[1] != channels:
            raise DataError(
                f"{where}: the {name} part has {part[0].shape[1]} channel(s), x has {channels} "
                f"(layout {layout[0]})"
            )
    longest = max(part[0].shape[2] for part in parts.values() if part is not None)
    train_lengths = lengths_of(parts["train"][0])  # type: ignore[index]
    steps = build_steps(data.preprocess)
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor] | None] = {}
    for name, part in parts.items():
        if part is None:
            tensors[name] = None
            continue
        padded = pad_to(part[0], longest)
        values = fit_steps(steps, padded) if name == "train" else apply_steps(steps, padded)
        tensors[name] = (torch.from_numpy(np.ascontiguousarray(values)), torch.from_numpy(part[1]))
    train = tensors["train"]
    assert train is not None
    n_outputs = (
        len(class_names or [])
        if task == "classification"
        else int(y_pool.reshape(len(y_pool), -1).shape[1])
    )
    if task == "classification" and n_outputs < 2:
        raise DataError(f"data: the target of '{raw.name}' has a single class; nothing to learn")
    padded_any = any(bool(torch.isnan(t[0]).any()) for t in tensors.values() if t is not None)
    return DataBundle.from_parts(
        train,
        tensors["val"],
        tensors["test"],
        task=task,
        n_outputs=n_outputs,
        sample_shape=tuple(train[0].shape[1:]),
        class_names=class_names,
        dataset=raw.name,
        series={
            "layout": layout[0],
            "layout_reason": layout[1],
            "channels": int(channels),
            "input_length": int(longest),  # the longest raw series: prediction inputs' limit
            "length": int(train[0].shape[2]),  # after the steps (resample changes it)
            "lengths": {
                "min": int(train_lengths.min()),
                "median": float(np.median(train_lengths)),
                "max": int(train_lengths.max()),
            },
            "variable_length": padded_any,
            "steps": steps_state(steps),
        },
    )


IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])  # mean, std of RGB in 0..1


def _image_bundle(
    raw: RawDataset,
    data: DataConfig,
    task: str,
    class_names: list[str] | None,
    y_pool: np.ndarray,
    positions: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    given: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
) -> DataBundle:
    """An image folder's parts as uint8 tensors (no preprocessing pipeline: the model
    normalizes its input with the training part's channel statistics, see ImageModel)."""
    assert raw.image is not None
    _refuse_preprocess(
        data, "an image folder", "normalized by data.image.normalize (dataset, imagenet or none)"
    )
    train_pos, val_pos, test_pos = positions
    y_given_val, y_given_test = given
    x_pool = np.asarray(raw.x)

    def part(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)), torch.from_numpy(y)

    train = part(x_pool[train_pos], y_pool[train_pos])
    if val is not None:
        val_part: tuple[torch.Tensor, torch.Tensor] | None = part(val[0], y_given_val)
    else:
        val_part = part(x_pool[val_pos], y_pool[val_pos]) if len(val_pos) else None
    if raw.x_test is not None:
        test: tuple[torch.Tensor, torch.Tensor] | None = part(np.asarray(raw.x_test), y_given_test)
    else:
        test = part(x_pool[test_pos], y_pool[test_pos]) if test_pos is not None else None
    channels = int(train[0].shape[1])
    mode = data.image.normalize
    if mode == "imagenet" and channels != 3:
        raise DataError(
            f"data.image.normalize = imagenet needs RGB images; '{data.dataset}' is read with "
            f"{channels} channel(s) (data.image.channels: rgb, or normalize: dataset)"
        )
    if mode == "dataset":
        mean, std = channel_stats(train[0])
    elif mode == "imagenet":
        mean, std = IMAGENET
    else:
        mean, std = [0.0] * channels, [1.0] * channels
    n_outputs = len(class_names or [])
    if n_outputs < 2:
        raise DataError(f"data: the image folder '{data.dataset}' holds a single class")
    return DataBundle.from_parts(
        train,
        val_part,
        test,
        task=task,
        n_outputs=n_outputs,
        sample_shape=tuple(train[0].shape[1:]),
        class_names=class_names,
        dataset=raw.name,
        image={**raw.image, "normalize": mode, "mean": mean, "std": std},
    )


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images (N, C, H, W), in 0..1 units,
    in chunks (no float copy of the whole set)."""
    channels = x.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    count = 0
    for i in range(0, len(x), chunk):
        block = x[i : i + chunk].to(torch.float64) / 255.0
        total += block.sum(dim=(0, 2, 3))
        squares += (block * block).sum(dim=(0, 2, 3))
        count += block.shape[0] * block.shape[2] * block.shape[3]
    mean = total / max(count, 1)
    var = (squares / max(count, 1) - mean * mean).clamp_min(0.0)
    std = var.sqrt().clamp_min(1e-3)  # a constant channel: no division by zero
    return [float(v) for v in mean], [float(v) for v in std]


def split_positions(
    y_pool: np.ndarray,
    task: str,
    class_names: list[str] | None,
    data: DataConfig,
    seed: int,
    test_given: bool,
    val_given: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Positions in the pool of the training, validation and test parts (test: None when the
    dataset has its own): stratified for classes, data.val_fold or val_split, then data.limit;
    a class left out of the training part is an error."""
    strat = y_pool if task == "classification" else None
    positions = np.arange(len(y_pool))
    test_pos = None
    if not test_given and data.test_split > 0:
        keep, held = split_off(
            strat if strat is not None else _dummy(positions),
            data.test_split,
            seed,
            "data.test_split",
            "a test part",
        )
        test_pos, positions = held, keep
    pool_labels = y_pool[positions] if strat is not None else _dummy(positions)
    if not val_given and data.val_fold is not None:
        fold = data.val_fold
        keep, held = fold_out(pool_labels, fold.folds, fold.index, seed + 1, "data.val_fold")
    else:
        val_fraction = 0.0 if val_given else data.val_split  # a given val part replaces it
        keep, held = split_off(
            pool_labels, val_fraction, seed + 1, "data.val_split", "a validation part"
        )
    val_pos, train_pos = positions[held], positions[keep]
    if data.limit is not None:
        train_labels = y_pool[train_pos] if strat is not None else _dummy(train_pos)
        train_pos = train_pos[subsample(train_labels, data.limit, seed + 2)]
    if task == "classification":
        missing = sorted(set(range(len(class_names or []))) - set(y_pool[train_pos].tolist()))
        if missing and class_names:
            raise DataError(
                f"data: the training part has no sample of class(es) "
                f"{[class_names[i] for i in missing]}; use more data (data.limit) or fewer held out"
            )
    return train_pos, val_pos, test_pos


def _dummy(positions: np.ndarray) -> np.ndarray:
    """Float stand-ins for targets, so that splits of regression data are not stratified."""
    return np.zeros(len(positions), dtype=np.float32)
