"""The Python API: nntune.train and Trainer with a user's own model, data and callbacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

import nntune
from nntune.records import EpochRecord
from nntune.train.callbacks import Callback, Stop, TrainState


def _blobs(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0.0, 3.0], [3.0, 0.0], [-3.0, -3.0]])
    return (centers[y] + rng.normal(0, 0.5, (n, 2))).astype(np.float32), y


def test_train_with_overrides_from_a_mapping_or_strings(in_tmp: Path, tiny: dict) -> None:
    a = nntune.train(tiny, {"train.epochs": 2}, out="a")
    b = nntune.train(tiny, ["train.epochs=2"], out="b")
    assert a.summary["epochs_run"] == b.summary["epochs_run"] == 2
    assert a.test == b.test


def test_load_config_and_train_a_config_object(in_tmp: Path, tiny: dict) -> None:
    config = nntune.load_config(tiny, ["train.epochs=1"])
    assert isinstance(config, nntune.Config)
    assert nntune.train(config).summary["epochs_run"] == 1


class Net(nn.Module):
    def __init__(self, n_in: int = 2, n_out: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, 32), nn.Tanh(), nn.Linear(32, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_trainer_with_a_custom_model_and_arrays(in_tmp: Path) -> None:
    x, y = _blobs()
    trainer = nntune.Trainer(
        {"optimizer": {"name": "adam", "lr": 0.02}, "train": {"epochs": 10, "threads": 1}},
        model=Net(),
        data=(x, y),
    )
    result = trainer.fit()
    assert result.test["accuracy"] > 0.95
    assert result.summary["parameters"] == sum(p.numel() for p in Net().parameters())
    assert trainer.model is not None


def test_trainer_with_given_validation_and_test_parts(in_tmp: Path) -> None:
    x, y = _blobs(300)
    xv, yv = _blobs(50, seed=1)
    xt, yt = _blobs(70, seed=2)
    result = nntune.Trainer(
        {"optimizer": {"name": "adam", "lr": 0.02}, "train": {"epochs": 5, "threads": 1}},
        model=Net(),
        data=(torch.from_numpy(x), torch.from_numpy(y)),
        val_data=(xv, yv),
        test_data=(xt, yt),
    ).fit()
    trainer_bundle = result.summary
    assert trainer_bundle["test"]["accuracy"] > 0.9
    # all 300 given samples train (the parts were given, nothing is split off)
    assert result.summary["steps"] == 5 * 5  # ceil(300 / 64) = 5 batches per epoch


class Squares(Dataset):
    """A map-style dataset that is not a TensorDataset: batched through a DataLoader."""

    def __init__(self, n: int) -> None:
        self.x, self.y = (torch.from_numpy(a) for a in _blobs(n))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def test_trainer_with_a_dataset(in_tmp: Path) -> None:
    result = nntune.Trainer(
        {
            "optimizer": {"name": "adam", "lr": 0.02},
            "train": {"epochs": 5, "threads": 1, "batch_size": 32},
        },
        model=Net(),
        data=Squares(256),
        val_data=Squares(64),
    ).fit()
    assert result.summary["steps"] == 5 * 8
    assert result.val["accuracy"] > 0.9


def test_a_tensor_dataset_takes_the_fast_path(in_tmp: Path) -> None:
    x, y = (torch.from_numpy(a) for a in _blobs())
    result = nntune.Trainer(
        {"optimizer": {"name": "adam", "lr": 0.02}, "train": {"epochs": 3, "threads": 1}},
        data=TensorDataset(x, y),
    ).fit()
    assert result.test["accuracy"] > 0.9


class Recorder(Callback):
    key = "recorder"

    def __init__(self, stop_after: int) -> None:
        self.stop_after = stop_after
        self.events: list[str] = []

    def on_train_begin(self, state: TrainState) -> None:
        self.events.append("begin")

    def on_epoch_begin(self, state: TrainState) -> None:
        self.events.append(f"epoch{state.epoch + 1}")

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> Stop | None:
        self.events.append(f"end{record.epoch}")
        return Stop("enough") if record.epoch >= self.stop_after else None

    def on_train_end(self, state: TrainState, reason: str) -> None:
        self.events.append(f"done:{reason}")


def test_user_callbacks_see_the_hooks_and_can_stop(in_tmp: Path, tiny: dict) -> None:
    recorder = Recorder(stop_after=2)
    tiny["train"]["epochs"] = 5
    result = nntune.train(tiny, callbacks=[recorder])
    assert recorder.events == ["begin", "epoch1", "end1", "epoch2", "end2", "done:enough"]
    assert result.summary["status"] == "stopped" and result.summary["stop_reason"] == "enough"


def test_write_false_leaves_no_run_folder(in_tmp: Path, tiny: dict) -> None:
    result = nntune.train(tiny, write=False)
    assert result.run_dir is None and not Path("runs").exists()
    assert result.test["accuracy"] > 0.5


def test_bad_user_data_is_a_data_error(in_tmp: Path) -> None:
    with pytest.raises(nntune.DataError, match="data"):
        nntune.Trainer({}, data=[1, 2, 3]).fit()


def test_a_run_folder_predicts_raw_rows_with_its_own_preprocessing(in_tmp: Path) -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 400
    city = rng.choice(["paris", "rome", "oslo"], n)
    size = rng.normal(100.0, 30.0, n)
    size[rng.random(n) < 0.05] = np.nan
    label = np.where((city == "rome") | (np.nan_to_num(size, nan=100.0) > 120), "yes", "no")
    pd.DataFrame({"size": size, "city": city, "label": label}).to_csv("table.csv", index=False)
    config = {
        "data": {
            "dataset": "table.csv",
            "test_split": 0.25,
            "preprocess": [{"name": "impute", "strategy": "median"}, "onehot", "standardize"],
        },
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 30, "threads": 1},
    }
    result = nntune.train(config, out="run")
    predictor = nntune.load_run("run")
    raw = pd.DataFrame(
        {"city": ["rome", "oslo", "paris"], "size": [50.0, 200.0, 60.0], "label": ["?"] * 3}
    )
    out = predictor.predict(raw)
    assert out["predictions"] == ["yes", "yes", "no"]
    assert np.allclose(np.sum(out["probabilities"], axis=1), 1.0)
    assert result.test["accuracy"] > 0.9
    # arrays in the training column order work too, and a wrong width is a clear error
    same = predictor.predict(np.array([[50.0, "rome"]], dtype=object))
    assert same["predictions"] == ["yes"]
    with pytest.raises(nntune.DataError, match="features"):
        predictor.predict(np.zeros((1, 5)))


def test_load_run_of_a_custom_model_says_how_to_load_it(in_tmp: Path) -> None:
    x, y = _blobs()
    nntune.Trainer(
        {"train": {"epochs": 1, "threads": 1}}, model=Net(), data=(x, y), out="run"
    ).fit()
    with pytest.raises(nntune.RunFolderError, match="Net"):
        nntune.load_run("run")
