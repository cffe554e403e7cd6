"""Shared test setup: a private cache for generated datasets, one torch thread, tmp run roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    # generated datasets (mnist1d) are cached once per test session, outside the user's cache
    cache = Path(os.environ.get("NNTUNE_TEST_CACHE", "/tmp/nntune-test-cache"))
    os.environ.setdefault("NNTUNE_CACHE_DIR", str(cache))
    torch.set_num_threads(1)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside an empty folder (runs/ lands there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# a config that trains in well under a second: small synthetic data, small model
TINY: dict = {
    "seed": 0,
    "data": {"dataset": "moons", "n_samples": 400},
    "model": {"arch": "mlp", "hidden": [16, 16]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 3, "batch_size": 32, "threads": 1},
}


@pytest.fixture
def tiny() -> dict:
    import copy

    return copy.deepcopy(TINY)
