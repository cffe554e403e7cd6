"""The doctor: detectors on synthetic runs, the probe on real modules, diagnosis of the example
configs (examples/doctor/), a verified repair end to end, the CLI's JSON and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

import nntune
from nntune.diagnose.detectors import DETECTORS, KINDS, RunFacts, detect
from nntune.diagnose.probe import Probe, ProbeStats
from nntune.doctor.doctor import doctor
from tests.helpers import nntune_in_process, write_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "doctor"
CONTRACT_KINDS = {
    "vanishing_gradients",
    "exploding_gradients",
    "dying_relu",
    "saturated_activations",
    "oscillating_loss",
    "slow_convergence",
    "overfitting",
    "underfitting",
    "nan_loss",
    "data_issue",
}


# --- synthetic runs -------------------------------------------------------------------------------


def rows(
    train: list[float],
    val: list[float] | None = None,
    train_acc: list[float] | None = None,
    val_acc: list[float] | None = None,
    grad_norm: list[float] | None = None,
) -> list[dict[str, Any]]:
    """metrics.jsonl rows with the given per-epoch series."""
    history = []
    for i, loss in enumerate(train):
        row: dict[str, Any] = {"epoch": i, "train_loss": loss, "skipped_steps": 0}
        row["val_loss"] = val[i] if val else None
        row["grad_norm"] = grad_norm[i] if grad_norm else 1.0
        if train_acc:
            row["train_accuracy"] = train_acc[i]
        if val_acc:
            row["val_accuracy"] = val_acc[i]
        history.append(row)
    return history


def facts(history: list[dict[str, Any]], **extra: Any) -> RunFacts:
    extra.setdefault("n_classes", 10)
    return RunFacts(history=history, epochs=len(history), **extra)


def run(kind: str, run_facts: RunFacts) -> dict[str, Any] | None:
    found = DETECTORS.get(kind).builder(run_facts)
    return None if found is None else found.to_json()


def decaying(n: int, start: float = 2.3, end: float = 0.05) -> list[float]:
    """A healthy training loss: fast at first, then flattening."""
    return [end + (start - end) * math.exp(-i / 3) for i in range(n)]


HEALTHY_TRAIN = decaying(20)
HEALTHY = facts(
    rows(
        HEALTHY_TRAIN,
        val=[x + 0.05 for x in HEALTHY_TRAIN],
        train_acc=[min(0.99, 0.3 + 0.05 * i) for i in range(20)],
        val_acc=[min(0.97, 0.3 + 0.05 * i) for i in range(20)],
    ),
    probe=ProbeStats(
        samples=20,
        first_grad_norm=0.3,
        last_grad_norm=0.4,
        grad_ratio=0.75,
        max_grad_norm=0.9,
        dead_relu_fraction=0.05,
        saturated_fraction=0.1,
    ),
    data={"features": 8, "unscaled_features": 0, "class_imbalance": 1.1},
)


def test_kinds_are_the_contracts() -> None:
    assert set(KINDS) == CONTRACT_KINDS and len(KINDS) == 10
    assert set(DETECTORS) == CONTRACT_KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_every_detector_is_silent_on_a_healthy_run(kind: str) -> None:
    assert run(kind, HEALTHY) is None


def test_detect_lists_causes_first_and_marks_their_consequences() -> None:
    sick = facts(
        rows([2.3, 2.3, 2.3, 2.3], grad_norm=[1.0] * 4),
        probe=ProbeStats(grad_ratio=1e-6, first_grad_norm=1e-7, last_grad_norm=0.1),
        data={"features": 4, "unscaled_features": 2, "max_abs_mean": 800.0, "max_std": 300.0},
        failure="the training loss was non-finite (NaN/inf) at 10 steps in a row",
    )
    found = detect(sick)
    kinds = [f.kind for f in found]
    causes = [f.kind for f in found if not f.consequence_of]
    after = [f.kind for f in found if f.consequence_of]
    assert "vanishing_gradients" in causes and "data_issue" in causes
    # unscaled inputs explain the NaN; both explain a model that does not learn
    consequence = {f.kind: f.consequence_of for f in found if f.consequence_of}
    assert consequence["nan_loss"] == ["data_issue"]
    assert kinds == causes + after
    assert causes == [k for k in KINDS if k in causes] and after == [k for k in KINDS if k in after]
    assert detect(HEALTHY) == []


def test_nan_loss() -> None:
    history = rows([2.3, float("nan")])
    assert run("nan_loss", facts(history))["severity"] == "high"
    skipped = rows(HEALTHY_TRAIN)
    skipped[3]["skipped_steps"] = 2
    assert run("nan_loss", facts(skipped))["evidence"]["skipped_steps"] == 2


def test_exploding_gradients() -> None:
    # the gradient norm grows by orders of magnitude while the loss gets worse
    growth = facts(rows([2.0, 1.5, 1.2, 3.0], grad_norm=[1.0, 2.0, 50.0, 5e3]))
    assert "grad_norm_growth" in run("exploding_gradients", growth)["evidence"]
    # the loss jumps by orders of magnitude (a divergence)
    jump = facts(rows([2.0, 1.0, 0.8, 5e3]))
    assert "train_loss_jump" in run("exploding_gradients", jump)["evidence"]
    # a 10x growth is enough when the run then dies of a non-finite loss
    died = facts(
        rows([0.7], grad_norm=[0.5]),
        probe=ProbeStats(max_grad_norm=20.0),
        failure="the training loss was non-finite (NaN/inf) at 10 steps in a row",
    )
    assert run("exploding_gradients", died) is not None
    # non-finite gradients seen by the probe
    assert run("exploding_gradients", facts(rows([1.0]), probe=ProbeStats(nonfinite_grads=3)))
    # steps that replace the weights (huge from the first step: no growth to see)
    huge = facts(rows([2.3]), probe=ProbeStats(update_ratio=2.0))
    assert run("exploding_gradients", huge)["evidence"]["update_ratio"] == 2.0
    # an aggressive healthy run's steps (momentum lr 0.1 on digits: 0.013)
    assert (
        run("exploding_gradients", facts(rows(HEALTHY_TRAIN), probe=ProbeStats(update_ratio=0.015)))
        is None
    )
    # a high first-epoch loss that then falls (unscaled inputs) is a bad start, not a blow-up
    bad_start = facts(rows([30.0, 4.0, 1.2, 0.5, 0.3], val=[0.3] * 5), n_classes=2)
    assert run("exploding_gradients", bad_start) is None
    # a blip near zero loss is no explosion
    blip = facts(rows([0.8, 0.05, 0.001, 0.0002, 0.02, 0.001]))
    assert run("exploding_gradients", blip) is None


def test_vanishing_gradients() -> None:
    probe = ProbeStats(grad_ratio=1e-6, first_grad_norm=1e-7, last_grad_norm=0.1)
    found = run("vanishing_gradients", facts(rows(HEALTHY_TRAIN), probe=probe))
    assert found["severity"] == "high" and found["evidence"]["first_last_grad_ratio"] == 1e-6
    mild = ProbeStats(grad_ratio=3e-3, first_grad_norm=1e-4, last_grad_norm=0.03)
    assert run("vanishing_gradients", facts(rows(HEALTHY_TRAIN), probe=mild))["severity"] == (
        "medium"
    )
    # dead ReLUs pass no gradient: that is dying_relu, not depth
    dead = ProbeStats(grad_ratio=0.0, first_grad_norm=0.0, dead_relu_fraction=1.0)
    assert run("vanishing_gradients", facts(rows(HEALTHY_TRAIN), probe=dead)) is None


def test_dying_relu_and_saturated_activations() -> None:
    dead = facts(rows(HEALTHY_TRAIN), probe=ProbeStats(dead_relu_fraction=0.95))
    assert run("dying_relu", dead)["severity"] == "high"
    some_dead = facts(rows(HEALTHY_TRAIN), probe=ProbeStats(dead_relu_fraction=0.3))
    assert run("dying_relu", some_dead) is None
    flat = facts(rows(HEALTHY_TRAIN), probe=ProbeStats(saturated_fraction=0.9))
    assert run("saturated_activations", flat)["evidence"]["saturated_fraction"] == 0.9
    some = facts(rows(HEALTHY_TRAIN), probe=ProbeStats(saturated_fraction=0.45))
    assert run("saturated_activations", some) is None


def test_oscillating_loss() -> None:
    bouncing = [2.3, 1.0, 0.6, 0.9, 0.5, 1.0, 0.55, 1.1, 0.5, 0.95, 0.6, 1.0]
    found = run("oscillating_loss", facts(rows(bouncing)))
    assert found["evidence"]["share_of_epochs_loss_rose"] >= 0.4
    # minibatch noise near zero loss: large relative changes, tiny next to the progress made
    noisy_end = [2.3, 0.5, 0.1, 0.05, 0.04, 0.06, 0.03, 0.05, 0.04, 0.06, 0.035, 0.05]
    assert run("oscillating_loss", facts(rows(noisy_end))) is None
    # too few epochs are no evidence
    assert run("oscillating_loss", facts(rows(bouncing[:5]))) is None


def test_slow_convergence() -> None:
    crawling = [2.33 - 0.004 * i for i in range(10)]
    found = run("slow_convergence", facts(rows(crawling)))
    assert found["evidence"]["relative_loss_drop"] < 0.05
    # a noisy training mean, but the validation loss walks down a straight line
    noisy_train = [1.08, 1.079, 1.081, 1.078, 1.08, 1.077]
    noisy = facts(rows(noisy_train, val=[1.085 - 0.001 * i for i in range(6)]), n_classes=3)
    assert run("slow_convergence", noisy)["evidence"]["loss"] == "val_loss"
    # converged within the first epoch (its mean is already far below log K): not slow
    fast = facts(rows([0.30 - 0.005 * i for i in range(10)]), n_classes=2)
    assert run("slow_convergence", fast) is None


def test_overfitting() -> None:
    n = 30
    train = decaying(n, 0.7, 0.001)
    val = [0.5 - 0.02 * i if i < 6 else 0.38 + 0.05 * (i - 6) for i in range(n)]
    train_acc = [min(1.0, 0.7 + 0.03 * i) for i in range(n)]
    history = rows(train, val=val, train_acc=train_acc, val_acc=[0.85] * 6 + [0.78] * (n - 6))
    found = run("overfitting", facts(history, n_classes=2))
    assert found["evidence"]["train_val_accuracy_gap"] > 0.1
    assert found["evidence"]["best_epoch"] == 7  # 1-based
    # the validation loss rises, but the model stays accurate (over-confident, not overfit)
    accurate = rows(train, val=val, train_acc=[1.0] * n, val_acc=[0.97] * n)
    assert run("overfitting", facts(accurate, n_classes=2)) is None


def test_underfitting() -> None:
    n = 20
    plateau = [0.69 - 0.08 * (1 - math.exp(-i / 2)) for i in range(n)]
    history = rows(plateau, val=plateau, train_acc=[0.6] * n, val_acc=[0.6] * n)
    found = run("underfitting", facts(history, n_classes=2))
    assert found["evidence"]["train_accuracy"] == 0.6
    # mixup lowers the training accuracy of a model that generalises well
    mixup = rows(plateau, val=plateau, train_acc=[0.5] * n, val_acc=[0.9] * n)
    assert run("underfitting", facts(mixup, n_classes=2)) is None
    # still falling steadily: slow convergence, not a capacity limit
    crawling = [2.33 - 0.004 * i for i in range(n)]
    slow = rows(crawling, val=crawling, train_acc=[0.1] * n, val_acc=[0.1] * n)
    assert run("underfitting", facts(slow)) is None


def test_data_issue() -> None:
    def data(**numbers: float) -> RunFacts:
        return facts(rows(HEALTHY_TRAIN), data={"features": 13, **numbers})

    raw = data(unscaled_features=4, max_abs_mean=738.0, max_std=311.0)
    assert run("data_issue", raw)["severity"] == "high"
    assert run("data_issue", data(class_imbalance=25.0))["evidence"]["class_imbalance"] == 25
    assert run("data_issue", data(duplicate_fraction=0.3)) is not None
    assert run("data_issue", data(nonfinite_values=7)) is not None
    # a few near-constant border pixels after min-max scaling are no data issue...
    assert run("data_issue", data(unscaled_features=2, max_abs_mean=0.7, max_std=0.4)) is None
    # ...but inputs that are all far too small are
    assert run("data_issue", data(unscaled_features=13, max_abs_mean=0.003, max_std=0.05))
    assert run("data_issue", data(constant_features=2)) is None


# --- the probe ----------------------------------------------------------------------------------


def test_probe_sees_dead_relus() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(4, 16)
    with torch.no_grad():
        layer.bias.fill_(-10.0)
    model = nn.Sequential(layer, nn.ReLU(), nn.Linear(16, 2))
    probe = Probe(model)
    model(torch.randn(64, 4))
    assert probe.stats().dead_relu_fraction == pytest.approx(1.0)
    probe.close()


def test_probe_sees_saturated_tanh_and_sigmoid() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 16), nn.Sigmoid())
    probe = Probe(model)
    model(torch.randn(64, 4) * 1000.0)
    assert probe.stats().saturated_fraction > 0.9
    probe.close()
    quiet = Probe(model)
    model(torch.randn(64, 4) * 0.01)
    assert quiet.stats().saturated_fraction < 0.1
    quiet.close()


def test_probe_reads_first_and_last_layer_gradient_norms() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    probe = Probe(model)
    loss = nn.functional.cross_entropy(model(torch.randn(32, 4)), torch.randint(0, 3, (32,)))
    loss.backward()
    probe.after_backward(0)
    stats = probe.stats()
    first, last = float(model[0].weight.grad.norm()), float(model[2].weight.grad.norm())
    assert stats.first_grad_norm == pytest.approx(first)
    assert stats.last_grad_norm == pytest.approx(last)
    assert stats.grad_ratio == pytest.approx(first / last)
    assert stats.layers == ["0.weight", "2.weight"] and stats.samples == 1
    probe.close()


def test_probe_ignores_eval_mode_forwards_and_removes_its_hooks() -> None:
    layer = nn.Linear(4, 16)
    with torch.no_grad():
        layer.bias.fill_(-10.0)
    model = nn.Sequential(layer, nn.ReLU(), nn.Tanh())
    probe = Probe(model)
    model.eval()
    model(torch.randn(64, 4) * 1000.0)  # evaluation: not training's activations
    stats = probe.stats()
    assert stats.dead_relu_fraction is None and stats.saturated_fraction is None
    probe.close()
    model.train()
    model(torch.randn(64, 4))
    assert probe.stats().dead_relu_fraction is None  # closed: no hook left


# --- the doctor on the example configs -----------------------------------------------------------


def test_every_kind_has_a_sick_example_and_there_are_healthy_controls() -> None:
    names = {p.stem for p in EXAMPLES.glob("*.yaml")}
    assert names >= CONTRACT_KINDS
    assert len([n for n in names if n.startswith("healthy_")]) >= 3
    for path in EXAMPLES.glob("*.yaml"):
        assert path.read_text().startswith("# "), f"{path.name}: say what it shows"
        assert yaml.safe_load(path.read_text())["train"]["threads"] == 1


SICK = sorted(p.stem for p in EXAMPLES.glob("*.yaml") if not p.stem.startswith("healthy_"))
HEALTHY_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("healthy_*.yaml"))


@pytest.mark.parametrize("kind", SICK)
def test_doctor_finds_the_problem_of_each_sick_example(kind: str, tmp_path: Path) -> None:
    report = doctor(EXAMPLES / f"{kind}.yaml", out=tmp_path / "doctor")
    assert report["healthy"] is False
    found = {p["kind"]: p for p in report["problems"]}
    assert kind in found, f"{kind} not found; found {sorted(found)}"
    assert found[kind]["evidence"] and found[kind]["remedies"]
    assert json.loads((tmp_path / "doctor" / "doctor.json").read_text()) == report  # --json


@pytest.mark.parametrize("name", HEALTHY_EXAMPLES)
def test_doctor_finds_nothing_in_a_healthy_example(name: str, tmp_path: Path) -> None:
    report = doctor(EXAMPLES / f"{name}.yaml", out=tmp_path / "doctor")
    assert report["problems"] == [] and report["healthy"] is True
    assert report["probe"]["samples"] > 0


# --- the command line ---------------------------------------------------------------------------


def test_repair_keeps_a_verified_remedy_and_writes_a_config_that_trains(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "doc"
    config = str(EXAMPLES / "data_issue.yaml")
    result = nntune_in_process(
        capsys, "doctor", config, "--repair", "--json", "--out", str(out), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout is the JSON document only
    # the contract's shape
    assert report["healthy"] is False
    for problem in report["problems"]:
        assert problem["kind"] in CONTRACT_KINDS
        assert problem["severity"] in ("high", "medium", "low")
        assert isinstance(problem["evidence"], dict) and problem["evidence"]
        assert isinstance(problem["remedies"], list)
    assert report["probe"]["epochs"] == 30 and report["probe"]["seconds"] > 0
    repair = report["repair"]
    assert set(repair) >= {"applied", "before", "after", "improved", "config"}
    # the kept remedy: verified on two seeds, better than the original
    assert repair["improved"] is True
    assert repair["applied"][0]["kind"] == "data_issue"
    assert repair["applied"][0]["changes"] == {"data.preprocess": ["standardize"]}
    before, after = repair["before"]["val_accuracy"], repair["after"]["val_accuracy"]
    assert after > before + 0.1
    repaired = Path(repair["config"])
    assert repaired == out / "repaired.yaml" and repaired.exists()
    assert (out / "doctor.json").exists()
    retrained = nntune.train(repaired, write=False, progress=False)
    assert retrained.val["accuracy"] > before


def test_a_repair_no_better_than_predicting_the_mean_is_not_kept(tmp_path: Path) -> None:
    """A diverged regression that trains after clipping, but 2 epochs of a [8] MLP leave it far
    worse than predicting the training mean: it does not count as repaired."""
    overrides = ["train.epochs=2", "train.batch_size=128", "model.hidden=[8]"]
    report = doctor(EXAMPLES / "nan_loss.yaml", overrides, repair=True, out=tmp_path / "doc")
    repair = report["repair"]
    trivial = repair["trivial"]["val_rmse"]
    assert 50 < trivial < 100  # diabetes' targets: ~77 around their mean
    trained = [step for step in repair["tried"] if step.get("after") is not None]
    assert trained, "a remedy made the run finite"
    for step in trained:
        assert step["after"] > trivial and step["beats_trivial"] is False
        assert step["kept"] is False
    assert repair["improved"] is False and repair["config"] is None


def test_trivial_scores_are_the_majority_class_and_the_mean() -> None:
    import numpy as np

    from nntune.metrics import trivial_score

    labels = np.array([0, 1, 1, 2, 1])
    assert trivial_score("classification", labels, np.array([1, 1, 0, 2])) == 0.5
    targets = np.array([[1.0], [3.0]])
    assert trivial_score("regression", targets, np.array([[2.0], [4.0]])) == pytest.approx(
        math.sqrt(2.0)
    )
    # no training targets (a user's Dataset): the evaluated part's own majority
    assert trivial_score("classification", np.array([]), np.array([3, 3, 1])) == pytest.approx(
        2 / 3
    )


def test_diagnosis_json_has_no_repair_block(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = str(EXAMPLES / "healthy_wine.yaml")
    args = ("doctor", config, "--json", "--epochs", "3", "--out", str(tmp_path / "d"))
    result = nntune_in_process(capsys, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "repair" not in report and report["probe"]["epochs"] == 3
    assert isinstance(report["healthy"], bool) and isinstance(report["problems"], list)


def test_train_with_doctor_puts_the_findings_in_the_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny: dict
) -> None:
    tiny["train"]["doctor"] = True
    config = write_config(tmp_path / "cfg.yaml", tiny)
    run_dir = tmp_path / "run"
    args = ("train", str(config), "--json", "--out", str(run_dir))
    result = nntune_in_process(capsys, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["doctor"]) >= {"healthy", "problems", "probe", "data"}
    assert summary["doctor"]["probe"]["epochs"] == 3
    tiny["train"]["doctor"] = False
    plain = nntune.train(tiny, write=False, progress=False)
    assert "doctor" not in plain.summary


@pytest.mark.parametrize(
    ("args", "named"),
    [(("--epochs", "0"), "--epochs"), (("--seeds", "1", "--repair"), "--seeds")],
)
def test_bad_doctor_input_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    config = str(EXAMPLES / "healthy_wine.yaml")
    result = nntune_in_process(capsys, "doctor", config, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert named in result.stderr and "Traceback" not in result.stderr


WIDE_INIT = {
    "name": "wide-init",
    "seed": 0,
    "data": {"dataset": "digits", "preprocess": ["standardize"]},
    # six ReLU layers drawn from N(0, 0.5²): activations grow ~6x per layer, NaN in epoch 1
    "model": {"arch": "mlp", "hidden": [128] * 6, "init": {"name": "normal", "std": 0.5}},
    "optimizer": {"name": "sgd", "lr": 0.01},
    "train": {"epochs": 10, "batch_size": 32},
}


def test_a_too_wide_init_is_exploding_gradients_and_the_nan_its_consequence(
    tmp_path: Path,
) -> None:
    report = doctor(WIDE_INIT, out=tmp_path / "doc")
    kinds = [p["kind"] for p in report["problems"]]
    assert kinds[0] == "exploding_gradients" and "nan_loss" in kinds
    assert report["problems"][0]["evidence"]["update_ratio"] > 0.5
    nan = next(p for p in report["problems"] if p["kind"] == "nan_loss")
    assert nan["consequence_of"] == ["exploding_gradients"]


def test_repair_keeps_looking_after_a_first_verified_remedy(tmp_path: Path) -> None:
    """Clipping makes the too-wide init train (val accuracy ~0.3); the repair goes on with the
    exploding remedies after it and keeps the init fix, which beats the clipped run."""
    report = doctor(WIDE_INIT, repair=True, out=tmp_path / "doc")
    repair = report["repair"]
    labels = [step["remedy"] for step in repair["applied"]]
    assert labels[0] == "clip gradients (norm 1)" and "init xavier_normal" in labels
    first = next(s for s in repair["tried"] if s["kept"])
    assert repair["after"]["val_accuracy"] > first["after"] + 0.2
    kept_after = [s for s in repair["tried"] if s["kept"] and s is not first]
    assert all(s["after"] > s["before"] + s["margin"] for s in kept_after)
    rejected = [s for s in repair["tried"] if "kept" in s and not s["kept"]]
    assert rejected, "a remedy after the first that did not beat the repaired config"
    repaired = nntune.load_config(repair["config"])
    assert repaired.model.init.name == "xavier_normal"


def test_a_repair_with_no_time_left_begins_no_remedy(tmp_path: Path) -> None:
    report = doctor(WIDE_INIT, repair=True, repair_seconds=0.0, out=tmp_path / "doc")
    repair = report["repair"]
    assert repair["out_of_time"] is True and repair["applied"] == []
    assert repair["tried"] and all(s.get("skipped") == "no time left" for s in repair["tried"])
    assert repair["improved"] is False and repair["config"] is None
