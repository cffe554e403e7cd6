"""The recipes in examples/: every one trains for real (a few epochs, a few samples) through the
command line, so an example can never rot. Globbed: a new example is tested the day it is added.

examples/doctor/ is not here: tests/test_doctor.py runs the doctor on every config in it.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from tests.helpers import nntune_in_process

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RECIPES = sorted(EXAMPLES.glob("*.yaml"))
TUNED = [p for p in RECIPES if "search" in yaml.safe_load(p.read_text())]


# recipes whose data a script writes (too large for the repository): how the test makes a small
# version of it, as (the command's arguments after the script, data the script needs)
FASHION = Path("/usr/share/datasets/fashion-mnist")
WRITTEN = {"fashion_mnist.yaml": (["--only", "folder", "--limit", "400"], FASHION)}


def prepared(recipe: Path, tmp: Path) -> list[str]:
    """--set flags pointing a recipe whose data a script writes at a small copy of it."""
    if recipe.name not in WRITTEN:
        return []
    arguments, needed = WRITTEN[recipe.name]
    if not needed.exists():
        pytest.skip(f"{needed} is missing (Debian's dataset-fashion-mnist; .ci/run installs it)")
    folder = tmp / "data"
    script = ROOT / "bench" / "images.py"
    done = subprocess.run(
        [sys.executable, str(script), *arguments, "--folder", str(folder)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return ["--set", f"data.dataset={folder}/"]


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def small(recipe: Path) -> list[str]:
    """--set flags that make a recipe quick: 2 epochs (1 per stage), at most 500 training
    samples, one torch thread."""
    config = yaml.safe_load(recipe.read_text())
    sets = ["train.epochs=2", "data.limit=500", "train.threads=1"]
    if config.get("stages"):
        stages = [{**stage, "train.epochs": 1} for stage in config["stages"]]
        sets.append(f"stages={json.dumps(stages)}")
    return [arg for value in sets for arg in ("--set", value)]


def run(capsys: pytest.CaptureFixture[str], *args: str, cwd: Path) -> dict[str, Any]:
    """An nntune command with --json in this process: exit 0, its JSON document."""
    done = nntune_in_process(capsys, *args, "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def assert_finite(metrics: dict[str, Any], what: str) -> None:
    assert metrics, f"{what}: no metrics"
    for name, value in metrics.items():
        assert isinstance(value, (int, float)) and math.isfinite(value), f"{what}: {name}={value}"


def assert_resolved(folder: Path, recipe: Path) -> dict[str, Any]:
    """config.yaml holds every default and the decisions made for the data."""
    config: dict[str, Any] = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["data"]["task"] in ("classification", "regression")
    assert config["loss"] != "auto" and config["train"]["metrics"]
    assert isinstance(config["optimizer"], dict) and "lr" in config["optimizer"]
    assert all(isinstance(step, dict) for step in config["data"]["preprocess"])
    dataset = config["data"]["dataset"]
    if (recipe.parent / dataset).exists():  # a file: resolved against the config's folder
        assert Path(dataset).is_absolute() and Path(dataset).exists()
    return config


@pytest.mark.parametrize("recipe", RECIPES, ids=ids(RECIPES))
def test_every_example_trains(
    recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    data = prepared(recipe, tmp_path)
    args = ("train", str(recipe), *small(recipe), *data, "--out", str(out), "--no-report")
    printed = run(capsys, *args, cwd=tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == printed  # --json prints summary.json
    assert summary["status"] == "completed"
    assert_finite(summary["test"], f"{recipe.name} test")
    assert_finite(summary["val"], f"{recipe.name} val")
    stages = yaml.safe_load(recipe.read_text()).get("stages")
    if stages:  # each stage is a run folder of its own, with its own resolved config
        assert [s["status"] for s in summary["stages"]] == ["completed"] * len(stages)
        for i in range(1, len(stages) + 1):
            config = assert_resolved(out / "stages" / str(i), recipe)
            assert config["train"]["epochs"] == 1
    else:
        config = assert_resolved(out, recipe)
        assert config["train"]["epochs"] == 2 and summary["epochs_run"] <= 2


@pytest.mark.parametrize("recipe", TUNED, ids=ids(TUNED))
def test_every_search_block_tunes(
    recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    args = ("tune", str(recipe), "--trials", "2", "--retrain-best", "1", *small(recipe))
    printed = run(capsys, *args, "--out", str(out), "--quiet", cwd=tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == printed
    assert summary["n_failed"] == 0, summary.get("failures")
    assert summary["n_complete"] + summary["n_pruned"] == 2 and summary["n_complete"] >= 1
    assert math.isfinite(summary["best_value"])
    assert Path(summary["best_config"]).exists()
    search = yaml.safe_load(recipe.read_text())["search"]
    assert set(summary["best_params"]) <= set(search.get("space") or summary["best_params"])
    if search.get("folds"):  # best.yaml is the refit on the whole training part
        assert 1 <= summary["refit"]["epochs"] <= 2 and summary["refit"]["val_split"] == 0.0
    assert_finite({k: v["mean"] for k, v in summary["retrain"].items()}, "retrain")


def weights(folder: Path, checkpoint: str) -> dict[str, torch.Tensor]:
    from nntune.train.callbacks.checkpoints import model_weights
    from nntune.train.checkpoint import load_checkpoint

    return dict(model_weights(load_checkpoint(folder / "checkpoints" / f"{checkpoint}.pt")))


def test_finetune_starts_from_the_mnist1d_recipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The two commands of finetune.yaml's header, small: the source, then --init-from it."""
    source = tmp_path / "mnist1d"
    mnist1d = EXAMPLES / "mnist1d.yaml"
    run(capsys, "train", str(mnist1d), *small(mnist1d), "--out", str(source), "--no-report",
        cwd=tmp_path)  # fmt: skip
    recipe = EXAMPLES / "finetune.yaml"
    out = tmp_path / "finetuned"
    summary = run(
        capsys, "train", str(recipe), *small(recipe), "--set", 'train.freeze=["blocks.0.*"]',
        "--init-from", str(source), "--out", str(out), "--no-report", cwd=tmp_path,
    )  # fmt: skip
    report = summary["init_from"]
    assert report["checkpoint"] == "best.pt"  # a run folder gives its best weights
    before, after = weights(source, "best"), weights(out, "last")
    # every tensor came from the source: same architecture, same 10 classes
    assert report["loaded"] == len(after) and report["skipped"] == [] and report["new"] == []
    assert report["loaded_parameters"] == summary["parameters"]
    # the module names the recipe's comments give: blocks.0 the stem, head the head
    stem = "blocks.0.body.0.weight"
    assert torch.equal(after[stem], before[stem])  # frozen: exactly the source's
    assert not torch.equal(after["head.weight"], before["head.weight"])  # trained on from there
    assert f"init_from: {source}" in (out / "config.yaml").read_text()


