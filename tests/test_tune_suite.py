"""bench/tune_suite.py --quick: the smoke run of the search-quality suite exits 0 and prints
the documented JSON lines with sane values."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = {"task", "method", "seed", "budget", "val_best", "regret", "test_mean", "seconds"}
SUMMARY = {
    "task", "method", "budget", "seeds", "median_regret", "val_best", "test_mean",
    "start_test_mean", "seconds", "test_metric",
}  # fmt: skip


def test_quick_run_prints_the_documented_lines(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "tune_suite.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert all(line["bench"] == "tune_suite" for line in lines)
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "start" and kinds[-1] == "total"
    summaries = [line for line in lines if line["kind"] == "summary"]
    assert {(s["method"], s["budget"]) for s in summaries} == {("nntune", 3), ("random", 3)}
    for line in [*summaries, *(x for x in lines if x["kind"] == "study")]:
        assert (SUMMARY if line["kind"] == "summary" else STUDY) <= set(line)
        regret = line["median_regret" if line["kind"] == "summary" else "regret"]
        assert isinstance(regret, (int, float)) and math.isfinite(regret) and regret >= 0
        assert 0.0 <= line["test_mean"] <= 1.0  # wine: test accuracy
        assert line["seconds"] >= 0
    for line in summaries:
        assert 0.0 <= line["start_test_mean"] <= 1.0 and line["seeds"] == 1
    random = next(s for s in summaries if s["method"] == "random")
    assert random["regret_scale"] != "random" or random["median_regret"] == 1.0

    # the merged table (bench/tune_suite_table.py) of this run rescales to the same regrets
    (tmp_path / "run.jsonl").write_text(done.stdout)
    table = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "tune_suite_table.py"), str(tmp_path / "run.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr[-3000:]
    rows = {(r["method"], r["budget"]): r for r in map(json.loads, table.stdout.splitlines())}
    for summary in summaries:
        row = rows[(summary["method"], summary["budget"])]
        assert row["median_regret"] == pytest.approx(summary["median_regret"], abs=1e-3)
        assert row["test_mean"] == pytest.approx(summary["test_mean"], abs=1e-4)
