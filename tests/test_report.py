"""Reports: written at the end of train/tune/doctor/compare/ablate and by ``nntune report``,
checked for content, and rendered in headless Chromium (no console errors, every plot drawn)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.browser import chromium, load_report, needs_chromium
from tests.conftest import TINY
from tests.helpers import nntune, write_config

IRIS = {
    "name": "iris",
    "seed": 0,
    "data": {"dataset": "iris"},
    "model": {"arch": "mlp", "hidden": [16]},
    "optimizer": {"name": "adam", "lr": 0.02},
    "train": {"epochs": 6, "batch_size": 16, "threads": 1, "doctor": True},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder whose runs/ holds one folder of every kind, each made by its command."""
    root = tmp_path_factory.mktemp("project")
    write_config(root / "iris.yaml", IRIS)
    worse = copy.deepcopy(IRIS)
    worse["name"], worse["optimizer"]["lr"] = "iris-slow", 0.0005
    write_config(root / "slow.yaml", worse)
    study = copy.deepcopy(TINY)
    study["name"] = "tiny"
    study["search"] = {
        "metric": "val_accuracy",
        "space": {
            "optimizer.lr": {"loguniform": [1e-3, 1e-1]},
            "model.dropout": {"uniform": [0, 0.3]},
        },
    }
    write_config(root / "tiny.yaml", study)
    commands = [
        ("train", "iris.yaml", "--out", "runs/iris-run", "--quiet"),
        ("tune", "tiny.yaml", "--trials", "5", "--sampler", "random", "--out", "runs/tiny-study"),
        ("compare", "iris.yaml", "slow.yaml", "--seeds", "2", "--out", "runs/cmp", "--quiet"),
        (
            "ablate",
            "iris.yaml",
            "--seeds",
            "2",
            "--tricks",
            "optimizer.lr=0.0005",
            "--out",
            "runs/abl",
        ),
        ("doctor", "iris.yaml", "--epochs", "4", "--out", "runs/doc"),
        ("compress", "runs/iris-run", "--quantize", "dynamic", "--out", "runs/small"),
    ]
    for args in commands:
        done = nntune(*args, cwd=root)
        assert done.returncode == 0, (args, done.stderr[-2000:])
    return root / "runs"


