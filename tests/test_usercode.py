"""The user's own model, data, loss, metric, preprocessing, augmentation and callback, named by
reference (``path.py:name`` next to the config, or ``package.module:name``), through every
command; run folders that name user code and ``--trust-code``; objects given in Python."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import nntune
from nntune.errors import ConfigError, RunFolderError
from tests.helpers import nntune_in_process, write_config

FIXTURES = Path(__file__).parent / "usercode"
FILES = ("models.py", "loaders.py", "losses.py", "metrics.py", "prep.py", "augment.py",
         "callbacks.py", "marker.py")  # fmt: skip

# everything of the user's at once: a config that names only user code (and nntune's optimizer)
FULL: dict[str, Any] = {
    "seed": 0,
    "data": {
        "dataset": "loaders.py:load_blobs",
        "n": 300,
        "preprocess": ["prep.py:clip", {"name": "prep.py:Center", "scale": 2.0}],
        "augment": [{"name": "augment.py:jitter", "std": 0.05}],
    },
    "model": {"arch": "models.py:TinyNet", "width": 24},
    "loss": {"name": "losses.py:smooth_ce", "smooth": 0.05},
    "optimizer": {"name": "adam", "lr": 0.02},
    "train": {
        "epochs": 4,
        "batch_size": 32,
        "threads": 1,
        "metrics": ["accuracy", "metrics.py:balanced"],
        "callbacks": ["callbacks.py:CountEpochs"],
    },
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding the user's files, as a project folder would; the working directory
    (references in configs given as mappings are relative to it)."""
    for name in FILES:
        shutil.copyfile(FIXTURES / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], cwd: Path, *args: str) -> Any:
    return nntune_in_process(capsys, *args, cwd=cwd)


def ok_json(capsys: pytest.CaptureFixture[str], cwd: Path, *args: str) -> dict[str, Any]:
    done = cli(capsys, cwd, *args, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def train_full(capsys: pytest.CaptureFixture[str], home: Path, out: str = "run") -> Path:
    write_config(home / "cfg.yaml", FULL)
    ok_json(capsys, home, "train", "cfg.yaml", "--out", out, "--no-report")
    return home / out


# --- training with user code --------------------------------------------------------------------


def test_a_config_of_user_code_trains_and_its_run_folder_keeps_the_code(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = train_full(capsys, home)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["test"]["accuracy"] > 0.8  # a separable problem, learned
    assert 0.8 < summary["test"]["balanced"] <= 1.0  # the user's metric, under its own name
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "val_balanced" in log[-1] and len(log) == 4
    assert (run / "epochs.txt").read_text() == "4"  # the user's callback ran every epoch
    config = yaml.safe_load((run / "config.yaml").read_text())
    # the reference is made absolute against the config's folder; width stays where given
    assert config["model"]["arch"] == f"{home / 'models.py'}:TinyNet"
    assert config["model"]["width"] == 24
    assert summary["parameters"] == 4 * 24 + 24 + 24 * 2 + 2
    # every user file, hashed in config.yaml and copied into code/<sha>/
    import hashlib

    used = {"models.py", "loaders.py", "losses.py", "metrics.py", "prep.py", "augment.py",
            "callbacks.py"}  # fmt: skip
    assert {Path(p).name for p in config["code"]} == used
    for path, digest in config["code"].items():
        copy = run / "code" / digest[:12] / Path(path).name
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest
        assert copy.read_bytes() == Path(path).read_bytes()


def test_nntune_passes_the_facts_a_model_asks_for_and_model_dropout_where_it_is_taken(
    home: Path,
) -> None:
    config = {**FULL, "model": {"arch": "models.py:TinyNet", "width": 8, "dropout": 0.25}}
    result = nntune.Trainer(config, write=False).fit()
    assert result.summary["parameters"] == 4 * 8 + 8 + 8 * 2 + 2
    trainer_model = nntune.Trainer(config, write=False)
    trainer_model.fit()
    dropout = [m for m in trainer_model.model.modules() if isinstance(m, nn.Dropout)]
    assert dropout[0].p == 0.25


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"model": {"arch": "models.py:TinyNet", "widht": 8}}, ["widht", "did you mean", "width"]),
        ({"model": {"arch": "models.py:TinyNet", "hidden": [8]}}, ["model.hidden", "no 'hidden'"]),
        ({"model": {"arch": "models.py:needs_vocabulary"}}, ["vocabulary", "in_features"]),
        ({"model": {"arch": "models.py:NoSuchNet"}}, ["models.py", "NoSuchNet", "TinyNet"]),
        ({"model": {"arch": "nomodel.py:Net"}}, ["nomodel.py", "not found"]),
        ({"model": {"arch": "no_such_package.nets:Net"}}, ["no_such_package"]),
        ({"loss": {"name": "losses.py:smooth_ce", "smoth": 1}}, ["smoth", "smooth"]),
        (
            {"data": {"dataset": "loaders.py:load_blobs", "m": 3}},
            ["'data.m'", "data takes: n, seed"],
        ),
        ({"data": {"dataset": "loaders.py:load_nothing"}}, ["load_nothing", "(x, y)"]),
        (
            {"data": {"dataset": "loaders.py:load_blobs", "preprocess": ["prep.py:Unsaved"]}},
            ["Unsaved", "state_dict"],
        ),
        ({"optimizer": "optim.py:Mine"}, ["optimizer", "cannot come from user code"]),
    ],
)
def test_bad_user_code_is_exit_2_naming_it_before_anything_trains(
    home: Path, capsys: pytest.CaptureFixture[str], change: dict, words: list[str]
) -> None:
    config = {**FULL, **change}
    write_config(home / "cfg.yaml", config)
    done = cli(capsys, home, "train", "cfg.yaml")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr, done.stderr
    assert not (home / "runs").exists()


