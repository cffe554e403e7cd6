"""``nntune tune --storage postgresql://... --workers 2`` against a real PostgreSQL server.

The server is a private throwaway one (tests/pg.py); the test skips only when no PostgreSQL
server binaries are installed (CI installs them: .ci/run).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nntune.search.study import make_storage
from tests import pg
from tests.conftest import TINY
from tests.helpers import nntune, write_config

postgres_url = pg.postgres_url  # the session fixture, for this module

SPACE = {
    "optimizer.lr": {"loguniform": [1.0e-3, 1.0e-1]},
    "optimizer.name": {"choice": ["adam", "sgd"]},
}


def _tune(cfg: Path, url: str, out: Path, trials: int) -> dict:
    done = nntune(
        "tune", str(cfg), "--trials", str(trials), "--workers", "2", "--storage", url,
        "--study", "pgstudy", "--json", "--out", str(out), cwd=cfg.parent, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


@pytest.mark.slow
def test_tune_two_workers_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    import optuna

    cfg = write_config(tmp_path / "cfg.yaml", {**TINY, "search": {"space": SPACE}})
    out = tmp_path / "study"

    summary = _tune(cfg, postgres_url, out, trials=6)
    assert summary["n_complete"] + summary["n_pruned"] == 6, summary
    assert summary["n_failed"] == 0, summary
    assert summary["n_trials"] == 6, summary

    study = optuna.load_study(study_name="pgstudy", storage=make_storage(postgres_url))
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(6))
    pids = {t.user_attrs["pid"] for t in trials}
    assert len(pids) == 2, f"trials ran in processes {pids}: both workers should have run some"
    assert all(t.state.is_finished() for t in trials)

    # the same command with a larger --trials continues the study in the database
    summary = _tune(cfg, postgres_url, out, trials=8)
    assert summary["n_failed"] == 0, summary
    assert summary["n_complete"] + summary["n_pruned"] == 8, summary
    study = optuna.load_study(study_name="pgstudy", storage=make_storage(postgres_url))
    numbers = sorted(t.number for t in study.get_trials(deepcopy=False))
    assert numbers == list(range(8))
    assert len(optuna.get_all_study_names(storage=make_storage(postgres_url))) == 1