KINDS = {
    "run": "iris-run",
    "study": "tiny-study",
    "compare": "cmp",
    "ablate": "abl",
    "doctor": "doc",
    "compress": "small",
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_command_writes_its_report(runs: Path, kind: str) -> None:
    page = (runs / KINDS[kind] / "report.html").read_text()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    # self-contained: no script, style or image is fetched from anywhere
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=['\"]?(https?:)?//", page)


def test_run_report_holds_the_runs_numbers(runs: Path) -> None:
    from nntune.evaluate import evaluate_run

    folder = runs / "iris-run"
    page = (folder / "report.html").read_text()
    evaluation = evaluate_run(folder, "test", "last", cost=False)  # the weights summary measured
    summary = json.loads((folder / "summary.json").read_text())
    assert f"Run {summary['name']}" in page
    for section in ("Curves", "Evaluation (test split", "Cost", "Doctor", "Config"):
        assert section in page, section
    assert page.count("<svg") >= 3  # curves, confusion matrix, ROC curves
    # every confusion matrix count is drawn as text in the heatmap
    for row in evaluation["confusion_matrix"]:
        for count in row:
            assert f">{count}<" in page
    assert "lr: 0.02" in page  # the config, verbatim
    assert evaluation["metrics"]["accuracy"] == summary["test"]["accuracy"]
    assert f"{evaluation['metrics']['accuracy']:.4g}" in page


def test_study_report_has_optunas_plots_and_links_every_trial(runs: Path) -> None:
    folder = runs / "tiny-study"
    page = (folder / "report.html").read_text()
    assert (folder / "study.html").read_text() == page
    for title in ("Optimization history", "Parameter importances", "Parallel coordinates"):
        assert f"<h2>{title}</h2>" in page
    assert page.count("plotly.js v") >= 1  # inlined once, not fetched from a CDN
    hrefs = re.findall(r"href='(trials/\d+[^']*)'", page)
    assert len(hrefs) == 5
    assert all((folder / href).exists() for href in hrefs)


def test_compare_and_ablate_reports_are_rebuilt_from_their_json(runs: Path) -> None:
    from nntune.report import write_report

    compare = json.loads((runs / "cmp" / "compare.json").read_text())
    assert compare["verdict"] in ("A better", "no evidence")
    before = (runs / "cmp" / "report.html").read_text()
    assert f"<b>{compare['verdict']}</b>" in before
    write_report(runs / "cmp")
    after = (runs / "cmp" / "report.html").read_text()
    strip = lambda text: re.sub(r"<p class='muted'>Written by .*?</p>", "", text)  # noqa: E731
    assert strip(after) == strip(before)  # the same JSON gives the same page

    ablate = json.loads((runs / "abl" / "ablate.json").read_text())
    page = (runs / "abl" / "report.html").read_text()
    assert len(ablate["rows"]) == 1 and ablate["rows"][0]["verdict"] in page


def test_runs_index_lists_every_folder_and_builds_missing_reports(
    runs: Path, tmp_path: Path
) -> None:
    (runs / "iris-run" / "report.html").unlink()
    (runs / "not-a-run").mkdir(exist_ok=True)
    done = nntune("report", str(runs), "--no-evaluate", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(runs / "report.html")
    page = (runs / "report.html").read_text()
    links = re.findall(r"<a href='([^']+)'>", page)
    assert sorted(links) == sorted(f"{name}/report.html" for name in KINDS.values())
    assert all((runs / link).exists() for link in links)  # the run's report was rebuilt
    assert "not-a-run" not in page
    assert "table class='sortable'" in page


def test_report_of_an_unfinished_run_shows_what_is_there(tmp_path: Path) -> None:
    """A run killed before its first summary: config and curves, no evaluation."""
    from nntune.report import write_report

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(IRIS))
    rows = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e} for e in (1, 2)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"ep')
    page = write_report(folder).read_text()
    assert "unfinished (no summary.json)" in page
    assert "Not evaluated" in page and "<svg" in page


def test_report_of_a_regression_run_has_no_confusion_matrix(tmp_path: Path) -> None:
    config = {
        "name": "diabetes",
        "data": {"dataset": "diabetes"},
        "model": {"arch": "mlp", "hidden": [8]},
        "train": {"epochs": 3, "threads": 1},
    }
    write_config(tmp_path / "reg.yaml", config)
    done = nntune("train", "reg.yaml", "--out", "runs/reg", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "report   runs/reg/report.html" in done.stdout
    page = (tmp_path / "runs" / "reg" / "report.html").read_text()
    assert "rmse" in page and "Confusion matrix" not in page and "ROC" not in page


def test_bad_paths_and_occupied_out_folders_fail_cleanly(tmp_path: Path) -> None:
    done = nntune("report", "missing", cwd=tmp_path)
    assert done.returncode == 2 and "'missing' does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    (tmp_path / "empty").mkdir()
    done = nntune("report", "empty", cwd=tmp_path)
    assert done.returncode == 2 and "is not a run, study" in done.stderr
    write_config(tmp_path / "iris.yaml", IRIS)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    done = nntune(
        "compare", "iris.yaml", "iris.yaml", "--seeds", "2", "--out", "taken", cwd=tmp_path
    )
    assert done.returncode == 2 and "--out taken: exists and is not empty" in done.stderr
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


@needs_chromium
def test_reports_render_in_headless_chromium(runs: Path, tmp_path: Path) -> None:
    """Every report kind from a file URL: no console error, every plot drawn, a screenshot."""
    from nntune.report import write_report

    write_report(runs)  # the index too
    pages = {kind: runs / name / "report.html" for kind, name in KINDS.items()}
    pages["index"] = runs / "report.html"
    minimum = {"run": 3, "study": 3, "compare": 1, "ablate": 1, "doctor": 0, "compress": 0}
    minimum["index"] = 0
    with chromium() as driver:
        for kind, page in pages.items():
            loaded = load_report(driver, page, tmp_path / f"{kind}.png")
            assert loaded.errors == [], (kind, loaded.errors)
            assert len(loaded.plots) >= minimum[kind], (kind, loaded.plots)
            for plot in loaded.plots:
                assert plot["drawn"] > 0 and plot["width"] > 100, (kind, plot)
            assert loaded.screenshot.stat().st_size > 10_000
            assert loaded.title and loaded.text.strip()


def test_a_report_that_fails_is_a_warning_after_a_finished_command(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The results stand: a report that cannot be written (here: report.html is a folder)
    warns with the way to rebuild it instead of failing the command."""
    import shutil

    from nntune.report import report_after

    folder = tmp_path / "run"
    shutil.copytree(runs / "iris-run", folder)
    (folder / "report.html").unlink()
    (folder / "report.html").mkdir()
    assert report_after(folder) is None
    err = capsys.readouterr().err
    assert "warning: report.html was not written" in err and f"nntune report {folder}" in err
