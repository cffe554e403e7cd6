"""``nntune auto``: real end-to-end runs on small data with budgets of seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nntune.auto import parse_budget, starting_config, understand
from nntune.config import load_config
from nntune.errors import ConfigError
from tests.helpers import nntune, nntune_in_process

STAGES = ["data", "lr_find", "doctor", "tune", "retrain", "ablate", "evaluate", "export"]


def _mixed_csv(path: Path, n: int = 300, regression: bool = False) -> Path:
    """Numbers with gaps, a category, a date string, a yes/no flag and an identifier."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": [f"user{i:04d}" for i in range(n)],
            "age": rng.normal(40, 10, n),
            "city": rng.choice(["paris", "lyon", "nice"], n),
            "signup": pd.date_range("2020-01-01", periods=n, freq="D").astype(str),
            "member": rng.choice(["yes", "no"], n),
        }
    )
    signal_ = (frame.age - 40) / 10 + (frame.city == "paris") * 1.5
    frame.loc[rng.choice(n, 25, replace=False), "age"] = np.nan
    if regression:
        frame["price"] = 3.0 * signal_ + rng.normal(0, 0.3, n)
    else:
        frame["label"] = np.where(signal_ > 0.3, "high", "low")
    frame.to_csv(path, index=False)
    return path


def _run_auto(tmp: Path, *args: str, budget: float) -> tuple[dict, float]:
    started = time.monotonic()
    result = nntune("auto", *args, "--budget", f"{budget}s", "--json", cwd=tmp, timeout=600)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), seconds


def _check_folder(folder: Path, summary: dict, budget: float, seconds: float) -> None:
    assert [s["stage"] for s in summary["stages"]] == STAGES
    assert all(s["status"] in ("done", "skipped") for s in summary["stages"]), summary["stages"]
    assert summary["status"] == "completed"
    # the budget is kept: the command's own clock, and the wall time around the process
    assert summary["seconds"] <= 1.1 * budget
    assert seconds <= 1.1 * budget + 15  # + interpreter start and imports
    for name in ("auto.json", "start.yaml", "best.yaml", "report.html", "model.onnx"):
        assert (folder / name).exists(), name
    assert summary["export"]["verified"]
    html = (folder / "report.html").read_text()
    assert "Stages" in html and "Decisions" in html and summary["name"] in html


