"""The command line: output contract, exit statuses and error messages on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nntune.train.build import REGISTRIES
from tests.helpers import nntune, nntune_in_process, write_config

SMALL = {
    "data": {"dataset": "moons", "n_samples": 300},
    "model": {"hidden": [8]},
    "train": {"epochs": 2, "threads": 1},
}


def test_train_json_prints_only_the_summary(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", SMALL)
    result = nntune("train", str(cfg), "--json", "--set", "train.epochs=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # the whole of stdout is one JSON document
    run = Path(tmp_path / summary["run_dir"])
    assert json.loads((run / "summary.json").read_text()) == summary
    assert summary["epochs_run"] == 3
    assert run.name.startswith("cfg-")  # the run is named after the config file


def test_train_prints_a_readable_summary(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", SMALL)
    result = nntune("train", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test" in result.stdout and "accuracy" in result.stdout
    assert "runs/cfg-" in result.stdout


def test_set_overrides_reach_the_saved_config(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", SMALL)
    result = nntune(
        "train", str(cfg), "--out", "run", "--quiet",
        "--set", "optimizer.lr=3e-3", "--set", "model.hidden=[12,6]",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    import yaml

    saved = yaml.safe_load((tmp_path / "run/config.yaml").read_text())
    assert saved["optimizer"]["lr"] == pytest.approx(3e-3)
    assert saved["model"]["hidden"] == [12, 6]
    # the saved config is complete: defaults filled in, task and loss decided
    assert saved["optimizer"]["betas"] == [0.9, 0.999]
    assert saved["data"]["task"] == "classification"
    assert saved["loss"]["name"] == "cross_entropy"
    # and trains again as it is
    again = nntune("train", "run/config.yaml", "--out", "again", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


BAD_CONFIGS = [
    ({"train": {"epocs": 3}}, ["train.epocs", "train.epochs"]),
    ({"optimizer": "adma"}, ["optimizer", "adma", "adam"]),
    ({"optimizer": {"name": "adam", "lr": -1}}, ["optimizer.lr", "-1", "greater than 0"]),
    ({"optimizer": {"name": "sgd", "betas": [0.9, 0.99]}}, ["optimizer.betas", "sgd"]),
    ({"train": {"batch_size": "big"}}, ["train.batch_size", "big", "integer"]),
    ({"model": {"activation": "relux"}}, ["model.activation", "relu"]),
    ({"model": {"dropout": 1.5}}, ["model.dropout", "1.5"]),
    ({"data": {"dataset": "mnist"}}, ["data.dataset", "mnist1d"]),
    ({"data": {"dataset": "iris", "test_split": 0.01}}, ["data.test_split", "classes"]),
    ({"data": {"dataset": "digits", "n_samples": 10}}, ["data.n_samples", "generated"]),
    ({"schedule": {"name": "cosine", "warmup": 100000}}, ["schedule.warmup"]),
    ({"loss": "mse"}, ["loss", "regression", "cross_entropy"]),
    ({"train": {"early_stopping": {"monitor": "val_acc"}}}, ["val_acc", "val_accuracy"]),
]


@pytest.mark.parametrize(("override", "words"), BAD_CONFIGS, ids=[str(c) for c, _ in BAD_CONFIGS])
def test_bad_config_exits_2_with_a_message_naming_the_key(
    tmp_path: Path, override: dict, words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = {**SMALL, **override}
    if "train" in override:
        config["train"] = {**SMALL["train"], **override["train"]}
    cfg = write_config(tmp_path / "cfg.yaml", config)
    result = nntune_in_process(capsys, "train", str(cfg), cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    assert not (tmp_path / "runs").exists()  # nothing written for a bad input


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_DATA = [
    ("a,b,label\n1,2,0\n3,4,1\n" * 20, {"target": "y"}, ["data.target", "y", "label"]),
    ("a,city,label\n" + "1,paris,0\n2,rome,1\n" * 20, {}, ["city", "onehot"]),
    ("a,b,label\n" + "1,,0\n2,3,1\n" * 20, {}, ["NaN", "impute"]),
]


@pytest.mark.parametrize(("text", "data", "words"), BAD_DATA, ids=["target", "text", "nan"])
def test_bad_data_file_exits_2(
    tmp_path: Path, text: str, data: dict, words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _csv(tmp_path / "data.csv", text)
    config = {**SMALL, "data": {"dataset": "data.csv", **data}}
    cfg = write_config(tmp_path / "cfg.yaml", config)
    result = nntune_in_process(capsys, "train", str(cfg), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_csv_with_encoders_and_a_path_relative_to_the_config(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    rows = "".join(
        f"{i % 7},{['paris', 'rome'][i % 2]},{'' if i % 9 == 0 else i % 5},{['yes', 'no'][i % 2]}\n"
        for i in range(200)
    )
    _csv(folder / "table.csv", "a,city,b,label\n" + rows)
    config = {
        **SMALL,
        "data": {"dataset": "table.csv", "preprocess": ["impute", "onehot", "standardize"]},
    }
    cfg = write_config(folder / "cfg.yaml", config)
    # run from elsewhere: the data path is resolved against the config's folder
    result = nntune(
        "train", "configs/cfg.yaml", "--json", "--set", "train.epochs=30",
        "--set", "optimizer.lr=0.03", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # the label follows the city column: learnable only if the one-hot columns made it in
    assert json.loads(result.stdout)["test"]["accuracy"] == pytest.approx(1.0)
    assert cfg.exists()


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = nntune("train", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr and "Traceback" not in result.stderr


def test_invalid_yaml_exits_2(tmp_path: Path) -> None:
    (tmp_path / "cfg.yaml").write_text("train: {epochs: 3\n")
    result = nntune("train", "cfg.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "cfg.yaml" in result.stderr


def test_bad_set_syntax_exits_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", SMALL)
    result = nntune("train", str(cfg), "--set", "train.epochs", cwd=tmp_path)
    assert result.returncode == 2 and "KEY=VALUE" in result.stderr


def test_an_existing_run_folder_is_never_overwritten(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", SMALL)
    assert nntune("train", str(cfg), "--out", "run", "--quiet", cwd=tmp_path).returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    again = nntune("train", str(cfg), "--out", "run", cwd=tmp_path)
    assert again.returncode == 2 and "--out" in again.stderr
    after = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert before == after


def test_resume_of_a_missing_folder_exits_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", SMALL)
    result = nntune("train", str(cfg), "--resume", "runs/none", cwd=tmp_path)
    assert result.returncode == 2 and "runs/none" in result.stderr


@pytest.mark.parametrize("what", list(REGISTRIES))
def test_list_prints_every_registered_name(
    tmp_path: Path, what: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = nntune_in_process(capsys, "list", what, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = [row["name"] for row in json.loads(result.stdout)]
    assert names == REGISTRIES[what].list()


def test_list_unknown_registry_exits_2(tmp_path: Path) -> None:
    result = nntune("list", "optimisers", cwd=tmp_path)
    assert result.returncode == 2 and "optimizers" in result.stderr


def test_schema_is_json_schema_with_component_names(tmp_path: Path) -> None:
    result = nntune("schema", cwd=tmp_path)
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["type"] == "object" and "train" in schema["properties"]
    assert "adam" in json.dumps(schema["properties"]["optimizer"])


def test_unknown_command_exits_2(tmp_path: Path) -> None:
    result = nntune("trian", cwd=tmp_path)
    assert result.returncode == 2