def test_an_error_inside_user_code_names_the_key_and_shows_its_traceback(home: Path) -> None:
    (home / "broken.py").write_text("import torch\n\ndef net(in_features, n_outputs):\n"
                                    "    return undefined_name\n")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        nntune.Trainer({**FULL, "model": {"arch": "broken.py:net"}}, write=False).fit()
    message = str(info.value)
    assert "model.arch" in message and "NameError" in message and "broken.py" in message


def test_a_torch_dataset_by_reference_is_split_by_index_and_batched_by_a_dataloader(
    home: Path,
) -> None:
    config = {
        "data": {"dataset": "loaders.py:load_dataset", "n": 250, "workers": 1},
        "model": {"arch": "models.py:TinyNet"},
        "optimizer": {"name": "adam", "lr": 0.02},
        "train": {"epochs": 3, "threads": 1},
    }
    trainer = nntune.Trainer(config, write=False)
    result = trainer.fit()
    bundle = trainer.bundle
    assert bundle.train_dataset is not None and len(bundle.x_train) == 0
    n_train, n_val, n_test = len(bundle.train_dataset), len(bundle.x_val), len(bundle.x_test)
    assert (n_train, n_val, n_test) == (160, 40, 50)  # 20 % test, then 20 % of the rest
    assert result.summary["test"]["accuracy"] > 0.7
    assert trainer.config.data.preprocess == []  # the default standardize does not apply
    # the same split every time (split_seed = the seed)
    again = nntune.Trainer(config, write=False)
    again.fit()
    assert again.bundle.train_dataset.indices == bundle.train_dataset.indices
    with pytest.raises(ConfigError, match="torch Dataset"):
        nntune.Trainer(
            {**config, "data": {**config["data"], "preprocess": ["minmax"]}}, write=False
        ).fit()


def test_a_dataset_may_return_its_own_splits_or_a_table(home: Path) -> None:
    base = {"model": {"arch": "models.py:TinyNet"}, "train": {"epochs": 2, "threads": 1}}
    trainer = nntune.Trainer({**base, "data": {"dataset": "loaders.py:load_splits"}}, write=False)
    trainer.fit()
    assert (len(trainer.bundle.x_train), len(trainer.bundle.x_val), len(trainer.bundle.x_test)) == (
        200,
        50,
        70,
    )
    table = {"dataset": "loaders.py:load_table", "target": "label",
             "preprocess": ["onehot", "standardize"]}  # fmt: skip
    trainer = nntune.Trainer({**base, "data": table}, write=False)
    trainer.fit()
    assert trainer.bundle.class_names == ["no", "yes"] and trainer.bundle.sample_shape == (6,)


