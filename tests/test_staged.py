"""Staged training (``stages:``): stages continue from each other's weights in one run folder,
an autoencoder stage pretrains a classifier's body, an interrupted staged run resumes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import nntune
from nntune.errors import ConfigError
from nntune.evaluate import evaluate_run
from nntune.train import Trainer
from nntune.train.callbacks import Callback

WINE = {
    "name": "staged",
    "seed": 0,
    "data": {"dataset": "wine"},
    "model": {"arch": "mlp", "hidden": [16, 16]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 4, "batch_size": 16, "threads": 1},
    "stages": [
        {"train.epochs": 3, "train.freeze": ["1"], "optimizer.lr": 0.02},  # the head first
        {"train.epochs": 4},  # then everything
    ],
}


def test_stages_continue_in_one_run_folder(tmp_path: Path) -> None:
    result = nntune.train(WINE, out=tmp_path / "run", progress=False)
    folder = tmp_path / "run"
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 8))
    assert [r["stage"] for r in rows] == [1, 1, 1, 2, 2, 2, 2]
    assert [r["stage_epoch"] for r in rows] == [1, 2, 3, 1, 2, 3, 4]
    assert [r["lr"] for r in rows][:3] == [0.02] * 3 and rows[3]["lr"] == 0.01
    summary = json.loads((folder / "summary.json").read_text())
    assert summary == result.summary
    assert [s["epochs_run"] for s in summary["stages"]] == [3, 4] and summary["epochs_run"] == 7
    second = summary["stages"][1]["init_from"]
    assert second["source"] == "the previous stage" and second["loaded"] == 6
    # stage 2 starts where stage 1 ended, not from scratch
    stage1 = [r for r in rows if r["stage"] == 1]
    assert rows[3]["val_loss"] < stage1[0]["val_loss"]
    # the top of the folder is a run folder: evaluate reads the last stage's model
    assert (
        evaluate_run(folder, "test", "last", cost=False)["metrics"]["accuracy"]
        == (summary["test"]["accuracy"])
    )
    assert (folder / "stages" / "1" / "summary.json").exists()
    assert "stages:" in (folder / "config.yaml").read_text()


def test_an_autoencoder_stage_pretrains_the_classifiers_body(tmp_path: Path) -> None:
    config = copy.deepcopy(WINE)
    config["stages"] = [
        {"model.arch": "autoencoder", "train.epochs": 3},
        {"model.arch": "mlp", "train.epochs": 2},
    ]
    result = nntune.train(config, write=False, progress=False)
    report = result.summary["stages"][1]["init_from"]
    assert report["loaded"] == 4  # the encoder's two hidden layers, weight and bias
    assert {s["tensor"] for s in report["skipped"]} == {"2.weight", "2.bias"}  # code ≠ head


class InterruptAt(Callback):
    key = "interrupt"

    def __init__(self, stage_name: str, epoch: int) -> None:
        self.stage_name, self.epoch, self.armed = stage_name, epoch, True
        self.seen: list[str] = []

    def on_epoch_end(self, state, record):  # type: ignore[no-untyped-def]
        if self.armed and state.epoch == self.epoch and state.epochs == 4:
            self.armed = False
            raise KeyboardInterrupt


def test_an_interrupted_staged_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    whole = nntune.train(WINE, out=tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        Trainer(WINE, out=tmp_path / "cut", callbacks=[InterruptAt("stage2", 2)]).fit()
    assert (tmp_path / "cut" / "stages" / "1" / "summary.json").exists()
    assert not (tmp_path / "cut" / "summary.json").exists()
    resumed = Trainer(resume=tmp_path / "cut").fit()
    assert resumed.summary["test"] == whole.summary["test"]
    rows = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 7


def test_bad_stages_name_the_stage(tmp_path: Path) -> None:
    config = copy.deepcopy(WINE)
    config["stages"] = [{"train.epochs": 2}, {"optimizer.name": "adamm"}]
    with pytest.raises(ConfigError, match=r"stages\[1\]"):
        nntune.train(config, write=False, progress=False)
    config["stages"] = [{}]
    with pytest.raises(ConfigError, match=r"stages\[0\]: a stage is a mapping"):
        nntune.train(config, write=False, progress=False)
