"""``nntune ablate``: tricks found in the config, explicit rows, one full training per seed, the
JSON contract and bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from nntune.config import load_config
from nntune.errors import ConfigError
from nntune.evaluate.ablate import ablate, find_tricks, parse_tricks, split_tricks
from tests.helpers import nntune_in_process, write_config

RECIPE: dict = {
    "seed": 0,
    "data": {"dataset": "moons", "n_samples": 200},
    "model": {"arch": "mlp", "hidden": [8], "dropout": 0.2},
    "loss": {"name": "cross_entropy", "label_smoothing": 0.1},
    "optimizer": {"name": "adam", "lr": 0.01},
    "schedule": "cosine",
    "train": {"epochs": 3, "batch_size": 32, "threads": 1},
}


def test_tricks_are_found_in_the_config() -> None:
    rows = find_tricks(load_config(RECIPE))
    assert [change for _, change in rows] == [
        {"schedule": "constant"},
        {"loss.label_smoothing": 0.0},
        {"model.dropout": 0.0},
    ]
    many = copy.deepcopy(RECIPE)
    many["schedule"] = {"name": "constant", "warmup": 5}
    many["optimizer"] = "adamw"  # weight decay 0.01 by default
    many["model"]["norm"] = "batch"
    many["data"]["augment"] = [{"name": "noise", "std": 0.1}, {"name": "mixup", "alpha": 0.2}]
    many["train"]["grad_clip"] = {"norm": 1.0}
    many["train"]["ema"] = {"decay": 0.9}
    many["train"]["early_stopping"] = {"patience": 2}
    many["regularization"] = {"l2": 1e-4}
    changes = [change for _, change in find_tricks(load_config(many))]
    assert {"schedule": "constant"} not in changes
    for expected in (
        {"schedule.warmup": 0},
        {"optimizer.weight_decay": 0.0},
        {"model.norm": "none"},
        {"regularization.l2": 0.0},
        {"data.augment": [{"name": "mixup", "alpha": 0.2}]},
        {"data.augment": [{"name": "noise", "std": 0.1}]},
        {"train.grad_clip": None},
        {"train.ema": None},
        {"train.early_stopping": None},
    ):
        assert expected in changes
    plain = {k: v for k, v in RECIPE.items() if k not in ("loss", "schedule")}
    plain["model"] = {"arch": "mlp", "hidden": [8]}
    assert find_tricks(load_config(plain)) == []


def test_tricks_text_splits_outside_brackets_only() -> None:
    assert split_tricks("a=1, b=[1, 2],c={x: 1, y: 'p,q'}") == [
        "a=1",
        "b=[1, 2]",
        "c={x: 1, y: 'p,q'}",
    ]
    rows = parse_tricks(["model.hidden=[4, 4],model.dropout=0", "data.augment=[]"])
    assert [c for _, c in rows] == [
        {"model.hidden": [4, 4]},
        {"model.dropout": 0},
        {"data.augment": []},
    ]
    with pytest.raises(ConfigError, match="unbalanced"):
        split_tricks("a=[1, 2")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_tricks(["model.dropout"])


def test_ablation_rows_share_one_full_training_per_seed(in_tmp: Path) -> None:
    lines: list[str] = []
    result = ablate(RECIPE, seeds=2, progress=lines.append)
    assert result["metric"] == "test_accuracy" and result["seeds"] == 2
    assert [r["change"] for r in result["rows"]] == [
        {"schedule": "constant"},
        {"loss.label_smoothing": 0.0},
        {"model.dropout": 0.0},
    ]
    # the full recipe is trained once per seed: 2 + 3 rows × 2 trainings, one line each
    assert len(lines) == 2 + 3 * 2
    assert sum("full recipe" in line for line in lines) == 2
    full = result["full"]
    assert len(full["values"]) == 2
    for row in result["rows"]:
        assert len(row["values"]) == 2
        assert row["delta"] == pytest.approx(row["mean"] - full["mean"])
        assert row["verdict"] in ("trick helps", "trick hurts", "no evidence")
    json.dumps(result)  # plain JSON
    assert not list(in_tmp.iterdir())  # no run folders


def test_explicit_tricks_replace_the_found_ones(in_tmp: Path, capsys: Any) -> None:
    path = write_config(in_tmp / "recipe.yaml", RECIPE)
    done = nntune_in_process(
        capsys,
        "ablate", "recipe.yaml", "--seeds", "2", "--tricks", "model.hidden=[4, 4]",
        "--trick", "model.dropout=0", "--set", "train.epochs=1", "--json",
        cwd=path.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [r["change"] for r in result["rows"]] == [{"model.hidden": [4, 4]}, {"model.dropout": 0}]
    assert [r["trick"] for r in result["rows"]] == ["model.hidden=[4, 4]", "model.dropout=0"]
    assert set(result) >= {"metric", "seeds", "full", "rows"}
    assert set(result["full"]) >= {"mean", "std", "values"}
    assert set(result["rows"][0]) >= {
        "trick", "change", "mean", "std", "values", "delta", "p_value", "verdict"
    }  # fmt: skip
    assert done.stderr.count("ablate: [") == 2 * 3


def test_text_output_and_no_tricks(in_tmp: Path, capsys: Any) -> None:
    recipe = copy.deepcopy(RECIPE)
    recipe["train"]["epochs"] = 1
    del recipe["loss"], recipe["schedule"]
    write_config(in_tmp / "recipe.yaml", recipe)
    done = nntune_in_process(capsys, "ablate", "recipe.yaml", "--seeds", "2", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    assert "no dropout" in done.stdout and "verdict" in done.stdout
    recipe["model"]["dropout"] = 0.0
    write_config(in_tmp / "plain.yaml", recipe)
    done = nntune_in_process(capsys, "ablate", "plain.yaml", "--json", cwd=in_tmp)
    assert done.returncode == 0
    result = json.loads(done.stdout)
    assert result["rows"] == [] and "no trick" in result["message"]
    assert done.stderr == ""


def test_bad_input_exits_2_naming_the_problem(in_tmp: Path, capsys: Any) -> None:
    write_config(in_tmp / "recipe.yaml", RECIPE)
    args = ("ablate", "recipe.yaml", "--seeds", "2")
    done = nntune_in_process(capsys, *args, "--tricks", "model.dropoot=0", cwd=in_tmp)
    assert done.returncode == 2 and "dropoot" in done.stderr and "Traceback" not in done.stderr
    assert "ablate: [" not in done.stderr  # checked before anything trained
    done = nntune_in_process(capsys, *args, "--tricks", "loss.smoothing=0", cwd=in_tmp)
    assert done.returncode == 2 and "smoothing" in done.stderr
    done = nntune_in_process(capsys, "ablate", "recipe.yaml", "--seeds", "1", cwd=in_tmp)
    assert done.returncode == 2 and "2 seeds" in done.stderr
    done = nntune_in_process(capsys, *args, "--metric", "test_rmse", "--quiet", cwd=in_tmp)
    assert done.returncode == 2 and "test_rmse" in done.stderr