def test_a_loss_class_and_a_metric_of_probabilities(home: Path) -> None:
    config = {
        **FULL,
        "loss": {"name": "losses.py:Squared", "scale": 2.0},
        "train": {**FULL["train"], "metrics": ["metrics.py:brier"], "callbacks": []},
    }
    result = nntune.Trainer(config, write=False).fit()
    assert 0.0 <= result.summary["test"]["brier"] < 0.5
    assert result.history.records[-1].metrics["val_brier"] < 0.5


def test_a_package_reference_with_a_relative_import(home: Path) -> None:
    config = {**FULL, "model": {"arch": "tests.usercode.nets:build_net", "depth": 2}}
    result = nntune.train(config, out=home / "pkg", progress=False)
    saved = yaml.safe_load((home / "pkg" / "config.yaml").read_text())
    digest = saved["code"]["tests.usercode.nets"]
    assert (home / "pkg" / "code" / digest[:12] / "tests.usercode.nets.py").exists()
    predictor = nntune.load_run(result.run_dir, trust_code=True)  # from the folder's copy
    assert len(predictor.predict(np.zeros((3, 4), dtype=np.float32))["predictions"]) == 3


# --- run folders that name user code ------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "RUN"],
        ["export", "RUN", "--format", "onnx"],
        ["export", "RUN", "--format", "torchscript"],
        ["compress", "RUN", "--prune", "0.5"],
        ["ensemble", "RUN", "RUN2"],
    ],
)
def test_a_run_folder_naming_user_code_is_refused_without_trust_and_runs_with_it(
    home: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    run = train_full(capsys, home)
    write_config(home / "cfg2.yaml", {**FULL, "seed": 1, "data": {**FULL["data"], "split_seed": 0}})
    if "RUN2" in command:
        ok_json(capsys, home, "train", "cfg2.yaml", "--out", "run2", "--no-report")
    args = [str(home / "run2") if a == "RUN2" else str(run) if a == "RUN" else a for a in command]
    done = cli(capsys, home, *args)
    assert done.returncode == 2, done.stderr
    assert "--trust-code" in done.stderr and "models.py (sha256" in done.stderr
    assert "Traceback" not in done.stderr
    result = ok_json(capsys, home, *args, "--trust-code")
    assert result


def test_a_run_folder_s_code_never_runs_without_trust(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker test: a run folder whose model code writes a file when imported."""
    marker = home / "IMPORTED"
    monkeypatch.setenv("NNTUNE_TEST_MARKER", str(marker))
    write_config(home / "cfg.yaml", {**FULL, "model": {"arch": "marker.py:net"}})
    ok_json(capsys, home, "train", "cfg.yaml", "--out", "run", "--no-report")
    assert marker.exists()  # the user ran the config: their code ran
    marker.unlink()
    run = home / "run"
    for args in (["evaluate", str(run)], ["export", str(run), "--format", "onnx"],
                 ["report", str(run)], ["report", str(home)]):  # fmt: skip
        cli(capsys, home, *args)
        assert not marker.exists(), args
    assert "names user code" in (run / "report.html").read_text()  # reported, not evaluated
    with pytest.raises(RunFolderError, match="trust"):
        nntune.load_run(run)
    assert not marker.exists()
    from tests.test_serve import Server

    with pytest.raises(AssertionError, match="trust-code"):
        Server(run, home)
    assert not marker.exists()
    nntune.load_run(run, trust_code=True)
    assert str(run / "code") in marker.read_text()  # with trust: the folder's own copy ran


def test_serve_runs_a_user_model_with_trust(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_serve import Server, post

    run = train_full(capsys, home)
    server = Server(run, home, "--trust-code")
    try:
        status, answer = post(server.url, {"inputs": [[0.5, 0.5, 0.0, 0.0], [-1, -1, 0, 0]]})
    finally:
        server.stop()
    assert status == 200, answer
    assert answer["predictions"] == ["1", "0"]


def test_changed_code_stops_a_resume_and_a_recorded_config(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = train_full(capsys, home)
    with (home / "models.py").open("a") as handle:
        handle.write("\n# changed after the run\n")
    done = cli(capsys, home, "train", "cfg.yaml", "--resume", str(run))
    assert done.returncode == 2
    assert "user code changed" in done.stderr and "models.py" in done.stderr
    done = cli(capsys, home, "train", str(run / "config.yaml"), "--out", "again")
    assert done.returncode == 2
    assert "models.py" in done.stderr and "changed since this config was written" in done.stderr
    assert not (home / "again").exists()


# --- every command on the user's code -----------------------------------------------------------


def test_tune_searches_the_user_model_s_own_options(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        **FULL,
        "search": {
            "metric": "val_balanced",
            "space": {"model.width": {"int": [4, 48]}, "loss.smooth": {"uniform": [0.0, 0.2]}},
        },
    }
    write_config(home / "cfg.yaml", config)
    summary = ok_json(capsys, home, "tune", "cfg.yaml", "--trials", "3", "--pruner", "none",
                      "--sampler", "random", "--out", "study", "--quiet")  # fmt: skip
    assert summary["n_complete"] == 3 and summary["n_failed"] == 0
    widths = set()
    for trial in sorted((home / "study" / "trials").iterdir()):
        saved = yaml.safe_load((trial / "config.yaml").read_text())
        widths.add(saved["model"]["width"])
        summary_of_trial = json.loads((trial / "summary.json").read_text())
        assert (
            summary_of_trial["parameters"]
            == 4 * saved["model"]["width"] + 3 * saved["model"]["width"] + 2
        )
    assert len(widths) > 1  # the option was searched
    ok_json(capsys, home, "train", "study/best.yaml", "--out", "best", "--no-report")


def test_the_default_space_leaves_model_keys_the_user_arch_does_not_take_alone(home: Path) -> None:
    from nntune.config import load_config
    from nntune.search import default_space

    space = default_space(load_config({**FULL, "model": {"arch": f"{home}/models.py:TinyNet"}}),
                          "classification")  # fmt: skip
    assert "model.dropout" in space  # TinyNet takes dropout
    assert "model.hidden" not in space  # and no hidden


def test_doctor_repairs_what_it_can_and_says_which_remedies_do_not_apply(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "data": {"dataset": "digits"},
        "model": {"arch": "models.py:DeepSigmoid", "depth": 8},
        "optimizer": {"name": "sgd", "lr": 0.05},
        "train": {"epochs": 4, "threads": 1},
    }
    write_config(home / "sick.yaml", config)
    report = ok_json(capsys, home, "doctor", "sick.yaml", "--repair", "--out", "doctor")
    kinds = {p["kind"] for p in report["problems"]}
    assert "vanishing_gradients" in kinds
    skipped = [t for t in report["repair"]["tried"] if "skipped" in t]
    assert any(t["changes"] == {"model.norm": "batch"} for t in skipped)
    assert all("DeepSigmoid takes no" in t["skipped"] for t in skipped)
    assert any("skipped" not in t for t in report["repair"]["tried"])  # others were tried


def test_cv_compare_and_ablate_run_on_user_code(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = {**FULL, "train": {**FULL["train"], "epochs": 2, "callbacks": []}}
    write_config(home / "a.yaml", small)
    write_config(home / "b.yaml", {**small, "model": {"arch": "models.py:TinyNet", "width": 4}})
    cv = ok_json(capsys, home, "cv", "a.yaml", "--folds", "2")
    assert len(cv["values"]) == 2
    compared = ok_json(capsys, home, "compare", "a.yaml", "b.yaml", "--seeds", "2", "--out", "c")
    assert compared["verdict"] in ("A better", "B better", "no evidence")
    ablated = ok_json(capsys, home, "ablate", "a.yaml", "--seeds", "2", "--tricks",
                      "model.width=4", "--out", "ab")  # fmt: skip
    assert ablated["rows"][0]["change"] == {"model.width": 4}


def test_list_shows_a_config_s_user_components_from_their_files(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(home / "cfg.yaml", FULL)
    rows = ok_json(capsys, home, "list", "archs", "--config", "cfg.yaml")
    mine = [r for r in rows if r["source"]]
    assert [r["options"] for r in mine] == [{"width": 16}]
    assert mine[0]["source"] == str(home / "models.py")
    done = cli(capsys, home, "list", "losses", "--config", "cfg.yaml")
    assert "smooth_ce (from " in done.stdout and "smooth=0.1" in done.stdout


# --- objects given in Python --------------------------------------------------------------------


class PyNet(nn.Module):
    def __init__(self, in_features: int, n_outputs: int, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, n_outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 5)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def test_tune_doctor_cv_compare_ablate_take_the_objects_themselves(in_tmp: Path) -> None:
    from nntune.doctor import doctor
    from nntune.evaluate import ablate, compare, cross_validate
    from nntune.search import tune

    config = {"optimizer": {"name": "adam", "lr": 0.02},
              "train": {"epochs": 2, "threads": 1},
              "search": {"space": {"model.width": {"int": [2, 16]}}}}  # fmt: skip
    objects = {"model": PyNet, "data": _xy()}
    study = tune(config, trials=2, pruner="none", sampler="random", quiet=True, **objects)
    assert study.n_complete == 2 and "model.width" in study.best_params
    assert study.study.startswith("data-PyNet")
    report = doctor(config, epochs=2, out=in_tmp / "doc", **objects)
    assert "healthy" in report
    assert len(cross_validate(config, folds=2, **objects)["values"]) == 2
    other = {**config, "model": {"width": 2}}
    assert compare(config, other, seeds=2, **objects)["verdict"]
    assert ablate(config, seeds=2, tricks={"model.width": 2}, **objects)["rows"]
    with pytest.raises(ConfigError, match="class or a factory"):
        tune(config, trials=1, model=PyNet(5, 2), data=_xy())
    with pytest.raises(ConfigError, match="workers"):
        tune(config, trials=2, workers=2, **objects)


# --- the worked example of docs/own-code.md -----------------------------------------------------


def test_the_worked_example_train_tune_doctor_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The four commands of docs/own-code.md on examples/own/own.yaml, with fewer epochs."""
    from tests.test_serve import Server, post

    recipe = str(Path(__file__).parents[1] / "examples" / "own" / "own.yaml")
    quick = ["--set", "train.epochs=8", "--set", "train.threads=1"]
    summary = ok_json(capsys, tmp_path, "train", recipe, *quick, "--out", "run", "--no-report")
    assert summary["test"]["accuracy"] > 0.8 and "worst_recall" in summary["test"]
    study = ok_json(capsys, tmp_path, "tune", recipe, *quick, "--trials", "2",
                    "--retrain-best", "1", "--out", "study", "--quiet")  # fmt: skip
    assert study["n_failed"] == 0 and "test_worst_recall" in study["retrain"]
    report = ok_json(capsys, tmp_path, "doctor", recipe, *quick, "--repair", "--epochs", "3",
                     "--out", "doctor")  # fmt: skip
    assert "repair" in report
    from sklearn.datasets import load_wine

    rows = load_wine(as_frame=True).frame.drop(columns=["target"]).head(3)
    server = Server(tmp_path / "run", tmp_path, "--trust-code")
    try:
        status, answer = post(server.url, {"inputs": rows.to_numpy().tolist()})
    finally:
        server.stop()
    assert status == 200, answer
    assert answer["predictions"] == ["class_0"] * 3


@pytest.mark.parametrize("loader", ["load_table", "load_dataset"])  # a DataFrame, a Dataset
def test_auto_takes_a_dataset_of_the_user_s_own(
    home: Path, capsys: pytest.CaptureFixture[str], loader: str
) -> None:
    done = cli(capsys, home, "auto", f"loaders.py:{loader}", "--budget", "12s", "--seeds", "1",
               "--out", "auto", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    statuses = {s["stage"]: s["status"] for s in result["stages"]}
    assert statuses["data"] == statuses["retrain"] == statuses["export"] == "done", result["stages"]
    assert "failed" not in statuses.values(), result["stages"]
    assert result["final"]["metrics"]["accuracy"] > 0.7
    assert (home / "auto" / "model.onnx").exists()
