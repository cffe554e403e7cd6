"""Where data comes from: built-in datasets (bundled or generated offline) and data files."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nntune.errors import DataError, did_you_mean
from nntune.registry import Registry
from nntune.usercode import is_reference


@dataclass
class RawDataset:
    """Features and targets as read, before any split or preprocessing.

    ``x`` is a DataFrame for tables (columns may be non-numeric or hold NaN) or an array of any
    rank for signals and images. ``x_test``/``y_test`` are set when the dataset has its own test
    split.
    """

    name: str
    x: pd.DataFrame | np.ndarray
    y: np.ndarray
    x_test: pd.DataFrame | np.ndarray | None = None
    y_test: np.ndarray | None = None
    task: str | None = None  # None: infer from the targets
    class_names: list[str] | None = None
    x_val: pd.DataFrame | np.ndarray | None = None  # a validation split of its own
    y_val: np.ndarray | None = None
    # a user's torch Dataset (then x and y are empty): split by index, batched by a DataLoader
    source: Any = None
    target: str | None = None  # a table's target column (given, or the one guessed)
    image: dict[str, Any] | None = None  # an image folder: what was read (size, skipped files)
    text: list[str] | None = None  # a table's text columns (data.text): x holds only those

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise DataError(
                f"dataset '{self.name}': {len(self.x)} feature rows but {len(self.y)} targets"
            )


@dataclass(frozen=True)
class DatasetRequest:
    """What a dataset builder may be asked for (keys of the data: section)."""

    n_samples: int | None = None
    noise: float | None = None
    options: dict[str, Any] = field(default_factory=dict)  # a user's dataset: its options


DatasetBuilder = Callable[[DatasetRequest], RawDataset]
DATASETS: Registry[DatasetBuilder] = Registry("dataset")

# Generated datasets are fixed objects (like a downloaded one would be): they do not change with
# the run's seed, which only drives splits, init and batch order.
GENERATOR_SEED = 0


def cache_dir() -> Path:
    """Where generated datasets are kept between runs (NNTUNE_CACHE_DIR overrides)."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get("NNTUNE_CACHE_DIR") or user_cache_dir("nntune"))


