"""Training tricks wired through the engine: weight decay, elastic net, AGC, EMA, SWA, batch-size
rules, mixed precision; and every registered optimizer, schedule and loss trains and resumes
exactly."""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

import nntune
from nntune.errors import ConfigError
from nntune.losses import LOSSES
from nntune.optim import OPTIMIZERS, SCHEDULES, WeightDecay, adaptive_clip
from nntune.records import EpochRecord
from nntune.train.callbacks.base import Callback, TrainState
from nntune.train.checkpoint import load_checkpoint
from nntune.train.engine import native_bf16

# --- exact resume of every registered name ----------------------------------------------------


class Crash(Exception):
    pass


class CrashAt(Callback):
    """Dies at the start of epoch ``epoch`` (0-based), after the previous epoch's checkpoint."""

    key = "crash"

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_begin(self, state: TrainState) -> None:
        if state.epoch == self.epoch:
            raise Crash


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("seconds")
    return rows


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["engine"]["model"]


def assert_resume_is_exact(config: dict[str, Any], epochs: int = 3) -> None:
    """A run that dies after epoch ``epochs - 1`` and is resumed ends like an uninterrupted one."""
    config = copy.deepcopy(config)
    config["train"].update(epochs=epochs, checkpoint_every=0)
    straight = nntune.train(config, out="straight")
    with pytest.raises(Crash):
        nntune.train(config, out="crashed", callbacks=[CrashAt(epochs - 1)])
    resumed = nntune.train(config, resume="crashed")
    assert straight.run_dir and resumed.run_dir
    assert len(_rows(straight.run_dir)) == epochs
    assert _rows(resumed.run_dir) == _rows(straight.run_dir)
    a, b = _weights(straight.run_dir), _weights(resumed.run_dir)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert resumed.summary["test"] == straight.summary["test"]


@pytest.mark.parametrize("name", OPTIMIZERS.list())
def test_every_optimizer_trains_and_resumes_exactly(in_tmp: Path, tiny: dict, name: str) -> None:
    tiny["optimizer"] = {"name": name}
    assert_resume_is_exact(tiny)


@pytest.mark.parametrize("name", SCHEDULES.list())
def test_every_schedule_trains_and_resumes_exactly(in_tmp: Path, tiny: dict, name: str) -> None:
    tiny["schedule"] = {"name": name, "warmup": 2}
    assert_resume_is_exact(tiny)


@pytest.mark.parametrize("name", LOSSES.list())
def test_every_loss_trains_and_resumes_exactly(in_tmp: Path, tiny: dict, name: str) -> None:
    tiny["loss"] = name
    if LOSSES.get(name).builder.task == "regression":
        tiny["data"] = {"dataset": "diabetes"}
    assert_resume_is_exact(tiny)


@pytest.mark.parametrize(
    "train",
    [
        {"ema": {"decay": 0.9}},
        {"swa": {"start": 2, "lr": 0.005}},
        {"batch_schedule": {"factor": 2, "every": 1, "max": 128, "lr_scaling": "sqrt"}},
        {"random_batch_size": [8, 64]},
        {"grad_clip": {"agc": 0.05}},
        {"precision": "bf16"},
    ],
    ids=["ema", "swa", "batch_schedule", "random_batch_size", "agc", "bf16"],
)
def test_training_tricks_resume_exactly(in_tmp: Path, tiny: dict, train: dict) -> None:
    tiny["train"].update(train)
    tiny["optimizer"]["weight_decay"] = 0.01
    tiny["model"]["norm"] = "batch"
    assert_resume_is_exact(tiny, epochs=4)


# --- weight decay -----------------------------------------------------------------------------


def _toy() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 2))
    x = torch.randn(96, 3)
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).long()
    return model, (x, y)


def _fit_full_batch(optimizer: dict[str, Any], epochs: int = 4) -> tuple[nn.Module, nn.Module]:
    """(model trained by nntune with one full batch per step, its initial copy)."""
    model, (x, y) = _toy()
    initial = copy.deepcopy(model)
    config = {
        "data": {"preprocess": []},
        "optimizer": optimizer,
        "train": {"epochs": epochs, "batch_size": len(x), "threads": 1},
    }
    nntune.Trainer(
        config,
        model=model,
        data=(x, y),
        val_data=(x[:8], y[:8]),
        test_data=(x[:8], y[:8]),
        write=False,
        progress=False,
    ).fit()
    return model, initial