def test_the_shifted_mnist1d_file_is_what_its_script_writes(tmp_path: Path) -> None:
    script = EXAMPLES / "data" / "make_mnist1d_shifted.py"
    fresh = tmp_path / "shifted.npz"
    done = subprocess.run([sys.executable, str(script), str(fresh)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with np.load(fresh) as made, np.load(EXAMPLES / "data" / "mnist1d_shifted.npz") as kept:
        assert sorted(made.files) == sorted(kept.files) == ["x", "x_test", "y", "y_test"]
        for key in kept.files:
            np.testing.assert_array_equal(made[key], kept[key])


@pytest.mark.parametrize("recipe", RECIPES, ids=ids(RECIPES))
def test_every_example_says_what_it_is_and_names_files_that_exist(recipe: Path) -> None:
    text = recipe.read_text()
    assert text.startswith("# "), f"{recipe.name}: begin with a comment saying what it shows"
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for name in re.findall(r"\bexamples/[\w./-]+\.(?:yaml|py|csv|npz)\b", header):
        assert (ROOT / name).exists(), f"{recipe.name} mentions {name}, which does not exist"
    dataset = yaml.safe_load(text)["data"]["dataset"]
    if ("/" in dataset or "." in dataset) and recipe.name not in WRITTEN:
        assert (recipe.parent / dataset).exists(), f"{recipe.name}: {dataset} not found"
