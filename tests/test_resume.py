"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends like an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import nntune, write_config

# every source of randomness on: dropout, noise and mixup augmentation, shuffling, a schedule
# with warmup and early-stopping state; epochs long enough to be killed in the middle of one
CONFIG = {
    "seed": 3,
    "data": {
        "dataset": "spirals",
        "n_samples": 5000,
        "augment": [{"name": "noise", "std": 0.05}, {"name": "mixup", "alpha": 0.2}],
    },
    "model": {"arch": "mlp", "hidden": [64, 64], "dropout": 0.1, "norm": "batch"},
    "optimizer": {"name": "adamw", "lr": 0.003},
    "schedule": {"name": "cosine", "warmup": 0.1},
    "train": {
        "epochs": 6,
        "batch_size": 16,
        "threads": 1,
        "early_stopping": {"patience": 50},
        "checkpoint_every": 0,  # a checkpoint at every epoch, so that the kill lands after one
    },
}


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("seconds")
    return rows


def _lines(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", CONFIG)
    full = nntune("train", str(cfg), "--out", "full", "--json", cwd=tmp_path)
    assert full.returncode == 0, full.stderr

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nntune", "train", str(cfg), "--out", "part", "--quiet"],
        cwd=tmp_path,
        env=env,
    )
    part = tmp_path / "part"
    deadline = time.monotonic() + 120
    while _lines(part) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.05)  # into the next epoch
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _lines(part)
    assert 2 <= killed_at < 6
    assert not (part / "summary.json").exists()

    resumed = nntune("train", str(cfg), "--resume", "part", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert _rows(part) == _rows(tmp_path / "full")
    a, b = json.loads(full.stdout), json.loads(resumed.stdout)
    assert a["test"] == b["test"] and a["val"] == b["val"]
    assert a["steps"] == b["steps"] and a["best_epoch"] == b["best_epoch"]
    wa = torch.load(tmp_path / "full/checkpoints/best.pt", weights_only=True)["model"]
    wb = torch.load(part / "checkpoints/best.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_a_finished_run_with_more_epochs_continues_it(tmp_path: Path) -> None:
    config = {**CONFIG, "data": {"dataset": "moons", "n_samples": 300}}
    config["train"] = {"epochs": 2, "batch_size": 32, "threads": 1}
    cfg = write_config(tmp_path / "cfg.yaml", config)
    assert nntune("train", str(cfg), "--out", "run", "--quiet", cwd=tmp_path).returncode == 0
    more = nntune(
        "train", str(cfg), "--resume", "run", "--set", "train.epochs=4", "--json", cwd=tmp_path
    )
    assert more.returncode == 0, more.stderr
    assert json.loads(more.stdout)["epochs_run"] == 4
    assert [r["epoch"] for r in _rows(tmp_path / "run")] == [1, 2, 3, 4]


def test_resume_refuses_a_different_config(tmp_path: Path) -> None:
    config = {"data": {"dataset": "moons", "n_samples": 300}, "train": {"epochs": 1}}
    cfg = write_config(tmp_path / "cfg.yaml", config)
    assert nntune("train", str(cfg), "--out", "run", "--quiet", cwd=tmp_path).returncode == 0
    before = (tmp_path / "run/metrics.jsonl").read_text()
    other = nntune("train", str(cfg), "--resume", "run", "--set", "optimizer.lr=0.1", cwd=tmp_path)
    assert other.returncode == 2
    assert "optimizer.lr" in other.stderr and "Traceback" not in other.stderr
    assert (tmp_path / "run/metrics.jsonl").read_text() == before


@pytest.mark.parametrize("damage", ["missing", "truncated", "pickled_code"])
def test_resume_from_a_bad_checkpoint_is_refused(tmp_path: Path, damage: str) -> None:
    config = {"data": {"dataset": "moons", "n_samples": 300}, "train": {"epochs": 1}}
    cfg = write_config(tmp_path / "cfg.yaml", config)
    assert nntune("train", str(cfg), "--out", "run", "--quiet", cwd=tmp_path).returncode == 0
    last = tmp_path / "run/checkpoints/last.pt"
    marker = tmp_path / "pwned"
    if damage == "missing":
        last.unlink()
    elif damage == "truncated":
        last.write_bytes(last.read_bytes()[:100])
    else:
        # a checkpoint whose unpickling would run code: it must be refused, not run
        torch.save({"format": "nntune-checkpoint", "evil": _Evil(marker)}, last)
    result = nntune("train", str(cfg), "--resume", "run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "last.pt" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))