@pytest.mark.slow
def test_auto_on_a_mixed_csv_trains_a_model_that_best_yaml_reproduces(tmp_path: Path) -> None:
    data = _mixed_csv(tmp_path / "customers.csv")
    summary, seconds = _run_auto(tmp_path, str(data), "--target", "label", "--out", "a", budget=45)
    folder = tmp_path / "a"
    _check_folder(folder, summary, 45, seconds)
    facts = summary["data"]
    assert facts["kind"] == "table" and facts["task"] == "classification"
    kinds = {c["name"]: c["kind"] for c in facts["profile"]["columns"]}
    assert kinds == {
        "id": "text_id",
        "age": "numeric",
        "city": "categorical",
        "signup": "datetime",
        "member": "boolean",
    }
    steps = [s if isinstance(s, str) else s["name"] for s in facts["preprocess"]]
    assert steps[0] == "drop" and "datetime_parts" in steps and "impute" in steps
    final = summary["final"]
    accuracy = final["metrics"]["accuracy"]
    assert accuracy > 0.8  # the label is a rule of age and city: well above the 50-60% prior
    interval = final["ci"]["accuracy"]
    assert interval["low"] <= accuracy <= interval["high"]
    assert summary["retrain"]["runs"][0]["run"] == summary["final_run"]
    # 300 rows: the search scored its trials by 5 folds (trial 0, the recipe, ran them all)
    assert (folder / "study" / "trials" / "0000.fold4" / "summary.json").exists()
    # and the final model trains on the whole training part for the epochs the folds chose
    refit = summary["tune"]["refit"]
    best = load_config(folder / "best.yaml")
    assert (best.data.val_split, best.train.epochs) == (0.0, refit["epochs"])
    html = (folder / "report.html").read_text()
    assert f"whole training part for {refit['epochs']} epochs" in html

    again = nntune("train", str(folder / "best.yaml"), "--out", "again", "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    first = json.loads((tmp_path / summary["final_run"] / "summary.json").read_text())
    assert json.loads(again.stdout)["test"] == first["test"]


@pytest.mark.slow
def test_auto_on_an_npz_of_signals_picks_a_1d_network(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n, length = 400, 32
    y = rng.integers(0, 2, n)
    t = np.linspace(0, 1, length)
    x = np.sin(2 * np.pi * (2 + 3 * y[:, None]) * t) + rng.normal(0, 0.3, (n, length))
    np.savez(tmp_path / "waves.npz", x=x.astype(np.float32), y=y)
    summary, seconds = _run_auto(tmp_path, "waves.npz", "--out", "w", budget=40)
    _check_folder(tmp_path / "w", summary, 40, seconds)
    assert summary["data"]["kind"] == "signal"
    start = (tmp_path / "w/start.yaml").read_text()
    assert "resnet1d" in start
    assert summary["final"]["metrics"]["accuracy"] > 0.9


@pytest.mark.slow
def test_auto_on_a_regression_csv_reports_rmse_with_an_interval(tmp_path: Path) -> None:
    data = _mixed_csv(tmp_path / "prices.csv", regression=True)
    summary, seconds = _run_auto(tmp_path, str(data), "--target", "price", "--out", "r", budget=35)
    _check_folder(tmp_path / "r", summary, 35, seconds)
    assert summary["data"]["task"] == "regression"
    final = summary["final"]
    rmse = final["metrics"]["rmse"]
    assert final["ci"]["rmse"]["low"] <= rmse <= final["ci"]["rmse"]["high"]
    assert rmse < 2.0  # the target's std is about 3.4: the model explains most of it


def test_without_a_complete_search_trial_the_recipe_is_refit_on_the_whole_training_part(
    tmp_path: Path,
) -> None:
    """The retrain stage after a search that completed no trial (or none ran): a run of the
    recipe on its split tells the epochs, and best.yaml trains on the validation part too."""
    from nntune.auto import Auto
    from nntune.data import prepare_data

    data = _mixed_csv(tmp_path / "customers.csv")
    run = Auto(str(data), target="label", budget=300, seeds=2, out=tmp_path / "a")
    run._data()  # the recipe (early stopping, a validation part); the search left out
    run._retrain()
    refit = run.record["refit"]
    assert refit["why"] == "no search"
    split = json.loads((tmp_path / "a/retrain/split/summary.json").read_text())
    kept = split["best_epoch"] if split["restored"] else split["epochs_run"]
    assert refit["epochs"] == kept and refit["split_run"]["epochs_run"] == split["epochs_run"]
    best = load_config(tmp_path / "a/best.yaml")
    assert (best.train.epochs, best.train.early_stopping, best.data.val_split) == (kept, None, 0)
    start = load_config(tmp_path / "a/start.yaml")
    rows = [len(prepare_data(c.data, c.seed).y_train) for c in (start, best)]
    assert rows == [192, 240]  # 300 rows, a fifth held out for the test: the 48 join training
    # the retrained seeds are refits (no validation curve); seed 0 is the final model
    assert [r["seed"] for r in run.record["retrain"]["runs"]] == [0, 1]
    history = json.loads((tmp_path / "a/retrain/seed0/summary.json").read_text())
    assert history["epochs_run"] == kept and history["val"] is None
    assert run.record["final_run"] == str(tmp_path / "a/retrain/seed0")
    run._save()  # auto.json, which the report reads
    run._report()
    html = (tmp_path / "a/report.html").read_text()
    assert f"whole training part for {kept} epochs" in html and "a run on the split" in html

    # no time left for the refit after the run on the split: that run is the final model
    late = Auto(str(data), target="label", budget=300, seeds=1, out=tmp_path / "b")
    late._data()
    late.clock.total = late.clock.spent() + 1.0
    late._retrain()
    assert "the run on the split is the final model" in late.record["refit"]["skipped"]
    assert late.record["final_run"] == str(tmp_path / "b/retrain/split")
    assert load_config(tmp_path / "b/best.yaml").data.val_split == 0.2
    assert not (tmp_path / "b/retrain/seed0").exists()


def test_ctrl_c_keeps_the_finished_stages_and_writes_their_report(tmp_path: Path) -> None:
    data = _mixed_csv(tmp_path / "customers.csv")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nntune", "auto", str(data), "--budget", "5m", "--out", "a"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a terminal's Ctrl-C
    )
    try:
        deadline = time.monotonic() + 120
        trials = tmp_path / "a/study/trials"
        while time.monotonic() < deadline and proc.poll() is None:
            if trials.exists() and len(list(trials.glob("*/summary.json"))) >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    summary = json.loads((tmp_path / "a/auto.json").read_text())
    assert summary["status"] == "interrupted"
    statuses = {s["stage"]: s["status"] for s in summary["stages"]}
    assert statuses["data"] == statuses["lr_find"] == "done"
    assert statuses["tune"] == "interrupted" and "retrain" not in statuses
    assert (tmp_path / "a/report.html").exists()
    assert (tmp_path / "a/study/summary.json").exists()  # the search's finished trials


def test_a_bug_in_a_stage_after_the_final_model_keeps_the_result_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import nntune.compress.export

    def broken_exporter(*args: object, **kwargs: object) -> dict:
        raise RuntimeError("the exporter broke")  # torch's OnnxExporterError is one

    monkeypatch.setattr(nntune.compress.export, "export_run", broken_exporter)
    done = nntune_in_process(
        capsys, "auto", "iris", "--budget", "15s", "--seeds", "1", "--out", "a", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)  # the result is printed all the same
    assert summary == json.loads((tmp_path / "a/auto.json").read_text())
    assert summary["status"] == "completed" and summary["final"]["metrics"]["accuracy"] > 0.5
    export = summary["stages"][-1]
    assert export["stage"] == "export" and export["status"] == "failed"
    assert export["note"] == "RuntimeError: the exporter broke"
    assert "the exporter broke" in (tmp_path / "a/errors.log").read_text()
    assert "stage export failed" in done.stderr and "errors.log" in done.stderr
    assert (tmp_path / "a/report.html").exists() and (tmp_path / "a/best.yaml").exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["missing.csv"], "missing.csv"),
        (["nosuchset"], "nosuchset"),
        (["data.csv", "--target", "nope"], "nope"),
        (["data.csv", "--target", "label", "--budget", "soon"], "--budget"),
        (["data.csv", "--target", "label", "--task", "ranking"], "--task"),
        (["data.csv", "--target", "label", "--layout", "CLN"], "--layout 'CLN'"),
        (["data.csv", "--target", "label", "--layout", "NCL"], "data.layout = NCL"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    tmp_path: Path, args: list[str], named: str
) -> None:
    _mixed_csv(tmp_path / "data.csv", n=40)
    result = nntune("auto", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_budget_spellings() -> None:
    assert parse_budget("10m") == 600 and parse_budget("1h30m") == 5400
    assert parse_budget("90s") == parse_budget("90") == parse_budget(90) == 90
    for bad in ("", "5", "ten", "-3m"):
        with pytest.raises(ConfigError):
            parse_budget(bad)


def test_the_starting_model_follows_the_kind_of_data(tmp_path: Path) -> None:
    np.savez(tmp_path / "images.npz", x=np.zeros((50, 8, 8), np.float32), y=np.arange(50) % 2)
    cases = {"mnist1d": "resnet1d", "digits": "cnn2d", "wine": "mlp"}
    cases[str(tmp_path / "images.npz")] = "cnn2d"
    for data, arch in cases.items():
        facts = understand(data)
        config = starting_config(facts, "x")
        name = config["model"]["arch"]
        assert (name["name"] if isinstance(name, dict) else name) == arch, data
    # fewer than 500 validation rows: trials are scored by 5-fold cross-validation
    assert starting_config(understand("wine"), "x")["search"]["folds"] == 5
    assert "folds" not in starting_config(understand("mnist1d"), "x")["search"]
    assert understand("diabetes").task == "regression"


@pytest.mark.parametrize(
    ("shape", "layout", "channels", "length"),
    [((60, 6, 100), "NCL", 6, 100), ((60, 128, 3), "NLC", 3, 128), ((60, 90), "NCL", 1, 90)],
)
def test_few_series_get_the_small_series_recipe_and_their_layout_with_its_reason(
    tmp_path: Path, shape: tuple[int, ...], layout: str, channels: int, length: int
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    if len(shape) == 2:
        x[::3, 70:] = np.nan  # shorter series
    np.savez(tmp_path / "series.npz", x=x, y=np.arange(shape[0]) % 3)
    facts = understand(str(tmp_path / "series.npz"))
    assert facts.kind == "signal" and facts.recipe == "small_series" and facts.layout == layout
    profile = facts.profile or {}
    assert profile["layout"] == layout and profile["layout_reason"]
    assert profile["channels"] == channels and profile["length"] == length
    assert profile["variable_length"] == (len(shape) == 2)
    assert any(f"x read as {layout}" in note for note in facts.notes)
    config = starting_config(facts, "x")
    assert config["data"]["layout"] == layout and config["data"]["preprocess"] == ["znorm"]
    assert config["model"]["arch"]["kernel_sizes"] == [8, 5, 3]
    assert config["model"]["hidden"] == [64, 128, 128]
    load_config(config)  # a valid config as it is


def test_the_probe_of_few_series_validates_on_every_class_or_not_at_all() -> None:
    from nntune.auto.recipe import series_val_split
    from nntune.data.splits import split_off

    assert series_val_split(400, 2) == 0.2
    for n, classes in ((36, 10), (50, 10), (24, 6)):
        share = series_val_split(n, classes)
        assert 0.2 <= share < 0.5
        labels = np.arange(n) % classes
        kept, held = split_off(labels, share, 0, "data.val_split", "a validation part")
        assert len(set(labels[held])) == len(set(labels[kept])) == classes
    assert series_val_split(18, 18) == 0.0  # one series per class: nothing to hold out
    assert series_val_split(100, 10, fewest=1) == 0.0


def test_the_layout_given_to_auto_overrides_the_guess(tmp_path: Path) -> None:
    from nntune.errors import DataError

    x = np.zeros((40, 12, 12), np.float32)  # near-square: images, unless told
    np.savez(tmp_path / "square.npz", x=x, y=np.arange(40) % 2)
    assert understand(str(tmp_path / "square.npz")).kind == "image"
    facts = understand(str(tmp_path / "square.npz"), layout="NCL")
    assert facts.kind == "signal" and facts.layout == "NCL"
    assert (facts.profile or {})["layout_reason"] == "data.layout"
    with pytest.raises(DataError, match=r"data\.layout = NCHW"):
        understand(str(tmp_path / "square.npz"), layout="NCHW")


@pytest.mark.slow
def test_auto_on_few_variable_length_multichannel_series(tmp_path: Path) -> None:
    """The small-series path end to end: no search, every series trains the final model, and
    the exported ONNX model reproduces the predictions on NaN-padded test series."""
    rng = np.random.default_rng(2)

    def waves(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        x = np.full((n, 2, 64), np.nan, np.float32)
        for i in range(n):
            length = int(rng.integers(32, 65))
            t = np.arange(length) / 6.0
            x[i, 0, :length] = 3.0 + 2.0 * np.sin((1 + y[i]) * t) + rng.normal(0, 0.2, length)
            x[i, 1, :length] = rng.normal(0, 1, length)  # a channel of noise
        return x, y

    (x, y), (x_test, y_test) = waves(90), waves(150)
    np.savez(tmp_path / "rec.npz", x=x, y=y, x_test=x_test, y_test=y_test)
    summary, seconds = _run_auto(tmp_path, "rec.npz", "--out", "r", budget=60)
    _check_folder(tmp_path / "r", summary, 60, seconds)
    assert summary["data"]["recipe"] == "small_series" and summary["data"]["layout"] == "NCL"
    assert summary["data"]["profile"]["variable_length"]
    stages = {s["stage"]: s for s in summary["stages"]}
    assert stages["tune"]["status"] == "skipped" and "few series" in stages["tune"]["note"]
    best = load_config(tmp_path / "r" / "best.yaml")
    assert best.data.val_split == 0.0 and best.train.epochs == summary["small_series"]["epochs"]
    assert summary["final"]["metrics"]["accuracy"] > 0.8  # three frequencies: chance is 1/3
    assert summary["export"]["verified"]["passed"]


def test_small_tables_search_a_linear_model_too() -> None:
    from nntune.auto import search_space
    from nntune.config import load_config

    facts = understand("diabetes")
    space = search_space(facts, load_config(starting_config(facts, "x")))
    assert space["model.arch"] == {"choice": ["mlp", "linear"]}
    assert space["model.hidden"]["when"] == {"model.arch": ["mlp"]}
    facts = understand("mnist1d")
    space = search_space(facts, load_config(starting_config(facts, "x")))
    assert "model.arch" not in space and "when" not in space["model.hidden"]
    # a classification table ranked by val_loss: no label smoothing in the space
    facts = understand("wine")
    space = search_space(facts, load_config(starting_config(facts, "x")))
    assert "loss.label_smoothing" not in space


def test_examples_digits_yaml_is_the_recipe_auto_starts_from_on_digits() -> None:
    from nntune.config import config_to_dict, load_config

    example = config_to_dict(load_config(Path(__file__).parents[1] / "examples" / "digits.yaml"))
    start = config_to_dict(load_config(starting_config(understand("digits"), "digits")))
    for section in ("model", "optimizer", "schedule"):
        assert example[section] == start[section], section
    for key in ("epochs", "batch_size"):
        assert example["train"][key] == start["train"][key], key


def test_the_range_test_only_lowers_an_lr_past_its_loss_minimum() -> None:
    from nntune.auto.pipeline import guarded_lr

    # below the loss minimum the recipe's lr stays, however steep the curve is further up
    assert guarded_lr(0.003, suggestion=0.018, min_loss_lr=0.05) == 0.003
    assert guarded_lr(0.003, suggestion=0.001, min_loss_lr=0.003) == 0.003
    # past it (the test saw the loss rise there): down toward the suggestion, at most 3×
    assert guarded_lr(0.1, suggestion=0.05, min_loss_lr=0.08) == 0.05
    assert guarded_lr(0.1, suggestion=0.001, min_loss_lr=0.01) == 0.033
    assert guarded_lr(0.1, suggestion=0.5, min_loss_lr=0.05) == 0.1  # never up


def test_a_probe_ended_by_early_stopping_shortens_the_expected_training() -> None:
    from nntune.auto.pipeline import expected_epochs

    stopping = {"monitor": "val_accuracy", "patience": 6}
    config = load_config({"data": {"dataset": "iris"}, "train": {"epochs": 30}})
    assert expected_epochs(config, probe_epochs=9, ran=8) == 30  # no early stopping: all
    config = load_config(
        {"data": {"dataset": "iris"}, "train": {"epochs": 30, "early_stopping": stopping}}
    )
    assert expected_epochs(config, probe_epochs=9, ran=9) == 30  # the probe did not stop
    assert expected_epochs(config, probe_epochs=9, ran=8) == 14  # stopped: + one patience
    assert expected_epochs(config, probe_epochs=28, ran=27) == 30  # never past the epochs


def test_the_search_reserves_the_seeds_that_fit_a_third_of_the_budget() -> None:
    from nntune.auto.pipeline import reserved_seeds

    assert reserved_seeds(3, seconds=2.0, budget=300) == 3  # quick trainings: every seed
    assert reserved_seeds(3, seconds=90.0, budget=600) == 2
    assert reserved_seeds(3, seconds=335.0, budget=600) == 1  # the final model at least
    assert reserved_seeds(3, seconds=0.0, budget=600) == 3  # nothing measured yet


def test_a_search_round_shorter_than_one_training_is_not_started(tmp_path: Path) -> None:
    from nntune.auto import Auto
    from nntune.auto.pipeline import search_too_short

    assert search_too_short(106.0, 318.0) is not None  # fortunes split 1: no trial could end
    assert "too short for one trial" in str(search_too_short(106.0, 318.0))
    assert search_too_short(240.0, 150.0) is None  # a trial fits
    assert search_too_short(20.0, None) is None  # nothing measured: the round measures it

    run = Auto(str(_mixed_csv(tmp_path / "c.csv")), target="label", budget=60, out=tmp_path / "a")
    run._data()
    run.seconds_per_training = 1000.0  # as the doctor's probe would have estimated it
    note = run._tune()
    assert note is not None and note.startswith("skipped: a training takes ~1000 s")
    assert "tune" not in run.record and not (tmp_path / "a/study").exists()
