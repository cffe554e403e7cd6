"""The LR range test: ``nntune.doctor.lr_find`` and ``nntune lr-find``."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nntune.doctor.lr_find import (
    LRFindResult,
    centered_average,
    lr_find,
    lr_schedule,
    smooth,
    suggest_lr,
    text_plot,
)
from nntune.errors import ConfigError
from tests.conftest import TINY
from tests.helpers import nntune_in_process, write_config

ROOT = Path(__file__).resolve().parents[1]
MNIST1D = ROOT / "examples" / "mnist1d.yaml"
# the example's resnet, made cheap: two narrow stages on 2,000 signals
MNIST1D_SMALL = ["model.hidden=[16,32]", "data.limit=2000", "train.threads=1"]
DIGITS: dict = {
    "data": {"dataset": "digits"},
    "model": {"arch": "mlp", "hidden": [32]},
    "optimizer": "adam",
    "train": {"batch_size": 32, "threads": 1},
}
# plain SGD on a tiny model: the loss explodes well before lr 100
EXPLODES = {**TINY, "optimizer": {"name": "sgd", "lr": 0.01}}


@pytest.fixture(scope="module")
def exploding() -> LRFindResult:
    return lr_find(copy.deepcopy(EXPLODES), max_lr=100.0)


# --- the pure parts -------------------------------------------------------------------------------


def test_lr_schedule_is_geometric_from_min_to_max() -> None:
    lrs = lr_schedule(1e-7, 10.0, 100)
    assert len(lrs) == 100
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == 10.0
    ratios = np.array(lrs[1:]) / np.array(lrs[:-1])
    assert np.allclose(ratios, (10.0 / 1e-7) ** (1 / 99))


def test_smooth_is_the_bias_corrected_ema() -> None:
    assert smooth([3.0] * 5) == pytest.approx([3.0] * 5)  # no bias towards 0 at the start
    values = [1.0, 2.0, 4.0]
    avg, expected = 0.0, []
    for i, v in enumerate(values):
        avg = 0.98 * avg + 0.02 * v
        expected.append(avg / (1 - 0.98 ** (i + 1)))
    assert smooth(values) == pytest.approx(expected)


def test_centered_average_has_no_lag() -> None:
    line = np.arange(20.0)
    assert centered_average(line, 3)[3:-3] == pytest.approx(line[3:-3])


def test_suggestion_on_a_synthetic_curve_is_the_steepest_descent() -> None:
    lrs = lr_schedule(1e-6, 1.0, 100)
    x = np.log10(lrs)
    # falls fastest at lr 1e-3, explodes after 1e-1; batch noise on top
    clean = 1.0 + 1.0 / (1.0 + np.exp(3.0 * (x + 3.0))) + np.where(x > -1, 10 * (x + 1) ** 2, 0)
    noisy = clean + np.random.default_rng(0).normal(0, 0.05, size=100)
    found = suggest_lr(lrs, noisy.tolist())
    assert found.method == "steepest"
    assert 10**-3.5 < found.lr < 10**-2.5
    assert found.lr < found.min_loss_lr


def test_suggestion_falls_back_when_the_curve_is_too_short_or_flat() -> None:
    lrs = lr_schedule(1e-4, 1.0, 12)
    rising = [1.0 + 0.1 * i for i in range(12)]
    short = suggest_lr(lrs, rising)
    assert short.method == "min/10" and short.lr == lrs[0]
    assert any("smallest lr" in note for note in short.notes)
    lrs = lr_schedule(1e-4, 1.0, 100)
    flat = [1.0] * 60 + [1.0 + i for i in range(40)]
    found = suggest_lr(lrs, flat)
    assert found.method == "min/10"
    assert found.lr == pytest.approx(max(found.min_loss_lr / 10, lrs[0]))


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"min_lr": 1.0, "max_lr": 0.1}, ["min_lr", "below max_lr"]),
        ({"min_lr": 1e-3, "max_lr": 1e-3}, ["min_lr", "below max_lr"]),
        ({"min_lr": 0.0}, ["min_lr", "positive"]),
        ({"max_lr": math.inf}, ["max_lr", "positive"]),
        ({"steps": 5}, ["steps", "at least 10"]),
    ],
)
def test_bad_ranges_are_config_errors(options: dict, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        lr_find(copy.deepcopy(TINY), **options)
    assert all(word in str(err.value) for word in words)


@pytest.mark.parametrize("optimizer", ["gd", "lbfgs", "newton"])
def test_full_batch_optimizers_are_refused(optimizer: str) -> None:
    with pytest.raises(ConfigError, match="mini-batch") as err:
        lr_find(copy.deepcopy(TINY), [f"optimizer={optimizer}"])
    assert "sgd" in str(err.value) and "adam" in str(err.value)


# --- runs -----------------------------------------------------------------------------------------


def test_curve_is_recorded_at_geometrically_increasing_lrs() -> None:
    result = lr_find(copy.deepcopy(TINY), min_lr=1e-5, max_lr=1e-1, steps=40)
    assert not result.stopped_early and result.steps == 40
    assert len(result.lrs) == len(result.losses) == len(result.raw_losses) == 40
    assert result.lrs == pytest.approx(lr_schedule(1e-5, 1e-1, 40))
    assert all(b > a for a, b in zip(result.lrs, result.lrs[1:], strict=False))
    assert result.losses == pytest.approx(smooth(result.raw_losses))


def test_stops_early_when_the_loss_explodes(exploding: LRFindResult) -> None:
    result = exploding
    assert result.stopped_early and result.stop_reason
    assert result.steps < result.max_steps == 100
    assert all(math.isfinite(v) for v in result.raw_losses + result.losses)
    last = result.losses[-1]
    assert last > 4 * min(result.losses) or "loss became" in result.stop_reason


def test_suggestion_is_below_the_lr_of_minimum_loss_and_in_range(
    exploding: LRFindResult,
) -> None:
    for result in (exploding, lr_find(copy.deepcopy(DIGITS), steps=60)):
        assert result.min_lr <= result.suggestion < result.min_loss_lr <= result.max_lr
        assert result.method == "steepest"
        assert result.min_loss_lr == result.lrs[int(np.argmin(result.average_losses))]


@pytest.mark.parametrize(
    ("source", "overrides"),
    [(MNIST1D, MNIST1D_SMALL), (DIGITS, [])],
    ids=["mnist1d-resnet", "digits-mlp"],
)
def test_suggestion_agrees_within_3x_across_seeds(source: object, overrides: list[str]) -> None:
    suggestions = [
        lr_find(copy.deepcopy(source), overrides, seed=seed).suggestion  # type: ignore[arg-type]
        for seed in (0, 1, 2)
    ]
    assert max(suggestions) / min(suggestions) <= 3.0, suggestions


def test_user_config_and_model_are_untouched(in_tmp: Path) -> None:
    config = copy.deepcopy(TINY)
    config["data"]["dataset"] = "moons"
    before = copy.deepcopy(config)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    weights = copy.deepcopy(model.state_dict())
    result = lr_find(config, model=model, steps=30)
    assert result.steps == 30
    assert config == before
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters()) and model.training
    assert list(in_tmp.iterdir()) == []  # nothing written: no run folder


def test_result_json_and_plot(exploding: LRFindResult) -> None:
    payload = json.loads(json.dumps(exploding.to_json(), allow_nan=False))
    for key in ("lrs", "losses", "raw_losses", "suggestion", "method", "min_loss_lr", "steps"):
        assert key in payload
    assert payload["stopped_early"] is True and payload["steps"] == len(payload["lrs"])
    lines = text_plot(exploding)
    assert len(lines) == 14 and any("*" in line for line in lines)
    assert all("|" in line for line in lines[:12])  # the suggestion's column


# --- the command ----------------------------------------------------------------------------------


def test_cli_json_is_parseable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path / "tiny.yaml", copy.deepcopy(TINY))
    args = ["--json", "--steps", "30", "--max-lr", "0.1"]
    done = nntune_in_process(capsys, "lr-find", str(path), *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["steps"] == 30 and len(payload["losses"]) == 30
    assert payload["max_lr"] == 0.1 and payload["stopped_early"] is False
    assert payload["min_lr"] <= payload["suggestion"] <= payload["max_lr"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]  # no run folder


def test_cli_text_shows_the_plot_and_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path / "tiny.yaml", copy.deepcopy(TINY))
    done = nntune_in_process(
        capsys, "lr-find", str(path), "--set", "model.hidden=[8]", "--steps", "30", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "lr (log scale)" in done.stdout
    assert "suggested" in done.stdout
    assert "--set 'model.hidden=[8]' --set optimizer.lr=" in done.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--min-lr", "1", "--max-lr", "0.1"], ["min_lr", "max_lr"]),
        (["--steps", "3"], ["steps", "10"]),
        (["--set", "optimizer=lbfgs"], ["mini-batch", "sgd"]),
    ],
)
def test_cli_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: list[str]
) -> None:
    path = write_config(tmp_path / "tiny.yaml", copy.deepcopy(TINY))
    done = nntune_in_process(capsys, "lr-find", str(path), *args, cwd=tmp_path)
    assert done.returncode == 2
    assert all(word in done.stderr for word in words), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
