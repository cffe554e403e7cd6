"""The training loop: it learns, it is deterministic, and each knob does what it says."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import nntune
from nntune import TrainingError
from nntune.train.checkpoint import load_checkpoint


def _rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("seconds")
    return rows


def test_training_learns_and_writes_the_run_folder(in_tmp: Path, tiny: dict) -> None:
    tiny["train"]["epochs"] = 15
    result = nntune.train(tiny)
    run = result.run_dir
    assert run is not None and run.parent == Path("runs")
    assert run.name.startswith("moons-mlp-")
    assert result.test["accuracy"] > 0.85
    history = result.history
    assert history.values("train_loss")[-1] < history.values("train_loss")[0]
    for name in ("config.yaml", "metrics.jsonl", "summary.json"):
        assert (run / name).is_file()
    summary = json.loads((run / "summary.json").read_text())
    for key in (
        "best_epoch",
        "epochs_run",
        "val",
        "test",
        "seconds",
        "steps_per_second",
        "parameters",
    ):
        assert key in summary
    assert summary["epochs_run"] == 15
    assert set(summary["test"]) >= {"accuracy", "f1", "auc", "loss"}
    rows = _rows(run)
    assert len(rows) == 15
    for key in ("epoch", "step", "lr", "train_loss", "val_loss", "val_accuracy", "grad_norm"):
        assert key in rows[0]
    # checkpoints are plain tensors and containers, written without leftovers
    for name in ("last.pt", "best.pt"):
        assert load_checkpoint(run / "checkpoints" / name)
        torch.load(run / "checkpoints" / name, weights_only=True)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]


def test_same_seed_same_metrics_and_other_seed_differs(in_tmp: Path, tiny: dict) -> None:
    tiny["model"]["dropout"] = 0.2
    tiny["data"]["augment"] = [{"name": "noise", "std": 0.05}]
    a = nntune.train(tiny, out="a").run_dir
    b = nntune.train(tiny, out="b").run_dir
    c = nntune.train(tiny, ["seed=1"], out="c").run_dir
    assert a and b and c
    assert _rows(a) == _rows(b)
    assert _rows(a) != _rows(c)


def test_early_stopping_stops_and_restores_the_best_weights(in_tmp: Path, tiny: dict) -> None:
    # a wide net on 40 noisy samples with a high lr overfits: val_loss rises after a while
    tiny["data"] = {"dataset": "moons", "n_samples": 400, "noise": 0.4, "limit": 40}
    tiny["model"]["hidden"] = [128, 128]
    tiny["optimizer"]["lr"] = 0.03
    tiny["train"].update(epochs=200, batch_size=8, early_stopping={"patience": 5})
    result = nntune.train(tiny)
    summary = result.summary
    assert summary["status"] == "stopped"
    assert summary["epochs_run"] < 200
    val_losses = result.history.values("val_loss")
    best = min(v for v in val_losses if v is not None)
    best_epoch = val_losses.index(best) + 1
    assert summary["epochs_run"] == best_epoch + 5
    assert summary["best_epoch"] == best_epoch
    # the final model is the best epoch's: same validation loss when evaluated again
    assert summary["val"]["loss"] == pytest.approx(best, rel=1e-5)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["engine"]["model"]


def test_gradient_clipping_by_norm_bounds_every_update(in_tmp: Path, tiny: dict) -> None:
    tiny["optimizer"] = {"name": "sgd", "lr": 1.0}
    tiny["train"].update(epochs=1, grad_clip={"norm": 1e-4})
    init = nntune.train(tiny, ["train.epochs=1", "optimizer.lr=1.0e-12"], out="init").run_dir
    clipped = nntune.train(tiny, out="clipped")
    assert init and clipped.run_dir
    before, after = _weights(init), _weights(clipped.run_dir)
    moved = torch.sqrt(sum(((after[k] - before[k]) ** 2).sum() for k in before))
    steps = clipped.summary["steps"]
    assert 0 < moved <= steps * 1.0 * 1e-4 * 1.001
    # without clipping the same run moves much further
    free = nntune.train(tiny, ["train.grad_clip=null"], out="free").run_dir
    assert free
    moved_free = torch.sqrt(sum(((_weights(free)[k] - before[k]) ** 2).sum() for k in before))
    assert moved_free > 100 * moved


def test_gradient_clipping_by_value_bounds_each_element(in_tmp: Path, tiny: dict) -> None:
    tiny["optimizer"] = {"name": "sgd", "lr": 1.0}
    tiny["train"].update(epochs=1, grad_clip={"value": 1e-5})
    init = nntune.train(tiny, ["optimizer.lr=1.0e-12"], out="init").run_dir
    result = nntune.train(tiny, out="clipped")
    assert init and result.run_dir
    before, after = _weights(init), _weights(result.run_dir)
    steps = result.summary["steps"]
    for key in before:
        # float32 rounding of w - 1e-5 at |w| ~ 1 adds up to ~1e-7 per step
        assert (after[key] - before[key]).abs().max() <= steps * (1e-5 + 1e-7)


def test_gradient_accumulation_matches_the_larger_batch(in_tmp: Path, tiny: dict) -> None:
    # 256 training samples: 4 batches of 64 = 8 batches of 32 accumulated in pairs
    tiny["optimizer"] = {"name": "sgd", "lr": 0.1}
    tiny["train"].update(epochs=2, batch_size=64)
    big = nntune.train(tiny, out="big")
    small = nntune.train(tiny, ["train.batch_size=32", "train.accumulate=2"], out="small")
    assert big.run_dir and small.run_dir
    assert big.summary["steps"] == small.summary["steps"] == 8
    wa, wb = _weights(big.run_dir), _weights(small.run_dir)
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)


def test_l1_penalty_makes_weights_sparse_but_spares_biases(in_tmp: Path, tiny: dict) -> None:
    tiny["train"]["epochs"] = 10
    plain = nntune.train(tiny, out="plain").run_dir
    sparse = nntune.train(tiny, ["regularization.l1=0.01"], out="l1").run_dir
    assert plain and sparse

    def small_fraction(weights: dict[str, torch.Tensor], kind: str) -> float:
        values = torch.cat([w.flatten() for k, w in weights.items() if k.endswith(kind)])
        return float((values.abs() < 1e-2).float().mean())

    assert (
        small_fraction(_weights(sparse), "weight") > small_fraction(_weights(plain), "weight") + 0.2
    )
    # biases are not penalised: they are not driven to zero more than without the penalty
    assert small_fraction(_weights(sparse), "bias") < 0.9


def test_l2_penalty_shrinks_the_weight_norm(in_tmp: Path, tiny: dict) -> None:
    tiny["train"]["epochs"] = 10
    plain = nntune.train(tiny, out="plain").run_dir
    decayed = nntune.train(tiny, ["regularization.l2=0.01"], out="l2").run_dir
    assert plain and decayed

    def norm(weights: dict[str, torch.Tensor]) -> float:
        return float(sum((w**2).sum() for k, w in weights.items() if k.endswith("weight")))

    assert norm(_weights(decayed)) < 0.7 * norm(_weights(plain))


def test_schedule_sets_the_lr_each_step(in_tmp: Path, tiny: dict) -> None:
    tiny["schedule"] = {"name": "cosine", "warmup": 0}
    tiny["train"].update(epochs=4)
    result = nntune.train(tiny)
    lrs = result.history.values("lr")
    # the lr logged at an epoch's end is that of its last step: strictly decreasing to ~0
    assert all(a > b for a, b in itertools.pairwise(lrs))
    steps = result.summary["steps"]
    expected_last = 0.01 * 0.5 * (1 + math.cos(math.pi * (steps - 1) / steps))
    assert lrs[-1] == pytest.approx(expected_last, rel=1e-6)


def test_full_batch_gd_takes_one_step_per_epoch(in_tmp: Path, tiny: dict) -> None:
    tiny["optimizer"] = {"name": "gd", "lr": 0.5}
    tiny["train"]["epochs"] = 5
    result = nntune.train(tiny)
    assert result.summary["steps"] == 5


class NanOnce(nn.Module):
    """A small MLP whose 5th training forward pass returns NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls == 5:
                return out * float("nan")
        return out