def _reference(initial: nn.Module, make: Any, steps: int) -> nn.Module:
    model, (x, y) = _toy()
    model.load_state_dict(initial.state_dict())
    weights = [p for n, p in model.named_parameters() if p.dim() > 1]
    others = [p for n, p in model.named_parameters() if p.dim() <= 1]
    optimizer = make(weights, others)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def _assert_same(a: nn.Module, b: nn.Module) -> None:
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6, msg=name)


def test_coupled_weight_decay_is_torch_sgds_l2_on_weights_only(in_tmp: Path) -> None:
    trained, initial = _fit_full_batch({"name": "sgd", "lr": 0.5, "weight_decay": 0.1})
    reference = _reference(
        initial,
        lambda w, o: torch.optim.SGD(
            [{"params": w, "weight_decay": 0.1}, {"params": o, "weight_decay": 0.0}], lr=0.5
        ),
        steps=4,
    )
    _assert_same(trained, reference)
    undecayed, _ = _fit_full_batch({"name": "sgd", "lr": 0.5})
    assert not torch.allclose(undecayed[0].weight, trained[0].weight)


def test_decoupled_weight_decay_is_torch_adamw_on_weights_only(in_tmp: Path) -> None:
    trained, initial = _fit_full_batch({"name": "adamw", "lr": 0.01, "weight_decay": 0.5})
    reference = _reference(
        initial,
        lambda w, o: torch.optim.AdamW(
            [{"params": w, "weight_decay": 0.5}, {"params": o, "weight_decay": 0.0}], lr=0.01
        ),
        steps=4,
    )
    _assert_same(trained, reference)
    # the same option on adam means coupled L2 (torch.optim.Adam's weight_decay)
    coupled, initial = _fit_full_batch({"name": "adam", "lr": 0.01, "weight_decay": 0.5})
    reference = _reference(
        initial,
        lambda w, o: torch.optim.Adam(
            [{"params": w, "weight_decay": 0.5}, {"params": o, "weight_decay": 0.0}], lr=0.01
        ),
        steps=4,
    )
    _assert_same(coupled, reference)


def test_weight_decay_schedules() -> None:
    w = nn.Parameter(torch.ones(2, 2))
    for schedule, expected in (
        ("constant", 0.1),
        ("follow_lr", 0.1 * 0.25),
        ("exponential", 0.1 * 0.5**3),
    ):
        decay = WeightDecay([w], 0.1, mode="decoupled", schedule=schedule, gamma=0.5)
        assert decay.value(lr_factor=0.25, epoch=3) == pytest.approx(expected)
    decoupled = WeightDecay([w], 0.1, mode="decoupled", schedule="follow_lr")
    decoupled.apply(lr=0.5, lr_factor=0.25, epoch=0)  # no gradient (frozen): no decay (AdamW)
    torch.testing.assert_close(w.detach(), torch.ones(2, 2))
    w.grad = torch.zeros(2, 2)
    decoupled.apply(lr=0.5, lr_factor=0.25, epoch=0)  # w ← w (1 − lr·wd_t)
    torch.testing.assert_close(w.detach(), torch.full((2, 2), 1 - 0.5 * 0.025))
    w.grad = torch.zeros(2, 2)
    WeightDecay([w], 0.2, mode="coupled").apply(lr=0.5, lr_factor=1.0, epoch=0)  # g ← g + wd·w
    torch.testing.assert_close(w.grad, 0.2 * w.detach())


def test_elastic_net_is_l1_plus_l2(in_tmp: Path, tiny: dict) -> None:
    a = nntune.train(
        tiny, {"regularization.elastic_net": 0.02, "regularization.l1_ratio": 0.25}, out="enet"
    )
    b = nntune.train(tiny, {"regularization.l1": 0.005, "regularization.l2": 0.015}, out="l1l2")
    assert a.run_dir and b.run_dir
    assert _rows(a.run_dir) == _rows(b.run_dir)