@DATASETS.register("mnist1d", tags=("generated", "signal"))
def mnist1d(request: DatasetRequest) -> RawDataset:
    """MNIST-1D (Greydanus 2020): 10 classes of 40-step signals, generated offline and cached."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args()
    if request.n_samples is not None:
        args.num_samples = request.n_samples
    key_fields = {k: v for k, v in vars(args).items() if k != "url"}
    key = hashlib.sha1(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir() / f"mnist1d-{key}.npz"
    if not path.exists():
        _generate_mnist1d(args, path)
    with np.load(path) as arrays:
        return RawDataset(
            name="mnist1d",
            x=arrays["x"].astype(np.float32),
            y=arrays["y"].astype(np.int64),
            x_test=arrays["x_test"].astype(np.float32),
            y_test=arrays["y_test"].astype(np.int64),
            task="classification",
            class_names=[str(i) for i in range(10)],
        )


def _generate_mnist1d(args: object, path: Path) -> None:
    from mnist1d.data import make_dataset

    data = make_dataset(args)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique temporary name, then rename: concurrent first runs do not see half a file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, x=data["x"], y=data["y"], x_test=data["x_test"], y_test=data["y_test"])
    os.replace(tmp, path)


def _sklearn_bundled(name: str, loader_name: str, task: str, kind: str = "table") -> None:
    def build(request: DatasetRequest) -> RawDataset:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)()
        names = getattr(bunch, "target_names", None)
        return RawDataset(
            name=name,
            x=np.asarray(bunch.data, dtype=np.float32),
            y=np.asarray(bunch.target),
            task=task,
            class_names=[str(n) for n in names] if names is not None else None,
        )

    build.__doc__ = f"scikit-learn's bundled {name} dataset ({task})."
    # kind (table, image): what the samples are, for nntune auto's choice of model
    DATASETS.register(name, tags=("bundled", task, kind))(build)


_sklearn_bundled("digits", "load_digits", "classification", "image")  # 8×8 pixels
_sklearn_bundled("iris", "load_iris", "classification")
_sklearn_bundled("wine", "load_wine", "classification")
_sklearn_bundled("breast_cancer", "load_breast_cancer", "classification")
_sklearn_bundled("diabetes", "load_diabetes", "regression")


Generator = Callable[[int, float, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _synthetic(name: str, default_noise: float, doc: str) -> Callable[[Generator], Generator]:
    """Register a 2-D classification generator ``make(n, noise, rng)`` as a dataset."""

    def wrap(make: Generator) -> Generator:
        def build(request: DatasetRequest) -> RawDataset:
            n = request.n_samples or 1000
            noise = default_noise if request.noise is None else request.noise
            x, y = make(n, noise, np.random.default_rng(GENERATOR_SEED))
            return RawDataset(
                name=name,
                x=x.astype(np.float32),
                y=y.astype(np.int64),
                task="classification",
                class_names=[str(c) for c in np.unique(y)],
            )

        build.__doc__ = doc
        DATASETS.register(name, tags=("generated", "synthetic", "classification"))(build)
        return make

    return wrap


@_synthetic("spirals", 0.2, "Two interleaved 2-D spirals (n_samples, noise).")
def _spirals(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    per_class = [n // 2, n - n // 2]
    xs, ys = [], []
    for label, count in enumerate(per_class):
        t = np.sqrt(rng.uniform(0.0, 1.0, count)) * 3.0 * np.pi
        angle = t + label * np.pi
        points = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) / (3.0 * np.pi)
        xs.append(points + rng.normal(0.0, noise / 3.0, points.shape))
        ys.append(np.full(count, label))
    order = rng.permutation(n)
    return np.concatenate(xs)[order], np.concatenate(ys)[order]


@_synthetic("moons", 0.1, "Two interleaving half circles, scikit-learn's make_moons.")
def _moons(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=noise, random_state=int(rng.integers(2**31)))
    return x, y


@_synthetic("circles", 0.05, "A circle inside another, scikit-learn's make_circles.")
def _circles(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=n, noise=noise, factor=0.5, random_state=int(rng.integers(2**31)))
    return x, y


@_synthetic("xor", 0.1, "XOR of the signs of two uniform features, with gaussian noise.")
def _xor(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
    return x + rng.normal(0.0, noise, x.shape), y


@_synthetic("blobs", 1.0, "Three gaussian blobs in 2-D, scikit-learn's make_blobs (noise: std).")
def _blobs(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=n, centers=3, cluster_std=noise, random_state=int(rng.integers(2**31))
    )
    return x, y


# --- data files -----------------------------------------------------------------------------

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")  # files that data.text can read
FILE_SUFFIXES = (*TABLE_SUFFIXES, ".npz")
TARGET_GUESSES = ("target", "label", "labels", "y", "class")


def is_data_file(name: str) -> bool:
    return name.lower().endswith(FILE_SUFFIXES) or os.sep in name or "/" in name


def load_file(
    path_text: str,
    target: str | None,
    features: list[str] | None,
    text: list[str] | None = None,
) -> RawDataset:
    """A CSV/TSV/Parquet table or an NPZ archive; errors name data.dataset and the file."""
    path = Path(path_text)
    if not path.exists():
        raise DataError(f"data.dataset: file '{path}' not found")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path)
    if suffix not in FILE_SUFFIXES:
        raise DataError(
            f"data.dataset: '{path}' has an unknown file type '{suffix}' "
            f"(allowed: {', '.join(FILE_SUFFIXES)})"
        )
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except Exception as err:  # pandas raises many types for a broken file
        raise DataError(f"data.dataset: cannot read '{path}': {err}") from None
    return from_table(frame, path, target, features, text)


def from_table(
    frame: pd.DataFrame,
    path: Path,
    target: str | None,
    features: list[str] | None,
    text: list[str] | None = None,
) -> RawDataset:
    columns = [str(c) for c in frame.columns]
    frame.columns = pd.Index(columns)
    if frame.empty:
        raise DataError(f"data.dataset: '{path}' has no rows")
    if target is None:
        target = next((c for c in columns if c.lower() in TARGET_GUESSES), None)
        if target is None:
            raise DataError(
                f"data.target: not set, and '{path}' has no column named "
                f"{'/'.join(TARGET_GUESSES)}; set data.target to one of: {', '.join(columns)}"
            )
    if target not in columns:
        raise DataError(
            f"data.target = '{target}': no such column in '{path}'"
            f"{did_you_mean(target, columns)} (columns: {', '.join(columns)})"
        )
    if text:
        # the model reads the text only: other columns would need a second input
        if features is not None and list(features) != list(text):
            raise DataError(
                f"data.features = {features} with data.text = {text}: a text run reads its text "
                "columns only; remove data.features (or list the text columns in data.text)"
            )
        missing = [c for c in text if c not in columns]
        if missing:
            raise DataError(
                f"data.text: column(s) {missing} not in '{path}'"
                f"{did_you_mean(missing[0], columns)} (columns: {', '.join(columns)})"
            )
        if target in text:
            raise DataError(f"data.text: '{target}' is the target column (data.target)")
        features = list(text)
    if features is None:
        features = [c for c in columns if c != target]
    missing = [c for c in features if c not in columns]
    if missing:
        raise DataError(
            f"data.features: column(s) {missing} not in '{path}' (columns: {', '.join(columns)})"
        )
    if not features:
        raise DataError(f"data.features: '{path}' has no feature columns besides the target")
    y = frame[target].to_numpy()
    if pd.isna(frame[target]).any():
        rows = np.flatnonzero(pd.isna(frame[target]).to_numpy())[:5].tolist()
        raise DataError(
            f"data.target '{target}' in '{path}' has missing values (rows {rows}...); "
            "drop those rows from the file"
        )
    x = frame[features].reset_index(drop=True)
    return RawDataset(name=path.name, x=x, y=y, target=target, text=list(text) if text else None)


def _load_npz(path: Path) -> RawDataset:
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataError(f"data.dataset: cannot read '{path}' as .npz: {err}") from None
    with archive:
        keys = set(archive.files)
        x_key = "x" if "x" in keys else "X" if "X" in keys else None
        if x_key is None or "y" not in keys:
            raise DataError(
                f"data.dataset: '{path}' must hold arrays 'x' (or 'X') and 'y', "
                f"found: {', '.join(sorted(keys))}"
            )
        x = archive[x_key]
        y = archive["y"]
        test_x_key = "x_test" if "x_test" in keys else "X_test" if "X_test" in keys else None
        has_test = test_x_key is not None and "y_test" in keys
        x_test = archive[test_x_key] if has_test and test_x_key else None
        y_test = archive["y_test"] if has_test else None
    for label, array in (("x", x), ("y", y)):
        if array.dtype == object:
            raise DataError(f"data.dataset: array '{label}' in '{path}' has dtype object")
    if x.ndim < 2:
        x = x.reshape(len(x), 1)
    return RawDataset(name=path.name, x=x, y=y, x_test=x_test, y_test=y_test)


def load_image_folder(
    path: str, options: Any, target: str | None, features: list[str] | None
) -> RawDataset:
    """An image folder as a RawDataset of uint8 (N, C, H, W) arrays and class names."""
    from nntune.data.images import read_image_folder

    for key, given in (("data.target", target), ("data.features", features)):
        if given is not None:
            raise DataError(f"{key} applies to tables; '{path}' is an image folder")
    folder = read_image_folder(path, options)
    return RawDataset(
        name=Path(path).name,
        x=folder.x,
        y=folder.y,
        x_test=folder.x_test,
        y_test=folder.y_test,
        x_val=folder.x_val,
        y_val=folder.y_val,
        task="classification",
        class_names=folder.classes,
        image=folder.facts(),
    )


def load_dataset(
    name: str,
    *,
    target: str | None = None,
    features: list[str] | None = None,
    n_samples: int | None = None,
    noise: float | None = None,
    options: dict[str, Any] | None = None,
    image: Any = None,
    text: list[str] | None = None,
) -> RawDataset:
    """A built-in dataset by name, a data file by path, an image folder (a directory; ``image``:
    its ImageOptions), or a user's dataset by reference (``options``: the keys of ``data:`` it
    takes)."""
    if text and (name in DATASETS or not name.lower().endswith(TABLE_SUFFIXES)):
        raise DataError(
            f"data.text applies to csv/tsv/parquet tables; '{name}' is not one (its text "
            "columns name the texts)"
        )
    if Path(name).expanduser().is_dir() and name not in DATASETS:
        from nntune.data.images import ImageOptions

        return load_image_folder(name, image or ImageOptions(), target, features)
    if is_reference(name):
        from nntune.data.user import load_user_dataset

        return load_user_dataset(name, options or {}, target, features, n_samples, noise)
    if name not in DATASETS and is_data_file(name):
        for key, value in (("n_samples", n_samples), ("noise", noise)):
            if value is not None:
                raise DataError(f"data.{key} applies to generated datasets only, not to a file")
        return load_file(name, target, features, text)
    entry = DATASETS.get(name, key="data.dataset")
    generated = DATASETS.list("generated")
    synthetic = DATASETS.list("synthetic")
    if n_samples is not None and entry.name not in generated:
        raise DataError(
            f"data.n_samples applies to generated datasets only ({', '.join(generated)}), "
            f"not to '{name}'"
        )
    if noise is not None and entry.name not in synthetic:
        raise DataError(
            f"data.noise applies to synthetic datasets only ({', '.join(synthetic)}), "
            f"not to '{name}'"
        )
    for key, given in (("target", target is not None), ("features", features is not None)):
        if given:
            raise DataError(f"data.{key} applies to csv/parquet files only, not to '{name}'")
    return entry.builder(DatasetRequest(n_samples=n_samples, noise=noise))
