"""Data-parallel training: real torchrun jobs of 2 processes on this machine (gloo, loopback)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import nntune, write_config

# BatchNorm synced across the ranks and no per-rank randomness: two processes of batch 32 take
# exactly the steps of one process of batch 64 (up to the order of float sums)
SYNCED = {
    "seed": 1,
    "data": {"dataset": "digits"},
    "model": {"arch": "mlp", "hidden": [64], "norm": "batch"},
    "optimizer": {"name": "sgd", "lr": 0.05},
    "train": {"epochs": 3, "batch_size": 32, "threads": 1, "sync_bn": True},
}


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _lines(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_two_processes_train_like_one_with_the_global_batch(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", SYNCED)
    two = nntune("train", str(cfg), "--nproc", "2", "--out", "two", "--json", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    one = nntune(
        "train", str(cfg), "--set", "train.batch_size=64", "--out", "one", "--json", cwd=tmp_path
    )
    assert one.returncode == 0, one.stderr
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # stdout: rank 0's summary only
    assert b["world_size"] == 2 and b["global_batch_size"] == 64 == a["global_batch_size"]
    assert a["steps"] == b["steps"] == 3 * 18  # 1150 training samples, 18 global batches
    for ra, rb in zip(_rows(tmp_path / "one"), _rows(tmp_path / "two"), strict=True):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-3)
        assert rb["val_loss"] == pytest.approx(ra["val_loss"], rel=1e-3)
        assert rb["train_accuracy"] == pytest.approx(ra["train_accuracy"], abs=0.01)
    assert b["test"]["loss"] == pytest.approx(a["test"]["loss"], rel=1e-3)
    # one run folder, written by rank 0 alone, and nothing else in the working folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml", "one", "two"]
    assert (tmp_path / "two/report.html").exists()
    # plain BatchNorm names: the run's model loads in one process (evaluate, serve, export)
    evaluated = nntune("evaluate", "two", "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["metrics"]["accuracy"] == b["test"]["accuracy"]


def test_without_sync_bn_each_rank_normalizes_its_own_part(tmp_path: Path) -> None:
    config = {**SYNCED, "train": {**SYNCED["train"], "sync_bn": False, "epochs": 1}}
    cfg = write_config(tmp_path / "cfg.yaml", config)
    two = nntune("train", str(cfg), "--nproc", "2", "--out", "two", "--json", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    one = nntune(
        "train", str(cfg), "--set", "train.batch_size=64", "--out", "one", "--json", cwd=tmp_path
    )
    assert one.returncode == 0, one.stderr
    a, b = _rows(tmp_path / "one")[0], _rows(tmp_path / "two")[0]
    # the same batches, but statistics of 32 samples instead of 64: close, not equal
    assert b["train_loss"] != pytest.approx(a["train_loss"], rel=1e-5)
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.1)


@pytest.mark.slow
def test_a_killed_job_resumes_like_an_uninterrupted_one(tmp_path: Path) -> None:
    # per-rank randomness on (dropout, noise augmentation), early stopping state, a schedule
    config = {
        "seed": 2,
        "data": {"dataset": "spirals", "n_samples": 4000, "augment": [{"name": "noise"}]},
        "model": {"arch": "mlp", "hidden": [64, 64], "dropout": 0.1},
        "optimizer": {"name": "adam", "lr": 0.003},
        "schedule": {"name": "cosine", "warmup": 0.1},
        "train": {
            "epochs": 6,
            "batch_size": 16,
            "threads": 1,
            "checkpoint_every": 0,
            "early_stopping": {"patience": 50},
        },
    }
    cfg = write_config(tmp_path / "cfg.yaml", config)
    full = nntune("train", str(cfg), "--nproc", "2", "--out", "full", "--json", cwd=tmp_path)
    assert full.returncode == 0, full.stderr

    proc = subprocess.Popen(
        [sys.executable, "-m", "nntune", "train", str(cfg), "--nproc", "2", "--out", "part"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the launcher, torchrun and both ranks: one process group
    )
    part = tmp_path / "part"
    try:
        deadline = time.monotonic() + 180
        while _lines(part) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(0.05)
        assert proc.poll() is None, "the job finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert 2 <= _lines(part) < 6 and not (part / "summary.json").exists()

    one = nntune("train", str(cfg), "--resume", "part", cwd=tmp_path)
    assert one.returncode == 2 and "--nproc 2" in one.stderr, one.stderr
    resumed = nntune("train", str(cfg), "--nproc", "2", "--resume", "part", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert _timeless(_rows(part)) == _timeless(_rows(tmp_path / "full"))
    a, b = json.loads(full.stdout), json.loads(resumed.stdout)
    assert a["test"] == b["test"] and a["steps"] == b["steps"]


def _timeless(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_an_early_stop_is_taken_by_every_rank(tmp_path: Path) -> None:
    # min_delta no improvement can meet: rank 0's decision after 2 epochs ends the whole job
    # (a rank that went on alone would wait forever in the next all-reduce)
    config = {
        **SYNCED,
        "train": {
            **SYNCED["train"],
            "epochs": 20,
            "early_stopping": {"monitor": "val_loss", "patience": 1, "min_delta": 10.0},
        },
    }
    cfg = write_config(tmp_path / "cfg.yaml", config)
    run = nntune("train", str(cfg), "--nproc", "2", "--json", cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["epochs_run"] == 2 and summary["status"] == "stopped"


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("optimizer=lbfgs", "lbfgs"),
        ("train.random_batch_size=[8,16]", "train.random_batch_size"),
        ("train.device=cuda:1", "cuda"),
    ],
)
def test_what_cannot_run_data_parallel_is_refused_before_starting(
    tmp_path: Path, setting: str, named: str
) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", SYNCED)
    result = nntune("train", str(cfg), "--nproc", "2", "--set", setting, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_sync_bn_needs_batchnorm(tmp_path: Path) -> None:
    config = {**SYNCED, "model": {"arch": "mlp", "hidden": [16]}, "train": {"epochs": 1}}
    cfg = write_config(tmp_path / "cfg.yaml", config)
    result = nntune("train", str(cfg), "--set", "train.sync_bn=true", cwd=tmp_path)
    assert result.returncode == 2
    assert "train.sync_bn" in result.stderr and "model.norm: batch" in result.stderr
