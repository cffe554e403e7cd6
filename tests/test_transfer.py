"""Transfer learning: train.init_from (weights matched by name and shape), train.freeze and
train.freeze_until, on real runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

import nntune
from nntune.errors import ConfigError
from nntune.train import Trainer
from nntune.train.callbacks import Callback
from tests.helpers import nntune_in_process, write_config

WINE = {
    "name": "wine",
    "seed": 0,
    "data": {"dataset": "wine"},
    "model": {"arch": "mlp", "hidden": [16, 16]},
    "optimizer": {"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
    "train": {"epochs": 15, "batch_size": 16, "threads": 1},
}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pre") / "wine"
    nntune.train(WINE, out=folder, progress=False)
    return folder


def test_init_from_starts_where_the_pretrained_run_ended(pretrained: Path) -> None:
    short = copy.deepcopy(WINE)
    short["train"]["epochs"] = 1
    scratch = nntune.train(short, write=False, progress=False)
    short["train"]["init_from"] = str(pretrained)
    warm = nntune.train(short, write=False, progress=False)
    report = warm.summary["init_from"]
    assert report["loaded"] == 6 and report["skipped"] == [] and report["new"] == []
    assert report["loaded_parameters"] == 13 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3
    # one epoch from the pretrained weights is far better than one epoch from scratch
    assert warm.summary["val"]["loss"] < 0.5 * scratch.summary["val"]["loss"]


def test_another_input_and_head_keep_the_matching_body(pretrained: Path) -> None:
    """breast_cancer: 30 features and 2 classes; only the hidden 16x16 layer fits."""
    other = {
        "data": {"dataset": "breast_cancer"},
        "model": {"arch": "mlp", "hidden": [16, 16]},
        "train": {"epochs": 1, "threads": 1, "init_from": str(pretrained)},
    }
    trainer = Trainer(other, write=False)
    result = trainer.fit()
    report = result.summary["init_from"]
    assert report["loaded"] == 2  # the hidden layer's weight and bias, not the first bias alone
    skipped = {s["tensor"]: (s["source_shape"], s["shape"]) for s in report["skipped"]}
    assert skipped["1.0.0.weight"] == ([16, 13], [16, 30])
    assert skipped["2.weight"] == ([3, 16], [2, 16])
    assert skipped["1.0.0.bias"] == ([16], [16])  # its weight did not fit


class Snapshots(Callback):
    """The first layer's weights after every epoch."""

    key = "snapshots"

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []

    def on_epoch_end(self, state, record):  # type: ignore[no-untyped-def]
        self.weights.append(state.model.state_dict()["1.0.0.weight"].clone())


def test_frozen_layers_do_not_change_until_they_are_released(pretrained: Path) -> None:
    config = copy.deepcopy(WINE)
    config["train"].update(epochs=4, init_from=str(pretrained), freeze=["1.0"], freeze_until=2)
    snapshots = Snapshots()
    start = torch.load(pretrained / "checkpoints" / "best.pt", weights_only=True)["model"]
    Trainer(config, write=False, callbacks=[snapshots]).fit()
    first = start["1.0.0.weight"]
    # frozen for 2 epochs: not trained, and not decayed by AdamW's weight decay either
    assert torch.equal(snapshots.weights[0], first) and torch.equal(snapshots.weights[1], first)
    assert not torch.equal(snapshots.weights[3], first)  # released at epoch 3


def test_freeze_errors_name_the_pattern_and_the_parameters(tmp_path: Path) -> None:
    config = copy.deepcopy(WINE)
    config["train"].update(epochs=1, freeze=["encoder.*"])
    with pytest.raises(ConfigError, match=r"'encoder\.\*' matches no parameter.*1\.0\.0\.weight"):
        Trainer(config, write=False).fit()
    config["train"]["freeze"] = ["*"]
    with pytest.raises(ConfigError, match="freezes every parameter"):
        Trainer(config, write=False).fit()


