"""Training strategies: knowledge distillation and adversarial training on real runs, the
attacks' geometry, and robust accuracy in evaluate."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import nntune
from nntune.errors import ConfigError
from nntune.evaluate import evaluate_run
from nntune.train.attacks import attack
from nntune.train.strategy import Distillation
from tests.helpers import nntune_in_process

DIGITS = {
    "seed": 0,
    "data": {"dataset": "digits", "split_seed": 0},
    "model": {"arch": "mlp", "hidden": [64]},
    "optimizer": {"name": "adam", "lr": 0.003},
    "train": {"epochs": 8, "threads": 1},
}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("teacher") / "run"
    config = copy.deepcopy(DIGITS)
    config["model"]["hidden"] = [256, 256]
    nntune.train(config, out=folder, progress=False)
    return folder


def test_the_distillation_loss_is_hintons() -> None:
    torch.manual_seed(0)
    student, teacher_logits = torch.randn(6, 4), torch.randn(6, 4)
    teacher = torch.nn.Linear(3, 4)
    x = torch.randn(6, 3)
    with torch.no_grad():
        teacher_logits = teacher(x)
    hard = torch.tensor(0.8)
    strategy = Distillation(teacher, temperature=3.0, alpha=0.25)
    from nntune.data.augment import Batch

    got = strategy.objective(student, Batch(x, torch.zeros(6, dtype=torch.long)), hard)
    p_teacher = F.softmax(teacher_logits / 3.0, dim=1)
    p_student = F.softmax(student / 3.0, dim=1)
    kl = (p_teacher * (p_teacher.log() - p_student.log())).sum(dim=1).mean()
    torch.testing.assert_close(got, 0.25 * 9.0 * kl + 0.75 * hard)


def test_a_distilled_student_follows_its_teacher(teacher: Path) -> None:
    """alpha 1, T 4: the student learns the teacher's softened probabilities only; on the test
    split its softened probabilities are then much closer to the teacher's (KL at T 4, where
    the dark knowledge lives) than those of the same student trained on the labels."""
    from nntune.evaluate.evaluation import open_run, split_part

    distilled = copy.deepcopy(DIGITS)
    distilled["strategy"] = {
        "name": "distill", "teacher": str(teacher), "alpha": 1.0, "temperature": 4.0
    }  # fmt: skip
    opened = open_run(teacher)
    x, _ = split_part(opened, "test")
    with torch.no_grad():
        target = F.softmax(opened.model(x) / 4.0, dim=1)
    divergence = {}
    for name, config in (("alone", DIGITS), ("distilled", distilled)):
        nntune.train(config, out=teacher.parent / name, progress=False)
        with torch.no_grad():
            student = F.log_softmax(open_run(teacher.parent / name).model(x) / 4.0, dim=1)
        divergence[name] = float(F.kl_div(student, target, reduction="batchmean"))
    assert divergence["distilled"] < 0.5 * divergence["alone"], divergence


def test_a_teacher_of_other_inputs_is_refused(teacher: Path, tmp_path: Path) -> None:
    config = copy.deepcopy(DIGITS)
    config["data"]["split_seed"] = 1  # other split: other fitted standardization
    config["strategy"] = {"name": "distill", "teacher": str(teacher)}
    with pytest.raises(ConfigError, match="the teacher does not take this run's inputs"):
        nntune.train(config, write=False, progress=False)
    regression = {
        "data": {"dataset": "diabetes"},
        "train": {"epochs": 1},
        "strategy": {"name": "distill", "teacher": str(teacher)},
    }
    with pytest.raises(ConfigError, match="needs a classification task"):
        nntune.train(regression, write=False, progress=False)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_attacks_stay_in_their_ball_and_raise_the_loss(method: str, norm: str) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    loss = torch.nn.functional.cross_entropy
    adv = attack(model, loss, x, y, method=method, eps=0.2, steps=7, norm=norm)
    delta = adv - x
    if norm == "linf":
        assert float(delta.abs().max()) <= 0.2 + 1e-6
    else:
        assert float(delta.norm(dim=1).max()) <= 0.2 + 1e-5
    with torch.no_grad():
        assert float(loss(model(adv), y)) > float(loss(model(x), y))
    assert model.training  # restored


def test_adversarial_training_raises_robust_accuracy(tmp_path: Path) -> None:
    adversarial = copy.deepcopy(DIGITS)
    adversarial["strategy"] = {"name": "adversarial", "method": "pgd", "eps": 0.3, "steps": 3}
    robust = {}
    for name, config in (("plain", DIGITS), ("adversarial", adversarial)):
        nntune.train(config, out=tmp_path / name, progress=False)
        result = evaluate_run(tmp_path / name, attack="pgd", eps=0.3, cost=False)
        assert result["attack"]["method"] == "pgd"
        robust[name] = result["metrics"]["accuracy"]
        clean = evaluate_run(tmp_path / name, cost=False)["metrics"]["accuracy"]
        assert robust[name] < clean
    assert robust["adversarial"] > robust["plain"] + 0.1


def test_evaluate_attack_cli(
    teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = nntune_in_process(
        capsys, "evaluate", str(teacher), "--attack", "fgsm", "--eps", "0.2", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["attack"] == {"method": "fgsm", "eps": 0.2, "norm": "linf"}
    bad = nntune_in_process(capsys, "evaluate", str(teacher), "--attack", "cw", cwd=tmp_path)
    assert bad.returncode == 2 and "allowed: fgsm, pgd" in bad.stderr
    listing = nntune_in_process(capsys, "list", "strategies", cwd=tmp_path)
    assert all(name in listing.stdout for name in ("none", "distill", "adversarial"))
