"""``nntune ensemble``: real runs on one split, averaged, scored against each member."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

import nntune
from nntune.errors import ConfigError, DataError
from nntune.evaluate import evaluate_run
from nntune.strategies import ensemble_runs
from tests.helpers import nntune_in_process

WINE = {
    "name": "wine",
    "data": {"dataset": "wine", "preprocess": ["standardize"], "split_seed": 7},
    "model": {"arch": "mlp", "hidden": [16]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"epochs": 8, "batch_size": 16, "threads": 1},
}


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("members")
    folders = []
    for seed in (0, 1, 2):
        folder = root / f"seed{seed}"
        nntune.train({**copy.deepcopy(WINE), "seed": seed}, out=folder, progress=False)
        folders.append(folder)
    return folders


def test_the_ensemble_averages_the_members_probabilities(members: list[Path]) -> None:
    result = ensemble_runs(members)
    assert result["metric"] == "accuracy" and len(result["members"]) == 3
    accuracies = [m["metrics"]["accuracy"] for m in result["members"]]
    assert result["mean_member"] == pytest.approx(np.mean(accuracies))
    # recompute the ensemble by hand from each member's predicted probabilities
    from sklearn.datasets import load_wine

    probabilities = []
    for folder in members:
        predictor = nntune.load_run(folder)
        probabilities.append(np.array(predictor.predict(load_wine().data)["probabilities"]))
    assert np.allclose(np.mean(probabilities, axis=0).sum(axis=1), 1.0)
    assert result["gain_over_mean_member"] == pytest.approx(
        result["ensemble"]["metrics"]["accuracy"] - result["mean_member"]
    )
    assert 0.0 <= result["ensemble"]["metrics"]["accuracy"] <= 1.0


def test_split_seed_fixes_the_split_while_the_seed_changes_the_model(
    members: list[Path],
) -> None:
    from nntune.evaluate.evaluation import open_run, split_part

    parts = [split_part(open_run(m), "test") for m in members]
    assert all(np.array_equal(parts[0][1], y) for _, y in parts[1:])  # the same test samples
    weights = [nntune.load_run(m).model.state_dict() for m in members]
    first = next(iter(weights[0]))
    assert not np.allclose(weights[0][first], weights[1][first])  # different initializations


def test_members_of_different_splits_are_refused(members: list[Path], tmp_path: Path) -> None:
    other = copy.deepcopy(WINE)
    other["data"]["split_seed"] = 8
    nntune.train(other, out=tmp_path / "other", progress=False)
    with pytest.raises(DataError, match="split seed differ"):
        ensemble_runs([members[0], tmp_path / "other"])
    with pytest.raises(ConfigError, match="2 or more run folders"):
        ensemble_runs(members[:1])
    with pytest.raises(ConfigError, match="given twice"):
        ensemble_runs([members[0], members[0]])


def test_ensemble_cli(
    members: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = nntune_in_process(capsys, "ensemble", *map(str, members), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ensemble"]["method"] == "mean of probabilities"
    table = nntune_in_process(capsys, "ensemble", *map(str, members), cwd=tmp_path)
    assert "mean of the members" in table.stdout and "ensemble vs mean member" in table.stdout
    missing = nntune_in_process(capsys, "ensemble", str(members[0]), "nope", cwd=tmp_path)
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_cycle_ends_are_the_low_points_of_restarting_schedules() -> None:
    from nntune.optim import Horizon, build_schedule
    from nntune.optim.schedules import SCHEDULES
    from nntune.train.callbacks.snapshots import cycle_end_epochs

    horizon = Horizon(total_steps=60, steps_per_epoch=10)

    def ends(name: str, **options: object) -> list[int]:
        entry = SCHEDULES.get(name)
        schedule = build_schedule(entry.name, entry.parse_options(dict(options), "s"), horizon)
        return cycle_end_epochs(schedule, horizon, 6)

    assert ends("cosine_restarts", period=2) == [2, 4, 6]
    # a warmup epoch shifts the cycles by one epoch, and its rising lr is no restart
    assert ends("cosine_restarts", period=2, warmup=10) == [3, 5, 6]
    assert ends("cyclic", half_period=1) == [2, 4, 6]
    assert ends("cosine") == [6]  # no restart: the last epoch only


def test_a_snapshot_ensemble_of_one_run(tmp_path: Path) -> None:
    config = copy.deepcopy(WINE)
    config.update(seed=0, schedule={"name": "cosine_restarts", "period": 2})
    config["train"].update(epochs=6, snapshots=True)
    nntune.train(config, out=tmp_path / "run", progress=False)
    files = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("snapshot-*.pt"))
    assert files == ["snapshot-2.pt", "snapshot-4.pt", "snapshot-6.pt"]
    result = ensemble_runs([tmp_path / "run"])
    assert [m["checkpoint"] for m in result["members"]] == [
        "snapshot-2",
        "snapshot-4",
        "snapshot-6",
    ]
    # the last snapshot is the run's final model
    last = evaluate_run(tmp_path / "run", "test", "last", cost=False)["metrics"]["accuracy"]
    assert result["members"][-1]["metrics"]["accuracy"] == last
    # a snapshot is a checkpoint evaluate reads, as README says
    snapshot = evaluate_run(tmp_path / "run", "test", "snapshot-4", cost=False)
    assert snapshot["checkpoint"] == "snapshot-4"
    assert snapshot["metrics"]["accuracy"] == result["members"][1]["metrics"]["accuracy"]