def test_a_non_finite_loss_skips_the_step_and_training_goes_on(in_tmp: Path, tiny: dict) -> None:
    result = nntune.Trainer(tiny, model=NanOnce()).fit()
    assert result.summary["status"] == "completed"
    assert result.summary["skipped_steps"] == 1
    rows = _rows(result.run_dir)  # type: ignore[arg-type]
    assert [r["skipped_steps"] for r in rows] == [1, 0, 0]
    assert all(r["train_loss"] is not None and math.isfinite(r["train_loss"]) for r in rows)
    assert result.test["accuracy"] > 0.7


class CorruptOnce(NanOnce):
    """On its 5th training forward pass, its weights turn to NaN (as after a bad update)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.calls == 4:
            with torch.no_grad():
                self.net[0].weight.fill_(float("nan"))
        return super().forward(x)


def test_non_finite_weights_are_restored_from_the_start_of_the_epoch(
    in_tmp: Path, tiny: dict
) -> None:
    result = nntune.Trainer(tiny, model=CorruptOnce()).fit()
    assert result.summary["status"] == "completed"
    assert result.summary["skipped_steps"] == 1
    weights = _weights(result.run_dir)  # type: ignore[arg-type]
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert result.test["accuracy"] > 0.7


def test_a_diverging_run_stops_with_a_clear_error(in_tmp: Path) -> None:
    config = {
        "data": {"dataset": "diabetes"},
        "optimizer": {"name": "sgd", "lr": 1.0e4},
        "train": {"epochs": 5, "batch_size": 16, "threads": 1},
    }
    with pytest.raises(TrainingError, match=r"optimizer\.lr"):
        nntune.train(config, out="run")
    summary = json.loads(Path("run/summary.json").read_text())
    assert summary["status"] == "failed"
    assert "non-finite" in summary["stop_reason"] or "diverges" in summary["stop_reason"]


def test_evaluation_chunks_on_a_cpu_are_sized_by_the_sample() -> None:
    from nntune.train.evaluate import eval_batch_size, predict_outputs

    assert eval_batch_size(torch.zeros(10_000, 1, 28, 28)) == 2**17 // 784  # 167 images
    assert eval_batch_size(torch.zeros(10_000, 30)) == 4096  # a table: the most rows
    assert eval_batch_size(torch.zeros(10, 3, 512, 512)) == 64  # large images: the fewest
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 3)
    )
    model.train()
    x = torch.randn(400, 1, 28, 28)
    chunked = predict_outputs(model, x)  # chunks of 167, 167 and 66
    assert model.training  # the mode is restored
    torch.testing.assert_close(chunked, predict_outputs(model, x, batch_size=4096))
