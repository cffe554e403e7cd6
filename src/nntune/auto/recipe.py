"""What ``nntune auto`` makes of a data set: what it holds, and the recipe to start from.

The decisions are rules stated here, and their result is plain config: the starting recipe is
a config a user can read, edit and train, like any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nntune.config import Config
from nntune.data import DATASETS
from nntune.data.datasets import RawDataset, is_data_file, load_dataset
from nntune.data.pipeline import infer_task
from nntune.data.profile import profile_frame, suggest_preprocess, text_columns
from nntune.errors import DataError
from nntune.search.folds import SEARCH_FOLDS, SMALL_VALIDATION, brings_validation
from nntune.usercode import absolute_reference, is_reference

KINDS = ("table", "signal", "image", "text")
# below this many validation rows, accuracy moves in steps of 0.2 % or more and many trials tie
# at the top: the search ranks trials by validation loss instead (without label smoothing,
# which would make the losses of trials incomparable), and scores each trial by k-fold
# cross-validation of the training part (search.folds: auto, the rule of search/folds.py): with
# a hundred validation rows, the best of hundreds of trials on one split is mostly the luckiest
# (breast_cancer: a val_loss of 0.0 on 91 rows, 93.9 % on the test part where the starting
# recipe scores 97 %)
# a 2-D array of this many or more features is read as one signal (a row = a sequence); fewer
# are table columns
MIN_SIGNAL_LENGTH = 16
# below this many training series the small-series recipe (SMALL_SERIES_RECIPE) applies: the
# archives' sizes (tens to a few hundred); MNIST-1D's 4,000 get its own recipe
SMALL_SERIES = 1000
SMALL_SERIES_MIN_EPOCHS = 60
# text: Google's text-classification guide measured the ratio of training samples to words per
# sample: below ~1,500 a bag of n-grams wins, above a sequence model (its sepCNN; here textcnn)
TEXT_SEQUENCE_RATIO = 1500
# the bag's tokenizers (the first is the recipe's; auto's probe chooses between them on the
# validation part, auto/tokenizer_probe.py): words and bigrams, and character 1- to 4-grams,
# which gave scikit-learn's linear SVM 57.4 % against 47.2 % on the 29 fortune categories and
# 78.0 % against 78.1 % on Rotten Tomatoes (split 0, docs/benchmarks.md "Text columns"): style
# and spelling carry the label in some text sets, words in others. Every training token is kept
# (unknown ones weigh 0)
BAG_TOKENIZERS: tuple[dict[str, Any], ...] = (
    {"name": "word", "ngrams": 2, "max_tokens": 300000, "min_freq": 1},
    {"name": "char", "ngrams": 4, "max_tokens": 300000, "min_freq": 1},
)
# a bag's max_length: the 95th percentile of its tokens per training text, up to this many: the
# bag's cost follows the real tokens (the id matrix's width costs memory only), and a text cut at
# 1,000 character n-grams lost 2.5 points on fortunes; sequence archs keep max_length auto
# (at most 1,000)
BAG_MAX_LENGTH = 5000


@dataclass
class DataFacts:
    """What the data is, as the rest of auto needs it (and auto.json records)."""

    dataset: str  # a built-in name, or the file's absolute path
    target: str | None
    kind: str  # table | signal | image
    task: str  # classification | regression
    n_rows: int
    sample_shape: list[int]
    n_classes: int | None
    preprocess: list[Any]
    profile: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    text: list[str] | None = None  # a table's free-text columns: the model reads them
    recipe: str = "default"  # small_series: few z-normalized series (small_series_recipe)
    layout: str | None = None  # series: how x is read (NCL/NLC), written as data.layout
    # a validation part of the data's own (a folder's val/, a Dataset's val): kept as it is
    own_validation: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "target": self.target,
            "kind": self.kind,
            "task": self.task,
            "rows": self.n_rows,
            "sample_shape": self.sample_shape,
            "classes": self.n_classes,
            "preprocess": self.preprocess,
            "profile": self.profile,
            "notes": self.notes,
            **({"text": self.text} if self.text else {}),
            **({"layout": self.layout} if self.layout else {}),
            "recipe": self.recipe,
        }


def _source(data: str) -> str:
    if is_reference(data):  # user code: a file next to the working directory, or a package
        reference = absolute_reference(data, Path.cwd())
        DATASETS.get(reference, key="dataset")
        return reference
    if is_data_file(data):
        path = Path(data).expanduser().resolve()
        if not path.exists():
            raise DataError(f"data file '{data}' not found")
        return str(path)
    DATASETS.get(data, key="dataset")  # an unknown name: the error lists the known ones
    return data


def _target_column(dataset: str, raw: RawDataset, target: str | None) -> str | None:
    """The column the loader took as the target (it guesses one when none is given)."""
    if target is not None or not isinstance(raw.x, pd.DataFrame):
        return target
    if raw.target is not None:
        return raw.target
    path = Path(dataset)
    if path.suffix.lower() in (".parquet", ".pq"):
        columns = [str(c) for c in pd.read_parquet(path).columns]
    else:
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        columns = [str(c) for c in pd.read_csv(path, sep=sep, nrows=0).columns]
    rest = [c for c in columns if c not in set(raw.x.columns)]
    return rest[0] if rest else None


def _kind(dataset: str, x: pd.DataFrame | np.ndarray, layout: str = "auto") -> str:
    """table for data frames and short rows; signal for long rows, rows with NaN padding and
    samples the series layout guess reads as (channels, length) or (length, channels); image
    for the rest of the arrays (nntune.data.series.resolve_layout) and the built-in image sets."""
    from nntune.data.series import SERIES_LAYOUTS, resolve_layout

    if layout != "auto":  # --layout: as given, if x's rank allows it (else a DataError)
        given, _ = resolve_layout(x, layout)
        return "signal" if given in SERIES_LAYOUTS else "image"
    if isinstance(x, pd.DataFrame):
        return "table"
    if not is_data_file(dataset) and not is_reference(dataset):
        tags = DATASETS.get(dataset, key="dataset").tags
        for kind in ("image", "signal"):
            if kind in tags:
                return kind
        return "table"
    layout, _ = resolve_layout(x, "auto")
    if layout in SERIES_LAYOUTS:
        return "signal"
    if x.ndim == 2:
        return "signal" if x.shape[1] >= MIN_SIGNAL_LENGTH else "table"
    return "image"


def series_profile(
    x: np.ndarray, y: np.ndarray, preprocess: list[Any], layout: str = "auto"
) -> dict[str, Any]:
    """How the series are laid out (and why), their channels and lengths, the class counts."""
    from nntune.data.series import SERIES_LAYOUTS, as_series, lengths_of, resolve_layout

    steps = [s if isinstance(s, str) else str(s.get("name")) for s in preprocess]
    layout, reason = resolve_layout(x, layout, steps)
    read = layout if layout in SERIES_LAYOUTS else "NCL"  # flat rows: one channel
    series = as_series(x, read, "x")
    lengths = lengths_of(series)
    profile: dict[str, Any] = {
        "layout": read,
        "layout_reason": reason,
        "channels": int(series.shape[1]),
        "length": int(series.shape[2]),
        "lengths": {
            "min": int(lengths.min()),
            "median": float(np.median(lengths)),
            "max": int(lengths.max()),
        },
        "variable_length": bool(lengths.min() < series.shape[2]),
    }
    if y.dtype.kind in "iubUO":
        names, counts = np.unique(y.astype(str), return_counts=True)
        profile["class_counts"] = dict(zip(names.tolist(), counts.tolist(), strict=True))
    return profile


def understand(
    data: str, target: str | None = None, task: str = "auto", layout: str = "auto"
) -> DataFacts:
    """Load ``data`` (a built-in name or a .csv/.parquet/.npz file) and describe it
    (``layout``: how an .npz's x is read, as data.layout; auto guesses it)."""
    dataset = _source(data)
    raw = load_dataset(dataset, target=target)
    if raw.source is not None:  # a torch Dataset of the user's: its items, to look at them
        from nntune.data.user import materialize

        xs, ys = materialize(raw.source["train"])
        raw = RawDataset(name=raw.name, x=xs.numpy(), y=ys.numpy(), source=raw.source)
    target = _target_column(dataset, raw, target)
    kind = _kind(dataset, raw.x, layout)
    notes: list[str] = []
    facts_layout = None
    y = np.asarray(raw.y)
    if task == "auto":
        task = raw.task or infer_task(y)
    profile = None
    text: list[str] = []
    if kind == "table":
        frame = raw.x if isinstance(raw.x, pd.DataFrame) else _frame(raw.x)
        named = target or "target"
        table = frame.copy()
        table[named] = y
        found = profile_frame(table, named)
        profile = found.to_json()
        notes += found.warnings
        preprocess = suggest_preprocess(found) or ["standardize"]
        text = text_columns(found)
        if text:  # free text: a text run reads those columns (and only those)
            kind, preprocess = "text", []
            profile = {**text_profile(frame, text, y, task), "columns": profile["columns"]}
            others = [c for c in frame.columns if c not in text]
            if others:
                notes.append(
                    f"a text run reads its text column(s) {text} only; not used: {others[:10]}"
                )
    elif kind == "signal":
        preprocess, facts_layout, profile = _signal_facts(raw, y, layout)
        if profile["layout_reason"] != "data.layout":
            notes.append(
                f"x read as {profile['layout']}: {profile['layout_reason']} "
                "(--layout NCL|NLC|NCHW|NHW reads it otherwise)"
            )
    else:
        preprocess = ["standardize"]
    if raw.image is not None:  # an image folder: what reading it found
        y_names, counts = np.unique(np.asarray(raw.y).astype(str), return_counts=True)
        profile = {
            "image_size": raw.image["size"],
            "channels": raw.image["channels"],
            "files": raw.image["files"],
            "skipped": raw.image["skipped"],
            "empty_classes": raw.image["empty_classes"],
            "class_counts": dict(zip(y_names.tolist(), counts.tolist(), strict=True)),
            "splits_given": [k for k in ("val", "test") if getattr(raw, f"y_{k}") is not None],
        }
        if raw.image["skipped"]:
            notes.append(f"{raw.image['skipped']} files are no usable image (skipped)")
    if raw.source is not None:
        preprocess = []  # a Dataset is used as it is
        notes.append("a torch Dataset: used as it is (no preprocessing), batched by a DataLoader")
    sample_shape = list(np.asarray(raw.x).shape[1:]) if kind != "table" else [raw.x.shape[1]]
    n_classes = len(np.unique(y)) if task == "classification" else None
    if kind == "text":
        sample_shape = [len(text)]
    return DataFacts(
        dataset=dataset,
        target=target,
        kind=kind,
        task=task,
        n_rows=len(y),
        sample_shape=sample_shape,
        n_classes=n_classes,
        preprocess=preprocess,
        profile=profile,
        notes=notes,
        text=text if kind == "text" else None,
        layout=facts_layout,
        recipe="small_series" if kind == "signal" and preprocess == ["znorm"] else "default",
        own_validation=brings_validation(raw),
    )


def _signal_facts(
    raw: RawDataset, y: np.ndarray, layout: str
) -> tuple[list[Any], str | None, dict[str, Any]]:
    """Preprocessing, data.layout and profile of series data. Few series (below
    SMALL_SERIES training series) are z-normalized per series and channel, the convention of
    the time-series archives (a recording's offset and gain say little about its class);
    many get the MNIST-1D recipe's standardization."""
    from nntune.data.series import SERIES_LAYOUTS, resolve_layout

    x = np.asarray(raw.x)
    # the training part: all of x when x_test is given, else 64 % (test_split and val_split)
    small = int(len(y) * (0.8 if raw.y_test is not None else 0.64)) < SMALL_SERIES
    preprocess: list[Any] = ["znorm"] if small else ["standardize"]
    resolved, _ = resolve_layout(x, layout, [str(p) for p in preprocess])
    profile = series_profile(x, y, preprocess, layout)
    profile["training_series"] = int(len(y) if raw.y_test is not None else round(0.8 * len(y)))
    return preprocess, resolved if resolved in SERIES_LAYOUTS else None, profile


def text_profile(
    frame: pd.DataFrame, columns: list[str], y: np.ndarray, task: str
) -> dict[str, Any]:
    """Rows, median words per text, the vocabulary of a word tokenizer fitted on 80 % of the
    texts and its out-of-vocabulary rate on the other 20 %, and the class balance."""
    from nntune.data.text import build_tokenizer, joined_texts, median_words

    texts = joined_texts(frame, columns, "the data")
    order = np.random.default_rng(0).permutation(len(texts))
    cut = max(1, int(0.8 * len(texts)))
    tokenizer = build_tokenizer("word", {"max_tokens": 10**9}).fit([texts[i] for i in order[:cut]])
    held = [texts[i] for i in order[cut:]]
    _, counts = tokenizer.encode(held) if held else (None, {"oov": 0, "tokens": 0})
    profile: dict[str, Any] = {
        "text_columns": columns,
        "rows": len(texts),
        "median_words": median_words(texts),
        "vocabulary": tokenizer.vocab_size - 2,
        "oov_rate": counts["oov"] / max(counts["tokens"], 1),
        "empty_texts": sum(not t.strip() for t in texts),
    }
    # tokens per text at the 95th percentile, for each tokenizer a bag may read
    fitted = [texts[i] for i in order[:cut]]
    profile["bag_lengths"] = {}
    for options in BAG_TOKENIZERS:
        splitter = build_tokenizer(
            options["name"], {k: v for k, v in options.items() if k != "name"}
        )
        lengths = [len(splitter.tokens(t)) for t in fitted]
        profile["bag_lengths"][tokenizer_label(options)] = int(np.percentile(lengths, 95))
    if task == "classification":
        names, n = np.unique(np.asarray(y).astype(str), return_counts=True)
        profile["class_counts"] = dict(zip(names.tolist(), n.tolist(), strict=True))
    return profile


def _frame(x: np.ndarray) -> pd.DataFrame:
    flat = x.reshape(len(x), -1)
    return pd.DataFrame(flat, columns=[f"x{i}" for i in range(flat.shape[1])])


def n_train(facts: DataFacts, val_split: float = 0.2, test_split: float = 0.2) -> int:
    return int(facts.n_rows * (1 - test_split) * (1 - val_split))


def small_validation(facts: DataFacts) -> bool:
    """Fewer than SMALL_VALIDATION validation rows (a quarter of the training rows at val_split
    0.2): the rules for small data apply."""
    return n_train(facts) // 4 < SMALL_VALIDATION


def starting_config(facts: DataFacts, name: str, seed: int = 0) -> dict[str, Any]:
    """The recipe auto starts from, sized to the data (the size rules are in the comments)."""
    n = n_train(facts)
    classification = facts.task == "classification"
    small = small_validation(facts)
    by_loss = classification and small
    config: dict[str, Any] = {
        "name": name,
        "seed": seed,
        "data": {
            "dataset": facts.dataset,
            **({"target": facts.target} if facts.target else {}),
            "task": facts.task,
            "val_split": 0.2,
            "test_split": 0.2,
            "preprocess": facts.preprocess,
            **({"text": facts.text} if facts.text else {}),
        },
        "loss": (
            {"name": "cross_entropy", "label_smoothing": 0.0 if by_loss else 0.05}
            if classification
            else "mse"
        ),
        "search": {
            "metric": "val_rmse"
            if not classification
            else "val_loss"
            if by_loss
            else "val_accuracy",
            "direction": "maximize" if classification and not by_loss else "minimize",
            **({"folds": SEARCH_FOLDS} if small else {}),
        },
    }
    if facts.kind == "table":
        # width grows with the data: 64 units below 1,000 rows, 128 to 10,000, then 256; small
        # tables get many epochs (few steps each), and early stopping keeps the best weights;
        # below 1,000 rows no BatchNorm (batch statistics of 32 rows are noise there)
        width = 64 if n < 1000 else 128 if n < 10_000 else 256
        epochs = 200 if n < 1000 else 100 if n < 10_000 else 40
        config["model"] = {
            "arch": "mlp",
            "hidden": [width, width],
            "activation": "relu",
            "norm": "none" if n < 1000 else "batch",
            "dropout": 0.1,
        }
        config["optimizer"] = {"name": "adamw", "lr": 3.0e-3, "weight_decay": 1.0e-4}
        config["schedule"] = {"name": "cosine", "warmup": 0.05}
        config["train"] = {
            "epochs": epochs,
            "batch_size": 32 if n < 2000 else 128,
            "early_stopping": {"monitor": "val_loss", "patience": 25, "restore_best": True},
        }
    elif facts.kind == "text":
        config["data"]["tokenizer"], rest = text_recipe(facts, n, config["search"]["metric"])
        config.update(rest)
    elif facts.recipe == "small_series":
        recipe = small_series_recipe(facts, n, classification)
        config["data"].update(recipe.pop("data"))
        config.update(recipe)
    elif facts.kind == "signal":
        # the MNIST-1D recipe of examples/mnist1d.yaml (a small 1-D ResNet), narrower below
        # 2,000 signals
        wide = n >= 2000
        config["data"]["augment"] = [
            {"name": "shift", "max": 4},
            {"name": "mixup", "alpha": 0.2},
        ]
        config["loss"] = (
            {"name": "cross_entropy", "label_smoothing": 0.1} if classification else "mse"
        )
        config["model"] = {
            "arch": {"name": "resnet1d", "kernel_size": 3, "blocks": 1},
            "hidden": [24, 48, 96, 192] if wide else [16, 32, 64],
            "activation": "gelu",
            "norm": "batch",
        }
        config["optimizer"] = {"name": "adamw", "lr": 3.0e-3, "weight_decay": 1.0e-2}
        config["schedule"] = {"name": "one_cycle", "pct_start": 0.25}
        config["train"] = {"epochs": 50, "batch_size": 128 if wide else 32}
    elif facts.profile is not None and "image_size" in facts.profile:
        # an image folder: a ResNet from 5,000 training images (a small CNN below), trained
        # with pad-and-crop and flips (photos' classes do not change when mirrored) and label
        # smoothing; the images' own normalization is part of the model
        side = min(facts.sample_shape[1:])
        config["data"]["augment"] = [{"name": "crop", "padding": max(1, side // 8)}, "flip"]
        if classification and not by_loss:
            config["loss"] = {"name": "cross_entropy", "label_smoothing": 0.1}
        large = n >= 5000
        config["model"] = {
            "arch": {"name": "resnet2d", "blocks": 1} if large else "cnn2d",
            "hidden": [32, 64, 128] if large else [32, 64],
            "activation": "relu" if large else "gelu",
            "norm": "batch",
            **({} if large else {"dropout": 0.1}),
        }
        config["optimizer"] = {"name": "adamw", "lr": 3.0e-3, "weight_decay": 5.0e-2}
        config["schedule"] = {"name": "one_cycle", "pct_start": 0.25}
        config["train"] = {
            "epochs": 30 if large else 40,
            "batch_size": 128 if large else 32,
            # convolutions run faster channels-last, and in bf16 where the device has bf16
            # instructions (measured on Fashion-MNIST: docs/benchmarks.md#image-folders)
            "channels_last": True,
            "precision": "auto",
        }
    else:
        # a small CNN: two conv stages, BatchNorm, GELU
        config["model"] = {
            "arch": "cnn2d",
            "hidden": [32, 64],
            "activation": "gelu",
            "norm": "batch",
            "dropout": 0.1,
        }
        if len(facts.sample_shape) == 2:
            config["model"]["input_shape"] = [1, *facts.sample_shape]
        config["optimizer"] = {"name": "adamw", "lr": 3.0e-3, "weight_decay": 1.0e-2}
        config["schedule"] = {"name": "one_cycle", "pct_start": 0.25}
        config["train"] = {"epochs": 40, "batch_size": 64 if n >= 1000 else 32}
    return config


def series_val_split(n: int, n_classes: int | None, fewest: int | None = None) -> float:
    """0.2, or the least share that leaves each of ``n_classes`` a series on both sides of a
    stratified split of ``n`` (36 series of 10 classes: 0.292); 0 when none can (a class of
    ``fewest`` = 1 series, or too few series)."""
    if not n_classes:
        return 0.2
    if fewest is not None and fewest < 2:
        return 0.0
    share = max(0.2, math.ceil(1000 * (n_classes + 0.5) / n) / 1000)
    return share if n - math.ceil(share * n) >= n_classes and share < 0.5 else 0.0


def _fewest(facts: DataFacts) -> int | None:
    counts = (facts.profile or {}).get("class_counts")
    return min(counts.values()) if counts else None


def small_series_recipe(facts: DataFacts, n: int, classification: bool) -> dict[str, Any]:
    """Few series (z-normalized, see _signal_facts): the ResNet of the time-series review
    (Wang et al. 2017; Ismail Fawaz et al. 2019: three residual blocks of 64, 128, 128 filters,
    kernels 8, 5, 3, no downsampling, global average pooling), Adam at 1e-3, batches of 16, long
    training on the whole training part. Measured on bench/series.py's cases
    (docs/benchmarks.md#series): the MNIST-1D recipe's narrow ResNet scored 54 % where this
    one scored 69 % (uni50), and training on all 50 series instead of 40 (a validation part of
    10) 74 %: with so few series, every one of them is worth more than a validation score to
    stop on, so the final model trains on all of them for the recipe's epochs. time_warp was
    the augmentation that never hurt: +0, +9, +3 and +2 points on uni50, uni36long, multi6 and
    varlen, where window_slice with scale gave +1, +10, -1.5 and -7."""
    n = int((facts.profile or {}).get("training_series") or n)
    batch = max(4, min(16, n // 4))
    steps_per_epoch = max(1, math.ceil(n / batch))
    return {
        "data": {
            **({"layout": facts.layout} if facts.layout else {}),
            # the doctor's probe validates on a part with every class on both sides (the final
            # model trains on all series: auto's tune stage sets val_split 0)
            "val_split": series_val_split(n, facts.n_classes, _fewest(facts)),
            "augment": [{"name": "time_warp"}],
        },
        "loss": {"name": "cross_entropy"} if classification else "mse",
        "model": {
            "arch": {
                "name": "resnet1d",
                "kernel_sizes": [8, 5, 3],
                "stem": False,
                "downsample": False,
            },
            "hidden": [64, 128, 128],
            "activation": "relu",
            "norm": "batch",
        },
        "optimizer": {"name": "adam", "lr": 1.0e-3},
        "schedule": {"name": "cosine", "warmup": 0.02},
        "train": {
            # ~1,500 steps (the review trained for 1,500 epochs of a few steps), 60 to 300
            # epochs; auto shortens them to what its budget allows
            "epochs": max(SMALL_SERIES_MIN_EPOCHS, min(300, round(1500 / steps_per_epoch))),
            "batch_size": batch,
        },
    }


def text_recipe(facts: DataFacts, n: int, monitor: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tokenizer, and model, optimizer, schedule and train of a text run: by Google's ratio of
    training texts to words per text, a bag of words and bigrams (fastText-style) below
    TEXT_SEQUENCE_RATIO, a text CNN over word embeddings above; early stopping on the search's
    metric (``monitor``) keeps the best epoch: text models overfit within a few epochs, and
    their validation loss rises (overconfidence) while the accuracy still climbs (29 fortune
    categories: the loss was lowest after epoch 1, the accuracy after epoch 6)."""
    words = max(float((facts.profile or {}).get("median_words") or 1.0), 1.0)
    sequence = n / words >= TEXT_SEQUENCE_RATIO
    rest: dict[str, Any] = {
        "train": {
            "epochs": 30,
            "batch_size": 32 if n < 5000 else 64,
            "early_stopping": {"monitor": monitor, "patience": 6, "restore_best": True},
        },
    }
    if sequence:
        tokenizer: dict[str, Any] = {"name": "word", "max_tokens": 30000, "min_freq": 2}
        rest["model"] = {
            "arch": {"name": "textcnn", "kernel_sizes": [3, 4, 5]},
            "hidden": [128],
            "embedding": 128,
            "activation": "relu",
            "dropout": 0.5,
        }
        rest["optimizer"] = {"name": "adamw", "lr": 3.0e-3, "weight_decay": 1.0e-4}
        rest["schedule"] = {"name": "cosine", "warmup": 0.05}
    else:
        # TF-IDF weights (a linear model on TF-IDF n-grams, fastText-initialized): above the
        # plain mean by 0.8 points on Rotten Tomatoes and 5.0 on fortunes (docs/benchmarks.md).
        # Words seen once are kept: they weigh by their idf, and unknown ones weigh 0 (with the
        # mean, min_freq 2 kept them OOV: 1 % unknown tokens in training, 25 % in validation)
        tokenizer = bag_tokenizers(facts)[0]
        # a bag of every training n-gram has millions of weights for ~10k texts: regularized
        # hard. auto's searches on Rotten Tomatoes and fortunes beat the weaker recipe
        # (embedding 128, dropout 0.2, decay 1e-4, lr 3e-3, cosine, smoothing 0.05; best at
        # epoch 2 on fortunes) with points like this one on 3 of the 4 splits where they
        # completed a second trial; on the 3 splits of each set this one scored 0.5-1.2 points
        # more on test, and more on validation (docs/benchmarks.md#the-bags-regularization)
        rest["model"] = {
            "arch": {"name": "bag", "weighting": "tfidf"},
            "hidden": [],
            "embedding": 64,
            "dropout": 0.5,
        }
        rest["optimizer"] = {"name": "adamw", "lr": 2.0e-3, "weight_decay": 3.0e-2}
        rest["schedule"] = {"name": "one_cycle", "warmup": 0.05}
        if monitor != "val_loss":  # ranked by loss, the trials share one loss: no smoothing
            rest["loss"] = {"name": "cross_entropy", "label_smoothing": 0.1}
    return tokenizer, rest


def tokenizer_label(options: dict[str, Any]) -> str:
    """'word_2' for words and bigrams: the key of a bag tokenizer in the profile."""
    return f"{options['name']}_{options.get('ngrams', 1)}"


def bag_tokenizers(facts: DataFacts) -> list[dict[str, Any]]:
    """BAG_TOKENIZERS, each with its max_length from the profile (auto's rule where the profile
    has none: a profile written before bag_lengths)."""
    lengths = (facts.profile or {}).get("bag_lengths") or {}
    found = []
    for options in BAG_TOKENIZERS:
        length = lengths.get(tokenizer_label(options))
        found.append(
            {**options, "max_length": min(max(int(length), 1), BAG_MAX_LENGTH)}
            if length
            else dict(options)
        )
    return found


def search_space(facts: DataFacts, config: Config) -> dict[str, dict[str, Any]]:
    """The search space auto hands to ``tune`` (written out in start.yaml): ``nntune tune``'s
    zero-config space for the recipe, adjusted to the data by the rules below."""
    from nntune.search.space import default_space

    space = default_space(config, facts.task)
    if config.search.metric == "val_loss":
        # trials ranked by their loss must share one loss: label smoothing stays off
        space.pop("loss.label_smoothing", None)
    if facts.kind == "table" and small_validation(facts):
        # on small tables a linear model (logistic or linear regression) is often the best
        # there is (breast_cancer, diabetes): it is a candidate, and the cross-validated
        # search picks it only if it validates better; widths and dropout are mlp's only
        space["model.arch"] = {"choice": ["mlp", "linear"]}
        for key in ("model.hidden", "model.dropout"):
            if key in space:
                space[key]["when"] = {"model.arch": ["mlp"]}
    if facts.kind == "text" and config.model.arch.name == "bag":
        # the rank of the bag's linear map: 29 fortune classes gained 1.0 point from 64 to 256
        space["model.embedding"] = {"choice": [64, 128, 256]}
    return space
