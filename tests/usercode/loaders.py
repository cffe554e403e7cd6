"""Data of the user's own, in each form a dataset function may return."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return x, y


def load_blobs(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) arrays."""
    return _blobs(n, seed)


def load_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Splits of its own."""
    return {"train": _blobs(200, 0), "val": _blobs(50, 1), "test": _blobs(70, 2)}


def load_table() -> pd.DataFrame:
    """A table with a text column and a target column."""
    x, y = _blobs(240, 3)
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    frame["colour"] = np.where(x[:, 2] > 0, "red", "blue")
    frame["label"] = np.where(y == 1, "yes", "no")
    return frame


class Blobs(Dataset):
    """A map-style torch Dataset of (x, y) items."""

    def __init__(self, n: int = 200) -> None:
        self.x, self.y = (torch.from_numpy(a) for a in _blobs(n, 4))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def load_dataset(n: int = 200) -> Dataset:
    return Blobs(n)


def load_nothing() -> str:
    return "not data"
