"""train.log_to: TensorBoard event files and the MLflow run, read back with their own readers,
hold the values of metrics.jsonl, the resolved config and summary.json."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient  # the dev extra installs the trackers: no skipping here
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams import plugin_data_pb2

import nntune
from nntune.errors import ConfigError
from nntune.train.callbacks import Callback, TrainState
from tests.helpers import nntune_in_process, write_config

BOTH = ["tensorboard", "mlflow"]


def _tracked(tiny: dict, **train: Any) -> dict:
    tiny["train"].update({"log_to": BOTH, **train})
    return tiny


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _numeric(row: dict) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in row.items()
        if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _events(run: Path) -> EventAccumulator:
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return events


def _scalars(events: EventAccumulator) -> dict[str, list[tuple[int, float]]]:
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def _mlflow(run: Path, uri: str | None = None) -> tuple[MlflowClient, Any]:
    saved = json.loads((run / "tracking.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=uri or f"sqlite:///{(run / 'mlflow.db').resolve()}")
    return client, client.get_run(saved["run_id"])


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _flat_config(run: Path) -> dict[str, str]:
    """config.yaml flattened to dotted keys, each value as its JSON text (strings as they are),
    without the search block: what the MLflow params must be."""
    flat: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else key)
        else:
            flat[prefix] = node if isinstance(node, str) else json.dumps(node)

    config = yaml.safe_load((run / "config.yaml").read_text())
    config.pop("search")
    walk(config, "")
    return flat


def test_tensorboard_and_mlflow_hold_the_metrics_params_and_final_metrics(
    in_tmp: Path, tiny: dict
) -> None:
    result = nntune.train(_tracked(tiny), out="run")
    run = in_tmp / "run"
    rows = _rows(run)
    assert len(rows) == 3
    summary = result.summary
    final = {
        f"final/{split}_{name}": value
        for split in ("val", "test")
        for name, value in summary[split].items()
    }
    assert "final/test_accuracy" in final and "final/val_loss" in final

    # TensorBoard: one point per epoch of every numeric metrics.jsonl value, step = epoch
    events = _events(run)
    scalars = _scalars(events)
    expected = {key for row in rows for key in _numeric(row)}
    assert expected <= set(scalars), expected - set(scalars)
    assert {"train_loss", "val_loss", "val_accuracy", "lr", "grad_norm"} <= expected
    for key in expected:
        want = [(row["epoch"], _numeric(row)[key]) for row in rows]
        got = scalars[key]
        assert [s for s, _ in got] == [s for s, _ in want], key
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6), key
    for key, value in final.items():  # the final metrics, at the last epoch
        assert scalars[key] == [(3, pytest.approx(value, rel=1e-6))], key
    # the hparams plugin: the flattened config as hyperparameters, the final metrics declared
    content = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    ).session_start_info
    assert start.hparams["optimizer.lr"].number_value == pytest.approx(0.01)
    assert start.hparams["train.epochs"].number_value == 3
    assert start.hparams["model.hidden"].string_value == "[16, 16]"
    assert start.hparams["data.dataset"].string_value == "moons"
    assert "search.metric" not in start.hparams
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content[hparams_metadata.EXPERIMENT_TAG]
    ).experiment
    assert {m.name.tag for m in experiment.metric_infos} == set(final)

    # MLflow: the same series, the config as params, the final metrics, a finished run
    client, mlrun = _mlflow(run)
    assert mlrun.info.status == "FINISHED"
    assert mlrun.info.run_name == "run"
    assert mlrun.data.tags["nntune.status"] == "completed"
    experiment_name = client.get_experiment(mlrun.info.experiment_id).name
    assert experiment_name == yaml.safe_load((run / "config.yaml").read_text())["name"]
    for key in expected:
        want = [(row["epoch"], _numeric(row)[key]) for row in rows]
        assert _history(client, mlrun.info.run_id, key) == want, key
    for key, value in final.items():
        assert _history(client, mlrun.info.run_id, key) == [(3, value)], key
    params = mlrun.data.params
    assert params == _flat_config(run)
    assert params["optimizer.lr"] == "0.01"
    assert params["model.hidden"] == "[16, 16]"
    assert params["train.log_to"] == '["tensorboard", "mlflow"]'


class _SaveCheckpointOf(Callback):
    """Keeps a copy of last.pt as it was when ``epoch`` epochs were done."""

    key = "save_checkpoint_of"

    def __init__(self, run: Path, epoch: int) -> None:
        self.run, self.epoch = run, epoch

    def on_epoch_begin(self, state: TrainState) -> None:
        if state.epoch == self.epoch:
            shutil.copy(self.run / "checkpoints/last.pt", self.run.parent / "early.pt")


def test_a_resumed_run_goes_on_in_the_same_tensorboard_folder_and_mlflow_run(
    in_tmp: Path, tiny: dict
) -> None:
    run = in_tmp / "run"
    config = _tracked(tiny, checkpoint_every=0)
    nntune.train(config, out=run, callbacks=[_SaveCheckpointOf(run, 2)])
    client, first = _mlflow(run)
    old = _history(client, first.info.run_id, "train_loss")
    assert len(old) == 3
    # as if the run had been killed after logging epoch 3 but before its checkpoint
    shutil.copy(in_tmp / "early.pt", run / "checkpoints/last.pt")
    result = nntune.train(None, ["train.epochs=4"], resume=run)
    assert result.summary["epochs_run"] == 4
    rows = _rows(run)
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]

    # TensorBoard: the replayed epoch 3 replaces the old one (purged), epoch 4 follows
    scalars = _scalars(_events(run))
    for key in ("train_loss", "val_loss", "seconds", "lr"):
        assert scalars[key] == [
            (row["epoch"], pytest.approx(row[key], rel=1e-6)) for row in rows
        ], key
    # the old end (epoch 3) is purged with the epochs after the checkpoint
    assert [s for s, _ in scalars["final/test_accuracy"]] == [4]

    # MLflow: the same run, one point per epoch (the replayed epoch is not logged twice)
    client, again = _mlflow(run)
    assert again.info.run_id == first.info.run_id
    assert len(client.search_runs([again.info.experiment_id])) == 1
    assert again.info.status == "FINISHED"
    for key in ("train_loss", "val_loss", "val_accuracy", "lr", "step"):
        want = [(row["epoch"], float(row[key])) for row in rows]
        assert _history(client, again.info.run_id, key) == want, key
    assert _history(client, again.info.run_id, "train_loss")[:3] == old  # resume is exact
    # params cannot change in MLflow: the run keeps the epochs it was started with
    assert again.data.params["train.epochs"] == "3"


def test_an_explicit_mlflow_uri_and_experiment(in_tmp: Path, tiny: dict) -> None:
    store = in_tmp / "elsewhere" / "store.db"
    uri = f"sqlite:///{store}"
    config = _tracked(tiny, log_to=["mlflow"], mlflow_uri=uri, mlflow_experiment="mine")
    nntune.train(config, out="a")
    nntune.train(config, ["seed=1"], out="b")
    assert store.exists()
    for name in ("a", "b"):
        assert not (in_tmp / name / "mlflow.db").exists()
        assert not (in_tmp / name / "tensorboard").exists()  # only mlflow was asked for
        saved = json.loads((in_tmp / name / "tracking.json").read_text())["mlflow"]
        assert saved["tracking_uri"] == uri
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("mine")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["a", "b"]
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    for r in runs:
        rows = _rows(in_tmp / r.info.run_name)
        want = [(row["epoch"], row["val_loss"]) for row in rows]
        assert _history(client, r.info.run_id, "val_loss") == want


def test_only_tensorboard(in_tmp: Path, tiny: dict) -> None:
    nntune.train(_tracked(tiny, log_to="tensorboard"), out="run")  # a bare name is a list of one
    run = in_tmp / "run"
    assert not (run / "mlflow.db").exists() and not (run / "tracking.json").exists()
    scalars = _scalars(_events(run))
    assert [s for s, _ in scalars["train_loss"]] == [1, 2, 3]


def test_a_run_without_a_run_folder_tracks_nothing(in_tmp: Path, tiny: dict) -> None:
    nntune.Trainer(_tracked(tiny), write=False).fit()
    assert list(in_tmp.iterdir()) == []


def test_an_unknown_tracker_exits_2_naming_the_key_and_the_allowed_ones(
    tmp_path: Path, tiny: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", _tracked(tiny, log_to=["tensorboard", "wandb"]))
    result = nntune_in_process(capsys, "train", str(cfg), cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for word in ("train.log_to", "wandb", "tensorboard", "mlflow"):
        assert word in result.stderr, result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("tracker", "module", "package"),
    [
        ("mlflow", "mlflow", "mlflow-skinny"),
        ("tensorboard", "torch.utils.tensorboard", "tensorboard"),
    ],
)
def test_a_missing_package_exits_2_with_the_pip_install_to_run(
    tmp_path: Path,
    tiny: dict,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tracker: str,
    module: str,
    package: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails
    cfg = write_config(tmp_path / "cfg.yaml", _tracked(tiny, log_to=[tracker]))
    result = nntune_in_process(capsys, "train", str(cfg), cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "train.log_to" in result.stderr and f"pip install {package}" in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing written


def test_an_unusable_mlflow_uri_is_a_config_error_before_any_file(in_tmp: Path, tiny: dict) -> None:
    with pytest.raises(ConfigError, match=r"train\.mlflow_uri"):
        nntune.train(_tracked(tiny, mlflow_uri="nosuchscheme://somewhere"), out="run")
    assert not (in_tmp / "run").exists()


def test_a_failed_run_is_a_failed_mlflow_run_with_its_epochs(in_tmp: Path) -> None:
    config = {
        "data": {"dataset": "diabetes"},
        "optimizer": {"name": "sgd", "lr": 1.0e4},
        "train": {"epochs": 5, "batch_size": 16, "threads": 1, "log_to": ["mlflow"]},
    }
    with pytest.raises(nntune.TrainingError):
        nntune.train(config, out="run")
    run = in_tmp / "run"
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    client, mlrun = _mlflow(run)
    assert mlrun.info.status == "FAILED"
    assert mlrun.data.tags["nntune.status"] == "failed"
    assert "optimizer.lr" in mlrun.data.tags["nntune.stop_reason"]
    rows = _rows(run) if (run / "metrics.jsonl").exists() else []  # it may fail in epoch 1
    assert _history(client, mlrun.info.run_id, "step") == [(r["epoch"], r["step"]) for r in rows]
    assert not any(key.startswith("final/") for key in mlrun.data.metrics)  # no final metrics