def test_init_from_an_unrelated_model_or_a_missing_folder_fails(
    pretrained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conv = {
        "data": {"dataset": "wine"},
        "model": {"arch": "mlp", "hidden": [7]},
        "train": {"epochs": 1, "threads": 1, "init_from": str(pretrained)},
    }
    with pytest.raises(ConfigError, match="no tensor of its model matches"):
        Trainer(conv, write=False).fit()
    write_config(tmp_path / "wine.yaml", {**WINE, "train": {**WINE["train"], "epochs": 1}})
    done = nntune_in_process(capsys, "train", "wine.yaml", "--init-from", "nope", cwd=tmp_path)
    assert done.returncode == 2 and "nope" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_cli_init_from_reports_what_it_loaded(
    pretrained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(tmp_path / "wine.yaml", {**WINE, "train": {**WINE["train"], "epochs": 1}})
    done = nntune_in_process(
        capsys, "train", "wine.yaml", "--init-from", str(pretrained), "--out", "ft",
        "--no-report", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "init     6 tensors (547 parameters) from" in done.stdout
    saved = (tmp_path / "ft" / "config.yaml").read_text()
    assert f"init_from: {pretrained}" in saved  # config.yaml reproduces the run
    assert json.loads((tmp_path / "ft" / "summary.json").read_text())["init_from"]["loaded"] == 6


def test_layer_lr_gives_each_layer_its_own_learning_rate(pretrained: Path) -> None:
    """Discriminative fine-tuning: the body at a tenth of the lr, the head at the full lr;
    the logged lr is the optimizer's own, and decoupled decay follows each group's lr."""
    config = copy.deepcopy(WINE)
    config["train"].update(epochs=1, layer_lr={"1": 0.1})
    result = Trainer(config, write=False).fit()
    assert result.history.records[0].lr == pytest.approx(0.01)
    from nntune.optim import OPTIMIZERS
    from nntune.optim.groups import lr_scales
    from nntune.optim.optimizers import build_optimizer

    model = nntune.load_run(pretrained).model
    scales = lr_scales(model, {"1": 0.1})
    assert set(scales) == {"1.0.0.weight", "1.0.0.bias", "1.1.0.weight", "1.1.0.bias"}
    entry = OPTIMIZERS.get("adamw")
    optimizer = build_optimizer(
        "adamw", entry.parse_options({"lr": 0.01}, "optimizer"), model, scales
    )
    lrs = sorted(group["lr"] for group in optimizer.param_groups)
    assert lrs == pytest.approx([0.001, 0.01])
    assert optimizer.param_groups[0]["lr_scale"] == 1.0  # the unscaled group first


def test_layer_lr_errors(tmp_path: Path) -> None:
    config = copy.deepcopy(WINE)
    config["train"].update(epochs=1, layer_lr={"head.*": 0.1})
    with pytest.raises(ConfigError, match=r"train.layer_lr: 'head\.\*' matches no parameter"):
        Trainer(config, write=False).fit()
    config["train"]["layer_lr"] = {"1": 0.1}
    config["optimizer"] = {"name": "lbfgs"}
    with pytest.raises(ConfigError, match="takes one learning rate for the whole model"):
        Trainer(config, write=False).fit()


def test_decoupled_decay_follows_each_groups_lr() -> None:
    from nntune.optim import WeightDecay

    body, head = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    body.grad, head.grad = torch.zeros(2), torch.zeros(2)
    decay = WeightDecay([body, head], 0.1, mode="decoupled", lr_scales=[0.1, 1.0])
    decay.apply(lr=0.5, lr_factor=1.0, epoch=0)
    torch.testing.assert_close(body.detach(), torch.full((2,), 1 - 0.5 * 0.1 * 0.1))
    torch.testing.assert_close(head.detach(), torch.full((2,), 1 - 0.5 * 0.1))
