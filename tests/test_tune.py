"""``nntune tune``: real Optuna studies on tiny data, real worker processes, real kills."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml

import nntune
from nntune.config import config_to_dict, load_config
from nntune.data import prepare_data
from nntune.errors import ConfigError
from nntune.search import tune
from nntune.search.choice import choose_search
from nntune.search.space import default_space, parse_space
from nntune.search.study import best_of_folds, make_storage, options_of
from nntune.search.tune import refit_config
from tests.helpers import nntune as run_nntune
from tests.helpers import nntune_in_process, write_config

SPACE = {
    "optimizer.lr": {"loguniform": [1.0e-3, 1.0e-1], "steps": 2},
    "optimizer.name": {"choice": ["adam", "momentum"]},
}


def tiny_study_config(tiny: dict, **search: Any) -> dict:
    config = copy.deepcopy(tiny)
    config["name"] = "tiny"
    config["train"]["epochs"] = 4
    config["search"] = {"metric": "val_accuracy", "space": copy.deepcopy(SPACE), **search}
    return config


def load(study_dir: Path, name: str = "tiny") -> optuna.Study:
    storage = make_storage(f"journal:{study_dir.resolve() / 'study.journal'}")
    return optuna.load_study(study_name=name, storage=storage)


def trial_folders(study_dir: Path) -> list[str]:
    return sorted(p.name for p in (study_dir / "trials").iterdir())


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.trials]


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid", "gp", "cmaes"])
def test_every_sampler_runs_a_study_end_to_end(in_tmp: Path, tiny: dict, sampler: str) -> None:
    result = tune(tiny_study_config(tiny), trials=4, sampler=sampler, pruner="none", quiet=True)
    study_dir = Path("runs/tiny")
    assert result.study_dir == study_dir
    assert result.n_complete == 4 and result.n_pruned == 0 and result.n_failed == 0
    summary = json.loads((study_dir / "summary.json").read_text())
    assert summary["sampler"] == sampler
    assert 0.5 < summary["best_value"] <= 1.0
    assert set(summary["best_params"]) <= set(SPACE)
    lines = (study_dir / "trials.csv").read_text().strip().splitlines()
    assert len(lines) == 5  # header + 4 trials
    # 64 validation rows: search.folds auto scored each trial by 5 folds, one folder each
    assert summary["folds"] == 5
    folders = trial_folders(study_dir)
    assert [f for f in folders if "." not in f] == ["0000", "0001", "0002", "0003"]
    assert len(folders) == 4 * 5
    # best.yaml is the best trial's resolved config and trains as is
    best = load_config(study_dir / "best.yaml")
    assert best.optimizer.name == summary["best_params"].get("optimizer.name", best.optimizer.name)
    html = (study_dir / "study.html").read_text()
    assert "Optimization history" in html and "plotly" in html.lower()


@pytest.mark.parametrize("pruner", ["asha", "hyperband", "median", "none"])
def test_every_pruner_runs_and_pruned_trials_are_recorded_as_pruned(
    in_tmp: Path, tiny: dict, pruner: str
) -> None:
    config = tiny_study_config(tiny)
    config["train"]["epochs"] = 6
    config["search"]["space"]["optimizer.lr"] = {"loguniform": [1.0e-5, 1.0e-1]}
    result = tune(config, trials=10, sampler="random", pruner=pruner, quiet=True)
    study = load(Path("runs/tiny"))
    assert len(study.trials) == 10
    assert result.n_complete + result.n_pruned == 10
    for trial in study.trials:
        epochs = len(Path(trial.user_attrs["run_dir"], "metrics.jsonl").read_text().splitlines())
        if trial.state == optuna.trial.TrialState.PRUNED:
            assert epochs < 6 and trial.user_attrs["pruned_by"] == "pruner"
        else:
            assert trial.state == optuna.trial.TrialState.COMPLETE and epochs == 6
            assert sorted(trial.intermediate_values) == list(range(1, 7))
    if pruner == "none":
        assert result.n_pruned == 0
    if pruner == "asha":
        assert result.n_pruned > 0  # lr down to 1e-5 on 6 epochs: ASHA cuts the slow ones


def test_grid_covers_its_grid_and_stops(in_tmp: Path, tiny: dict) -> None:
    result = tune(tiny_study_config(tiny), trials=50, sampler="grid", pruner="none", quiet=True)
    study = load(Path("runs/tiny"))
    assert result.n_complete == 4
    seen = {(t.params["optimizer.name"], round(t.params["optimizer.lr"], 6)) for t in study.trials}
    assert seen == {(n, lr) for n in ("adam", "momentum") for lr in (0.001, 0.1)}


def test_options_are_sampled_only_for_components_that_take_them(in_tmp: Path, tiny: dict) -> None:
    config = tiny_study_config(tiny)
    config["search"]["space"]["optimizer.momentum"] = {"uniform": [0.5, 0.95]}
    config["search"]["space"]["optimizer.name"] = {"choice": ["adam", "momentum", "sgd"]}
    tune(config, trials=8, sampler="random", pruner="none", quiet=True)
    study = load(Path("runs/tiny"))
    names = {t.params["optimizer.name"] for t in study.trials}
    assert "adam" in names and names - {"adam"}
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        has_momentum = "optimizer.momentum" in trial.params
        assert has_momentum == (trial.params["optimizer.name"] != "adam")
        saved = load_config(Path(trial.user_attrs["run_dir"]) / "config.yaml")
        if has_momentum:
            assert saved.optimizer.options["momentum"] == pytest.approx(
                trial.params["optimizer.momentum"]
            )


def test_a_whole_component_with_its_own_options_can_be_a_choice(in_tmp: Path, tiny: dict) -> None:
    config = tiny_study_config(tiny)
    config["search"]["space"] = {
        "schedule": {"choice": ["constant", {"name": "step", "step_size": 1, "gamma": 0.5}]},
    }
    tune(config, trials=6, sampler="grid", pruner="none", quiet=True)
    study = load(Path("runs/tiny"))
    saved = [load_config(Path(t.user_attrs["run_dir"]) / "config.yaml") for t in study.trials]
    assert {c.schedule.name for c in saved} == {"constant", "step"}
    step = next(c for c in saved if c.schedule.name == "step")
    assert step.schedule.options["gamma"] == 0.5


def test_a_resumed_study_continues_its_count(in_tmp: Path, tiny: dict) -> None:
    config = tiny_study_config(tiny)
    tune(config, trials=3, sampler="random", pruner="none", quiet=True)
    result = tune(config, trials=5, sampler="random", pruner="none", quiet=True)
    study = load(Path("runs/tiny"))
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert result.n_complete == 5
    # a different base config may not join the study
    config["model"]["hidden"] = [8]
    with pytest.raises(ConfigError, match="different config"):
        tune(config, trials=6, quiet=True)


def test_a_failing_trial_is_recorded_with_its_reason_and_the_study_goes_on(
    in_tmp: Path, tiny: dict
) -> None:
    config = tiny_study_config(tiny)
    config["search"]["space"] = {"schedule.warmup": {"choice": [0, 100000]}}
    result = tune(config, trials=2, sampler="grid", pruner="none", quiet=True)
    assert (result.n_complete, result.n_failed) == (1, 1)
    summary = result.summary
    assert "warmup" in summary["failures"][0]["reason"]
    assert summary["best_params"] == {"schedule.warmup": 0}


def test_the_timeout_stops_running_trials_and_records_them_pruned(in_tmp: Path, tiny: dict) -> None:
    config = tiny_study_config(tiny)
    config["train"]["epochs"] = 100000
    started = time.time()
    result = tune(config, timeout=3, sampler="random", pruner="none", quiet=True)
    elapsed = time.time() - started
    assert elapsed < 3 + 10  # data preparation, the last epoch's validation, the outputs
    assert result.n_pruned == 1 and result.n_complete == 0
    trial = load(Path("runs/tiny")).trials[0]
    assert trial.user_attrs["pruned_by"] == "deadline"


def test_multi_objective_study_gives_a_pareto_front(in_tmp: Path, tiny: dict) -> None:
    config = tiny_study_config(tiny, objectives=["val_accuracy", "parameters"])
    config["search"]["space"] = {"model.hidden": {"choice": [[4], [16, 16], [64, 64]]}}
    result = tune(config, trials=3, sampler="grid", quiet=True)
    front = result.summary["pareto_front"]
    assert front and all(set(p["values"]) == {"val_accuracy", "parameters"} for p in front)
    assert result.summary["directions"] == ["maximize", "minimize"]
    assert "Pareto front" in Path("runs/tiny/study.html").read_text()


def test_default_space_when_the_config_has_none(in_tmp: Path, tiny: dict) -> None:
    config = copy.deepcopy(tiny)
    config["name"] = "tiny"
    config["train"]["epochs"] = 3
    result = tune(config, trials=3, sampler="random", pruner="none", quiet=True)
    study = load(Path("runs/tiny"))
    keys = set().union(*(t.params for t in study.trials))
    assert {"optimizer.lr", "optimizer.name", "train.batch_size", "model.hidden"} <= keys
    assert result.n_failed == 0


def test_the_default_space_of_a_small_table_offers_a_linear_model(tiny: dict) -> None:
    mlp = load_config(tiny)
    assert default_space(mlp, "classification", small=True)["model.arch"] == {
        "choice": ["mlp", "linear"]
    }
    assert "model.arch" not in default_space(mlp, "classification")  # 500 validation rows on
    conv = load_config({**tiny, "model": {"arch": "cnn1d", "hidden": [8]}})
    assert "model.arch" not in default_space(conv, "classification", small=True)
    # the space stays flat, so a zero-config study of a small table is still a GP's
    params = parse_space(default_space(mlp, "classification", small=True))
    choice = choose_search(
        "auto", "auto", params, config_to_dict(mlp), options_of, workers=1, objectives=1
    )
    assert choice.sampler == "gp"


def test_retrain_best_reports_test_mean_and_std(in_tmp: Path, tiny: dict) -> None:
    result = tune(tiny_study_config(tiny), trials=2, pruner="none", retrain_best=2, quiet=True)
    assert result.retrain is not None
    stats = result.retrain["test_accuracy"]
    assert len(stats["values"]) == 2 and 0.5 < stats["mean"] <= 1.0
    saved = json.loads(Path("runs/tiny/summary.json").read_text())
    assert saved["retrain"]["test_accuracy"]["mean"] == stats["mean"]
    assert result.summary == saved  # what `nntune tune --json` prints


def test_a_postgres_storage_without_its_driver_exits_2_with_the_pip_line(
    in_tmp: Path, tiny: dict, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # `import psycopg2` now fails
    write_config(in_tmp / "cfg.yaml", tiny_study_config(tiny))
    url = "postgresql://nobody@127.0.0.1:9/nothing"
    done = nntune_in_process(
        capsys, "tune", "cfg.yaml", "--trials", "1", "--storage", url, cwd=in_tmp
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"--storage {url}" in done.stderr and "pip install 'nntune[postgres]'" in done.stderr
    assert not (in_tmp / "runs").exists()  # refused before the study folder exists


def test_two_worker_processes_share_one_journal_study(in_tmp: Path, tiny: dict) -> None:
    write_config(in_tmp / "cfg.yaml", tiny_study_config(tiny))
    done = run_nntune(
        "tune", "cfg.yaml", "--trials", "8", "--workers", "2", "--pruner", "none", "--json",
        cwd=in_tmp,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["n_complete"] == 8 and summary["n_failed"] == 0
    study = load(in_tmp / "runs" / "tiny")
    assert sorted(t.number for t in study.trials) == list(range(8))  # none lost or duplicated
    assert len({t.user_attrs["pid"] for t in study.trials}) == 2


def _wait_for_running_trial(study_dir: Path, proc: subprocess.Popen, limit: float = 60) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if (study_dir / "study.journal").exists():
            running = [t for t in load(study_dir).trials if t.state.name == "RUNNING"]
            if running and Path(running[0].user_attrs.get("run_dir", "/none")).exists():
                return
        time.sleep(0.2)
    raise AssertionError("no trial started")


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nntune", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # Ctrl-C as in a terminal, also when the tests run as a background job (which
        # inherits an ignored SIGINT, and nntune leaves an ignored SIGINT ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_a_killed_workers_trial_is_requeued_and_the_study_completes(
    in_tmp: Path, tiny: dict
) -> None:
    config = tiny_study_config(tiny)
    config["train"]["epochs"] = 150  # a few seconds per trial: time to kill it mid-way
    write_config(in_tmp / "cfg.yaml", config)
    args = ["tune", "cfg.yaml", "--trials", "2", "--pruner", "none", "--quiet"]
    proc = _start(args, in_tmp)
    study_dir = in_tmp / "runs" / "tiny"
    _wait_for_running_trial(study_dir, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = load(study_dir).trials[0]
    assert killed.state.name == "RUNNING"  # nothing could record the kill
    done = run_nntune(*args, "--json", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["n_complete"] == 2 and summary["n_failed"] == 1
    trials = load(study_dir).trials
    assert trials[0].state.name == "FAIL"
    assert trials[0].user_attrs["fail_reason"] == "worker process died"
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 0]
    assert len(retry) == 1 and retry[0].params == killed.params
    assert retry[0].state.name == "COMPLETE"


def test_ctrl_c_stops_cleanly_keeping_finished_trials(in_tmp: Path, tiny: dict) -> None:
    config = tiny_study_config(tiny)
    config["train"]["epochs"] = 150
    write_config(in_tmp / "cfg.yaml", config)
    proc = _start(["tune", "cfg.yaml", "--trials", "5", "--pruner", "none"], in_tmp)
    study_dir = in_tmp / "runs" / "tiny"
    deadline = time.time() + 120
    while time.time() < deadline:  # interrupt the second trial
        assert proc.poll() is None
        if (study_dir / "study.journal").exists():
            trials = load(study_dir).trials
            if len(trials) == 2 and trials[1].state.name == "RUNNING":
                break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    summary = json.loads((study_dir / "summary.json").read_text())
    assert summary["n_complete"] == 1
    trials = load(study_dir).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL"]
    assert trials[1].user_attrs["fail_reason"] == "interrupted (Ctrl-C)"


@pytest.mark.parametrize(
    ("args", "config_change", "words"),
    [
        (["--sampler", "bayes"], {}, ["--sampler", "tpe"]),
        (["--pruner", "early"], {}, ["--pruner", "asha"]),
        (["--storage", "mysql://x/y"], {}, ["--storage", "postgresql"]),
        (["--trials", "0"], {}, ["--trials"]),
        ([], {"search": {"metric": "val_f2"}}, ["search.metric", "val_f2", "val_accuracy"]),
        ([], {"search": {"space": {"optimizer.lrr": {"uniform": [0.1, 0.2]}}}}, ["optimizer.lrr"]),
        ([], {"search": {"space": {"optimizer.lr": {"loguniform": [0, 1]}}}}, ["low > 0"]),
        ([], {"search": {"space": {"model.dropout": {"uniform": [0.5, 0.1]}}}}, ["low < high"]),
        ([], {"search": {"space": {"x": {"choice": [1], "step": 2}}}}, ["unknown", "step"]),
        ([], {"search": {"objectives": ["val_loss"]}}, ["objectives"]),
        ([], {"search": {"folds": 1}}, ["search.folds", "greater than or equal to 2"]),
        ([], {"search": {"folds": 500}}, ["search.folds = 500", "cannot be cut into 500 folds"]),
    ],
)
def test_bad_tune_input_exits_2_naming_the_problem(
    in_tmp: Path, tiny: dict, capsys: Any, args: list[str], config_change: dict, words: list[str]
) -> None:
    config = tiny_study_config(tiny)
    config.update(config_change)
    write_config(in_tmp / "cfg.yaml", config)
    done = nntune_in_process(capsys, "tune", "cfg.yaml", "--trials", "2", *args, cwd=in_tmp)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr
    assert not (in_tmp / "runs").exists()


def test_folds_score_each_trial_by_the_mean_of_its_folds(in_tmp: Path, tiny: dict) -> None:
    config = tiny_study_config(tiny, metric="val_loss", folds=3)
    result = tune(config, trials=2, sampler="random", pruner="none", out=in_tmp / "study")
    study = load(in_tmp / "study")
    assert states(study) == ["COMPLETE", "COMPLETE"]
    for trial in study.trials:
        run = Path(trial.user_attrs["run_dir"])
        curves = []
        validated = 0
        folders = [run, *(run.with_name(f"{run.name}.fold{i}") for i in (1, 2))]
        for index, folder in enumerate(folders):
            saved = load_config(folder / "config.yaml")
            fold = saved.data.val_fold
            assert fold is not None and (fold.folds, fold.index) == (3, index)
            lines = (folder / "metrics.jsonl").read_text().splitlines()
            curves.append([json.loads(line)["val_loss"] for line in lines])
            validated += len(prepare_data(saved.data, saved.seed).y_val)
        # the value is the lowest point of the folds' mean curve (every fold ran all epochs)
        assert {len(curve) for curve in curves} == {config["train"]["epochs"]}
        means = [sum(epoch) / 3 for epoch in zip(*curves, strict=True)]
        best_epoch = means.index(min(means))
        assert trial.value == pytest.approx(means[best_epoch])
        at_best = [curve[best_epoch] for curve in curves]
        assert trial.user_attrs["fold_values"] == pytest.approx(at_best)
        # never below the mean of each fold's own minimum, the optimistic score it replaces
        assert trial.value >= sum(min(curve) for curve in curves) / 3 - 1e-9
        assert trial.user_attrs["refit_epoch"] == best_epoch + 1
        assert validated == 320  # the folds' validation parts make up the whole training part
    # best.yaml is refit: the whole training part for the best trial's chosen epochs
    chosen = study.best_trial.user_attrs["refit_epoch"]
    best = load_config(result.best_config)
    assert best.data.val_fold is None and best.data.val_split == 0.0
    assert best.train.epochs == chosen and best.train.early_stopping is None
    assert result.summary["refit"] == {"epochs": chosen, "val_split": 0.0}
    refit = nntune.train(result.best_config, out=in_tmp / "refit", progress=False)
    assert len(refit.history.values("train_loss")) == chosen
    assert refit.history.values("val_loss") == [None] * chosen  # no validation part
    assert len(prepare_data(best.data, best.seed).y_train) == 320


def test_one_split_is_refit_for_the_epochs_of_the_weights_its_best_trial_kept(
    in_tmp: Path, tiny: dict
) -> None:
    config = tiny_study_config(tiny, metric="val_loss", folds=None)
    config["train"].update({"epochs": 30, "early_stopping": {"patience": 1}})
    result = tune(config, trials=3, sampler="random", pruner="none", out=in_tmp / "study")
    study = load(in_tmp / "study")
    restored = 0
    for trial in study.trials:
        run = json.loads((Path(trial.user_attrs["run_dir"]) / "summary.json").read_text())
        # early stopping restored its best epoch's weights: that many epochs trained them
        kept = run["best_epoch"] if run["restored"] else run["epochs_run"]
        assert trial.user_attrs["refit_epoch"] == kept
        restored += bool(run["restored"])
    assert restored  # the case that matters is covered
    chosen = study.best_trial.user_attrs["refit_epoch"]
    assert result.summary["refit"] == {"epochs": chosen, "val_split": 0.0}
    split = load_config(Path(study.best_trial.user_attrs["run_dir"]) / "config.yaml")
    best = load_config(result.best_config)
    assert best.train.epochs == chosen and best.train.early_stopping is None
    # the validation part joins the training part; the test part stays out
    rows = {len(prepare_data(c.data, c.seed).y_train) for c in (split, best)}
    assert rows == {256, 320}
    assert len(prepare_data(best.data, best.seed).y_test) == 80
    refit = nntune.train(result.best_config, out=in_tmp / "refit", progress=False)
    assert refit.history.values("val_loss") == [None] * chosen

    # without early stopping a trial keeps its last weights: the refit trains every epoch
    config["train"].update({"epochs": 3, "early_stopping": None})
    result = tune(config, trials=1, out=in_tmp / "plain", quiet=True)
    assert result.summary["refit"] == {"epochs": 3, "val_split": 0.0}


def test_folds_without_refit_keep_the_split(in_tmp: Path, tiny: dict) -> None:
    config = tiny_study_config(tiny, metric="val_loss", folds=2, refit=False)
    result = tune(config, trials=1, sampler="random", pruner="none", out=in_tmp / "study")
    best = load_config(result.best_config)
    assert best.data.val_fold is None and best.data.val_split == load_config(tiny).data.val_split
    assert best.train.epochs == config["train"]["epochs"]
    assert result.summary["refit"] is None


def test_folds_auto_cross_validates_where_the_validation_part_is_small(
    in_tmp: Path, tiny: dict
) -> None:
    # no search block: 400 moons leave 64 validation rows, too few to rank trials on
    config = {**copy.deepcopy(tiny), "name": "tiny"}
    result = tune(config, trials=1, out=in_tmp / "small", quiet=True)
    assert result.summary["folds"] == 5
    assert "64 validation rows (< 500)" in result.summary["folds_reason"]
    assert trial_folders(in_tmp / "small") == ["0000", *(f"0000.fold{i}" for i in range(1, 5))]
    assert result.summary["refit"]["val_split"] == 0.0  # best.yaml trains on the whole part
    # the study folder keeps what the user wrote, so the study resumes with the same config
    saved = yaml.safe_load((in_tmp / "small" / "config.yaml").read_text())
    assert saved["search"]["folds"] == "auto"
    resumed = tune(config, trials=2, out=in_tmp / "small", quiet=True)
    assert resumed.summary["folds"] == 5 and resumed.n_complete == 2

    # null: one split, whatever the size
    one = {**config, "search": {"folds": None}}
    result = tune(one, trials=1, out=in_tmp / "one", quiet=True)
    assert result.summary["folds"] is None and "null" in result.summary["folds_reason"]
    assert trial_folders(in_tmp / "one") == ["0000"]
    assert result.summary["refit"]["val_split"] == 0.0  # one split is refit too

    # 3,200 moons leave 512 validation rows: one split is steady enough there
    large = {**config, "data": {"dataset": "moons", "n_samples": 3200}}
    large["train"] = {**config["train"], "epochs": 1}
    result = tune(large, trials=1, out=in_tmp / "large", quiet=True)
    assert result.summary["folds"] is None
    assert "512 validation rows" in result.summary["folds_reason"]
    assert trial_folders(in_tmp / "large") == ["0000"]


def test_folds_auto_keeps_a_validation_part_the_data_brings(in_tmp: Path, tiny: dict) -> None:
    # a validation part of the user's own (val_data=) is what trials are scored on
    gen = torch.Generator().manual_seed(0)
    x, xv = torch.randn(120, 4, generator=gen), torch.randn(40, 4, generator=gen)
    y, yv = (x[:, 0] > 0).long(), (xv[:, 0] > 0).long()
    config = {**copy.deepcopy(tiny), "name": "own", "data": {"task": "classification"}}
    splits = {"train": (x.numpy(), y.numpy()), "val": (xv.numpy(), yv.numpy())}
    result = tune(config, trials=1, out=in_tmp / "own", quiet=True, data=splits)
    assert result.summary["folds"] is None
    assert "its own validation part" in result.summary["folds_reason"]
    # and best.yaml keeps it: a refit could not fold it into the training part
    assert result.summary["refit"] == {"skipped": "the data brings its own validation part"}


def test_refit_keeps_the_split_a_config_needs(tiny: dict) -> None:
    plateau = load_config({**tiny, "schedule": {"name": "plateau", "monitor": "val_accuracy"}})
    same, said = refit_config(plateau, 7)
    assert same is plateau and "val_accuracy" in said["skipped"]
    plain = load_config(tiny)
    same, said = refit_config(plain, None)
    assert same is plain and "refit epoch" in said["skipped"]
    refit, said = refit_config(plain, 2)
    assert (refit.train.epochs, refit.data.val_split, said) == (
        2,
        0.0,
        {"epochs": 2, "val_split": 0.0},
    )


def test_folds_are_scored_at_one_training_length_for_all() -> None:
    # each fold's own best epoch would score 1.0; the mean curve is flat at 2.0 (a tie goes to
    # the earliest epoch)
    assert best_of_folds([[3.0, 1.0, 2.0], [1.0, 3.0, 2.0]], "minimize") == (2.0, [3.0, 1.0], 1)
    assert best_of_folds([[0.2, 0.9, 0.5], [0.8, 0.1, 0.5]], "maximize") == (0.5, [0.2, 0.8], 1)
    # a fold that stopped early (or logged nothing finite that epoch) keeps its last value
    found = best_of_folds([[5.0, 1.0], [4.0, math.nan, 2.0, 0.5]], "minimize")
    assert found == (0.75, [1.0, 0.5], 4)
    assert best_of_folds([[None, 2.0, 1.0], [3.0, 1.0, 1.0]], "minimize") == (1.0, [1.0, 1.0], 3)
    # one curve: its best finite value; nothing finite: nan
    assert best_of_folds([[0.4, None, 0.3, math.inf]], "minimize") == (0.3, [0.3], 3)
    assert math.isnan(best_of_folds([[None], [1.0]], "minimize")[0])


def test_cli_prints_the_study_and_best_config_trains(in_tmp: Path, tiny: dict, capsys: Any) -> None:
    write_config(in_tmp / "cfg.yaml", tiny_study_config(tiny))
    done = nntune_in_process(capsys, "tune", "cfg.yaml", "--trials", "3", cwd=in_tmp)
    assert done.returncode == 0, done.stderr
    assert "best     val_accuracy" in done.stdout
    assert "refit    best.yaml trains on the whole training part for" in done.stdout
    assert "trial    0" in done.stderr  # one line per finished trial, on stderr
    result = nntune.train(in_tmp / "runs" / "tiny" / "best.yaml", out=in_tmp / "again")
    assert result.summary["status"] == "completed"


def test_a_new_study_starts_from_the_configs_own_values(in_tmp: Path, tiny: dict) -> None:
    """Trial 0 is the recipe itself (where the space holds its values); a re-run adds none."""
    config = tiny_study_config(tiny)  # optimizer adam, lr 0.01: both inside SPACE
    tune(config, trials=3, sampler="random", pruner="none", quiet=True)
    trials = load(Path("runs/tiny")).trials
    assert trials[0].params == {"optimizer.lr": 0.01, "optimizer.name": "adam"}
    assert trials[0].user_attrs["start"] == "the config's own values"
    assert all("start" not in t.user_attrs for t in trials[1:])
    tune(config, trials=5, sampler="random", pruner="none", quiet=True)
    trials = load(Path("runs/tiny")).trials
    assert len(trials) == 5 and sum("start" in t.user_attrs for t in trials) == 1


def test_start_from_config_can_be_switched_off_and_skips_values_outside_the_space(
    in_tmp: Path, tiny: dict
) -> None:
    from nntune.search.space import config_point, parse_space

    params = parse_space({**SPACE, "train.batch_size": {"choice": [64, 128]}})
    config = {"optimizer": {"name": "sgd", "lr": 0.5}, "train": {"batch_size": 64}}
    assert config_point(params, config) == {"train.batch_size": 64}  # sgd, lr 0.5: outside
    # a name given in the shorthand (`schedule: constant`) is that node's name
    schedules = parse_space({"schedule.name": {"choice": ["constant", "cosine"]}})
    assert config_point(schedules, {"schedule": "constant"}) == {"schedule.name": "constant"}

    off = tiny_study_config(tiny)
    off["search"]["start_from_config"] = False
    tune(off, trials=2, sampler="random", pruner="none", quiet=True)
    assert all("start" not in t.user_attrs for t in load(Path("runs/tiny")).trials)


def test_ctrl_c_in_a_worker_waits_for_a_safe_point() -> None:
    """SIGINT sets a flag (a storage write under way finishes); the worker raises at its next
    safe point, and a second Ctrl-C raises at once. An ignored SIGINT stays ignored."""
    from nntune.search.study import DeferredInterrupt

    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with DeferredInterrupt() as interrupt:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler has run: no KeyboardInterrupt yet
            assert interrupt.requested
            with pytest.raises(KeyboardInterrupt):
                interrupt.check()
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # under nohup
        with DeferredInterrupt() as interrupt:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert not interrupt.requested
    finally:
        signal.signal(signal.SIGINT, outer)


def test_the_command_s_timeout_clock_starts_with_its_process() -> None:
    """`nntune tune --timeout S` counts from the process's start (torch's import included), read
    from the OS: a child's start lies between the moment before it was spawned and its answer
    (btime has whole-second resolution, hence the second of slack)."""
    import subprocess
    import sys

    code = "import time; from nntune.cli._app import process_started as p; print(p(), time.time())"
    before = time.time()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    started, answered = (float(v) for v in done.stdout.split())
    assert before - 1.0 <= started <= answered


@pytest.mark.parametrize("sampler", ["gp", "random"])
def test_a_gp_study_is_told_that_a_diverged_trial_was_bad(in_tmp: Path, sampler: str) -> None:
    """GPSampler fits complete trials only: a diverged trial is told as complete with the worst
    value seen (so it stops proposing the same diverging point); other samplers keep it failed."""
    config = {
        "name": "diverge",
        "seed": 0,
        "data": {"dataset": "diabetes", "preprocess": ["standardize"]},
        "model": {"arch": "mlp", "hidden": [16]},
        "optimizer": {"name": "sgd", "lr": 0.001},
        "train": {"epochs": 3, "batch_size": 32, "threads": 1},
        # lr 1.0 on diabetes' raw targets overflows within the first epoch (examples/doctor)
        "search": {"space": {"optimizer.lr": {"choice": [0.001, 0.003, 1.0]}}},
    }
    tune(config, trials=8, sampler=sampler, pruner="none", quiet=True)
    trials = load(Path("runs/diverge"), "diverge").trials
    diverged = [t for t in trials if t.params.get("optimizer.lr") == 1.0]
    assert diverged, "the space's diverging lr was never drawn"
    assert all(t.user_attrs.get("diverged") for t in diverged)
    for trial in diverged:
        if sampler == "gp":  # trial 0 (the config's lr 0.001) completed before any of them
            earlier = [
                t.value
                for t in trials[: trial.number]
                if t.state == optuna.trial.TrialState.COMPLETE and "penalized" not in t.user_attrs
            ]
            assert trial.state == optuna.trial.TrialState.COMPLETE
            assert "penalized" in trial.user_attrs and trial.value == max(earlier)
        else:
            assert trial.state == optuna.trial.TrialState.FAIL and trial.value is None


def _choice(space: dict, **kwargs: Any) -> Any:
    from nntune.search.choice import choose_search
    from nntune.search.space import parse_space
    from nntune.search.study import options_of

    base = {"optimizer": {"name": "adam", "lr": 0.01}, "schedule": "constant"}
    options = {"workers": 1, "objectives": 1, **kwargs}
    sampler, pruner = options.pop("sampler", "auto"), options.pop("pruner", "auto")
    return choose_search(sampler, pruner, parse_space(space), base, options_of, **options)


def test_the_default_search_is_gp_on_a_flat_space_and_tpe_where_gp_does_not_fit() -> None:
    flat = _choice(SPACE)
    assert (flat.sampler, flat.pruner, flat.gp_startup, flat.gp_until) == ("gp", "none", 4, 200)
    # adam takes no momentum: optimizer.momentum is sampled in some trials only
    conditional = _choice({**SPACE, "optimizer.momentum": {"uniform": [0.5, 0.9]}})
    assert (conditional.sampler, conditional.pruner) == ("tpe", "asha")
    assert "optimizer.momentum" in conditional.reason and "adam" in conditional.reason
    when = _choice(
        {**SPACE, "model.dropout": {"uniform": [0, 0.5], "when": {"optimizer.name": ["adam"]}}}
    )
    assert when.sampler == "tpe" and "when" in when.reason
    assert _choice(SPACE, workers=2).sampler == "tpe"
    assert _choice(SPACE, objectives=2).sampler == "tpe"
    # named samplers are kept; the pruner's auto follows them
    assert (_choice(SPACE, sampler="gp").pruner, _choice(SPACE, sampler="tpe").pruner) == (
        "none",
        "asha",
    )
    assert _choice(SPACE, pruner="median").pruner == "median"


def test_a_gp_study_goes_on_with_tpe_after_its_complete_trials() -> None:
    from nntune.search.space import parse_space
    from nntune.search.study import make_sampler

    params = parse_space({"x": {"uniform": [-2.0, 2.0]}})
    sampler = make_sampler("gp", params, seed=0, workers=1, multi=False, gp_startup=2, gp_until=5)
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial({"x": 1.5})
    study.optimize(lambda t: (t.suggest_float("x", -2.0, 2.0) - 0.3) ** 2, n_trials=9)
    picked = [t.system_attrs["sampler"] for t in study.trials]
    assert picked == ["gp"] * 5 + ["tpe"] * 4
    assert study.best_value < 0.1  # the GP part found the bowl


def test_a_default_study_records_what_auto_chose(in_tmp: Path, tiny: dict) -> None:
    result = tune(tiny_study_config(tiny), trials=5, quiet=True)
    summary = result.summary
    assert (summary["sampler"], summary["pruner"]) == ("gp", "none")
    assert summary["search_choice"].startswith("auto: gp (4 random start-up trials")
    assert result.n_complete == 5 and result.n_pruned == 0
    frame = (Path("runs/tiny") / "trials.csv").read_text().splitlines()
    assert "system_attrs_sampler" in frame[0]


def test_the_report_plots_a_sample_of_a_large_study_keeping_its_best_trial() -> None:
    from nntune.search.tune import plotted_sample

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("x", -1.0, 1.0) - 0.2) ** 2, n_trials=350)
    sample = plotted_sample(study, size=300)
    values = [t.value for t in sample.trials]
    assert len(values) == 300 and set(values) <= {t.value for t in study.trials}
    assert sample.best_value == study.best_value  # the best trial is always in
    small = optuna.create_study()
    small.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=5)
    assert plotted_sample(small, size=300) is small