# --- adaptive gradient clipping ---------------------------------------------------------------


def test_adaptive_clipping_bounds_each_units_gradient_relative_to_its_weights() -> None:
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(6, 4))
    w.grad = torch.randn(6, 4) * torch.tensor([0.001, 0.01, 0.1, 1.0, 10.0, 100.0])[:, None]
    before = w.grad.clone()
    adaptive_clip([w], clipping=0.05)
    w_norm = w.detach().norm(dim=1)
    g_norm = w.grad.norm(dim=1)
    limit = 0.05 * w_norm
    assert torch.all(g_norm <= limit * (1 + 1e-5))
    small = before.norm(dim=1) <= limit
    assert small.any() and (~small).any()
    torch.testing.assert_close(w.grad[small], before[small])  # short units are untouched
    # clipped units keep their direction
    cosine = nn.functional.cosine_similarity(w.grad[~small], before[~small], dim=1)
    torch.testing.assert_close(cosine, torch.ones_like(cosine))


# --- weight averages --------------------------------------------------------------------------


class RecordWeights(Callback):
    key = "record_weights"

    def __init__(self) -> None:
        self.after_steps: list[dict[str, torch.Tensor]] = []
        self.after_epochs: list[dict[str, torch.Tensor]] = []

    def on_step_end(self, state: TrainState) -> None:
        self.after_steps.append(copy.deepcopy(state.model.state_dict()))

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        self.after_epochs.append(copy.deepcopy(state.model.state_dict()))
        return None


def test_ema_is_the_exponential_average_and_is_what_validation_measures(
    in_tmp: Path, tiny: dict
) -> None:
    tiny["train"]["ema"] = {"decay": 0.9, "warmup": False}
    recorder = RecordWeights()
    trainer = nntune.Trainer(tiny, callbacks=[recorder], progress=False)
    result = trainer.fit()
    expected = {k: v.clone() for k, v in recorder.after_steps[0].items()}
    for weights in recorder.after_steps[1:]:
        for k in expected:
            if expected[k].is_floating_point():
                expected[k] = 0.9 * expected[k] + 0.1 * weights[k]
    final = trainer.model.state_dict()
    for k in expected:
        if expected[k].is_floating_point():
            torch.testing.assert_close(final[k], expected[k], rtol=1e-4, atol=1e-6)
    # the trained (non-averaged) weights differ: the summary is about the average
    key = next(k for k, v in final.items() if v.dim() == 2)
    assert not torch.allclose(recorder.after_steps[-1][key], final[key])
    assert trainer.bundle is not None
    x_val, y_val = trainer.bundle.x_val, trainer.bundle.y_val
    assert x_val is not None and y_val is not None
    with torch.no_grad():
        val_loss = nn.functional.cross_entropy(trainer.model(x_val), y_val)
    assert result.history.values("val_loss")[-1] == pytest.approx(float(val_loss), rel=1e-5)
    assert result.summary["val"]["loss"] == pytest.approx(float(val_loss), rel=1e-5)


def test_swa_averages_the_epochs_from_its_start_at_the_swa_lr(in_tmp: Path, tiny: dict) -> None:
    tiny["optimizer"] = {"name": "sgd", "lr": 0.1}
    tiny["train"].update(epochs=6, swa={"start": 3, "lr": 0.02, "anneal_epochs": 1})
    recorder = RecordWeights()
    trainer = nntune.Trainer(tiny, callbacks=[recorder], progress=False)
    result = trainer.fit()
    averaged = recorder.after_epochs[2:]  # epochs 3..6 (1-based)
    final = trainer.model.state_dict()
    for k in final:
        mean = torch.stack([w[k] for w in averaged]).mean(dim=0)
        torch.testing.assert_close(final[k], mean, rtol=1e-5, atol=1e-6)
    lrs = result.history.values("lr")
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[3:] == pytest.approx([0.02] * 3)  # annealed over epoch 3, then held


def test_swa_recomputes_batchnorm_statistics_for_the_averaged_weights(
    in_tmp: Path, tiny: dict
) -> None:
    tiny["model"]["norm"] = "batch"
    tiny["train"].update(epochs=5, swa={"start": 0.5})
    trainer = nntune.Trainer(tiny, progress=False)
    trainer.fit()
    model, bundle = trainer.model, trainer.bundle
    assert model is not None and bundle is not None
    norm = next(m for m in model.modules() if isinstance(m, nn.BatchNorm1d))
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    with torch.no_grad():
        inputs = first(bundle.x_train)
    torch.testing.assert_close(norm.running_mean, inputs.mean(dim=0), rtol=1e-3, atol=1e-3)


# --- batch size rules -------------------------------------------------------------------------


def test_batch_schedule_grows_the_batch_and_scales_the_lr(in_tmp: Path, tiny: dict) -> None:
    # moons 400 → 256 training samples
    tiny["optimizer"] = {"name": "sgd", "lr": 0.1}
    tiny["train"].update(
        epochs=4,
        batch_size=32,
        batch_schedule={"factor": 2, "every": 1, "max": 128, "lr_scaling": "linear"},
    )
    result = nntune.train(tiny)
    steps = result.history.values("step")
    per_epoch = [steps[0]] + [b - a for a, b in itertools.pairwise(steps)]
    assert per_epoch == [8, 4, 2, 2]  # 32, 64, 128, 128 (capped)
    assert result.history.values("lr") == pytest.approx([0.1, 0.2, 0.4, 0.4])


def test_random_batch_size_draws_sizes_in_range_reproducibly(in_tmp: Path, tiny: dict) -> None:
    sizes: list[int] = []

    class Sizes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.training:
                sizes.append(len(x))
            return self.net(x)

    tiny["train"].update(epochs=3, random_batch_size=[10, 50])
    nntune.train(tiny, model=Sizes(), write=False)
    first = list(sizes)
    sizes.clear()
    nntune.train(tiny, model=Sizes(), write=False)
    assert sizes == first
    assert len(set(first)) > 5
    assert all(10 <= s <= 50 for s in first[:-1])  # the last batch of an epoch may be smaller
    assert sum(first) == 3 * 256


def test_bf16_autocast_trains_on_cpu(in_tmp: Path, tiny: dict) -> None:
    tiny["train"]["epochs"] = 10
    result = nntune.train(tiny, {"train.precision": "bf16"})
    assert result.test["accuracy"] > 0.8
    assert math.isfinite(result.history.values("train_loss")[-1])


def test_precision_auto_is_bf16_only_where_the_cpu_has_bf16_instructions(
    in_tmp: Path, tiny: dict
) -> None:
    result = nntune.train(tiny, {"train.precision": "auto"})
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["precision"] == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["train"]["precision"] == (
        "auto"
    )
    # L-BFGS re-evaluates its closure without autocast: auto is fp32 there, not an error
    lbfgs = nntune.train(tiny, {"train.precision": "auto", "optimizer": "lbfgs"}, write=False)
    assert math.isfinite(lbfgs.history.values("train_loss")[-1])


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"optimizer": "lbfgs", "train.grad_clip": {"norm": 1.0}}, ["train.grad_clip", "lbfgs"]),
        ({"optimizer": "newton", "train.accumulate": 2}, ["train.accumulate", "newton"]),
        ({"train.precision": "fp16"}, ["fp16", "CUDA", "bf16"]),
        ({"train.random_batch_size": [8, 4]}, ["random_batch_size", "low <= high"]),
        ({"train.random_batch_size": [8, 16], "train.accumulate": 2}, ["random_batch_size"]),
        ({"optimizer": "gd", "train.batch_schedule": {"factor": 2}}, ["gd", "batch_schedule"]),
        ({"train.ema": {"decay": 0.9}, "train.swa": {"start": 2}}, ["ema", "swa"]),
        ({"train.grad_clip": {"norm": 1.0, "agc": 0.01}}, ["agc"]),
        ({"optimizer": {"name": "sgd", "decay": "both"}}, ["decay", "coupled"]),
    ],
)
def test_conflicting_or_bad_trick_settings_are_config_errors(
    in_tmp: Path, tiny: dict, overrides: dict, words: list[str]
) -> None:
    with pytest.raises(ConfigError) as err:
        nntune.train(tiny, overrides)
    for word in words:
        assert word in str(err.value)
    assert not Path("runs").exists()
