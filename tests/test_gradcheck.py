"""The gradient check: autograd against finite differences, per tensor, in float64."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from nntune.config import Component, ModelConfig
from nntune.diagnose import GradcheckReport, gradcheck
from nntune.errors import ConfigError
from nntune.models import build_model
from tests.helpers import nntune_in_process, write_config


def built(
    arch: str, n_features: int, options: dict[str, Any] | None = None, **fields: Any
) -> nn.Module:
    """A model built as training builds it (3 outputs), in train mode."""
    torch.manual_seed(0)
    fields.setdefault("hidden", [6])
    component = Component(name=arch, options=options or {})
    return build_model(ModelConfig(arch=component, **fields), (n_features,), 3)


class Cube(torch.autograd.Function):
    """x³ with a deliberately wrong backward: 2x (the derivative of x²) instead of 3x²."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * 2 * x


class WrongCubeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 5)
        self.second = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(Cube.apply(self.first(x)))


class FlipScale(torch.autograd.Function):
    """y = c ⊙ x, whose backward returns the upstream gradient flipped: right only when the
    upstream gradient is the same at every position, as it is for out.sum()."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(c)
        return x * c

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (c,) = ctx.saved_tensors
        return grad.flip(1) * c, None


class FlipNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 4)
        self.register_buffer("c", torch.tensor([1.0, 2.0, 3.0, 4.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return FlipScale.apply(self.linear(x), self.c)


# --- built-in models pass -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arch", "n_features", "fields"),
    [
        ("mlp", 10, {"hidden": [8, 8]}),
        ("mlp", 10, {"hidden": [8], "norm": "batch", "dropout": 0.5}),  # eval mode makes it work
        ("cnn2d", 36, {"hidden": [3, 4], "options": {"kernel_size": 3}}),  # 6×6 images
        ("lstm", 6, {"hidden": [4]}),
    ],
    ids=["mlp", "mlp-bn-dropout", "cnn2d", "lstm"],
)
def test_builtin_models_pass(arch: str, n_features: int, fields: dict[str, Any]) -> None:
    model = built(arch, n_features, **fields)
    x, y = torch.randn(8, n_features), torch.randint(0, 3, (8,))
    report = gradcheck(model, x, y, loss=nn.functional.cross_entropy, max_entries=30)
    assert report.passed, str(report)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    assert [t.name for t in report.tensors] == names
    for t, (_, p) in zip(report.tensors, model.named_parameters(), strict=True):
        assert t.shape == tuple(p.shape)
        assert t.checked == min(p.numel(), 30)  # capped
        assert t.max_gradient > 0
    assert report.max_relative_error < 1e-4
    assert report.scalar == "loss(model(x), y)"


def test_the_default_scalar_is_a_random_projection_of_the_outputs() -> None:
    model = built("mlp", 5, hidden=[4])
    report = gradcheck(model, torch.randn(3, 5))
    assert report.passed, str(report)
    assert report.scalar == "random projection of model(x)"


def test_nntune_losses_with_float32_class_weights_are_checked_in_float64() -> None:
    from nntune.losses import LOSSES, build_loss

    model = built("mlp", 4)
    for name, options in [
        ("cross_entropy", {"class_weights": [1.0, 2.0, 0.5], "label_smoothing": 0.1}),
        ("focal", {"gamma": 2.0}),
        ("hinge", {"margin": 1.0}),
    ]:
        entry = LOSSES.get(name)
        loss = build_loss(name, entry.parse_options(options, "loss"), "classification", None, 3)
        report = gradcheck(model, torch.randn(8, 4), torch.randint(0, 3, (8,)), loss=loss)
        assert report.passed, f"{name}\n{report}"
        if loss.class_weights is not None:
            assert loss.class_weights.dtype == torch.float32  # the user's loss is untouched


# --- bugs are caught ------------------------------------------------------------------------


def test_a_wrong_backward_is_caught_and_named() -> None:
    torch.manual_seed(0)
    model = WrongCubeNet()
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))
    report = gradcheck(model, x, y, loss=nn.functional.cross_entropy)
    assert not report.passed
    # the layer before the wrong backward gets wrong gradients; the one after it does not
    assert {t.name for t in report.failed} == {"first.weight", "first.bias"}
    assert all(t.passed for t in report.tensors if t.name.startswith("second."))
    worst = report.failed[0].worst
    assert worst is not None
    assert abs(worst["analytic"] - worst["numeric"]) > 1e-3
    assert report.to_json()["failed_tensors"] == ["first.weight", "first.bias"]
    assert "FAILED" in str(report) and "first.weight" in str(report)


def test_a_wrong_backward_is_caught_in_a_plain_function_as_torch_gradcheck_does() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, dtype=torch.float64)
    ours = gradcheck(Cube.apply, x)
    assert not ours.passed
    assert [t.name for t in ours.failed] == ["inputs[0]"]
    theirs = torch.autograd.gradcheck(
        Cube.apply, (x.clone().requires_grad_(),), raise_exception=False
    )
    assert theirs is False


def test_the_random_projection_catches_a_bug_that_the_sum_hides() -> None:
    torch.manual_seed(0)
    model = FlipNet()
    x = torch.randn(4, 3)
    # every output gets the same upstream gradient from sum(): the flipped gradient is right
    with_sum = gradcheck(model, x, loss=lambda out: out.sum())
    assert with_sum.passed, str(with_sum)
    # under the default random projection, the outputs' gradients differ and the flip shows
    projected = gradcheck(model, x)
    assert not projected.passed
    assert {t.name for t in projected.failed} == {"linear.weight", "linear.bias"}


# --- plain functions ------------------------------------------------------------------------


def test_a_plain_function_is_checked_against_its_floating_inputs() -> None:
    torch.manual_seed(0)
    a = torch.randn(3, 4)  # float32: checked in float64 all the same
    b = torch.randn(4, dtype=torch.float64)
    index = torch.tensor([2, 0])  # integer input: passed through, not checked

    def fn(a: torch.Tensor, b: torch.Tensor, index: torch.Tensor, power: int) -> torch.Tensor:
        return (a.sin() * b.exp()).pow(power)[index]

    report = gradcheck(fn, (a, b, index, 2))
    assert report.passed, str(report)
    assert report.kind == "function"
    assert [(t.name, t.shape) for t in report.tensors] == [
        ("inputs[0]", (3, 4)),
        ("inputs[1]", (4,)),
    ]
    assert a.dtype == torch.float32 and not a.requires_grad  # the user's inputs are untouched
    # torch's own check agrees
    args = (a.double().requires_grad_(), b.clone().requires_grad_(), index, 2)
    assert torch.autograd.gradcheck(fn, args)


def test_forward_differences_are_computed_and_less_accurate_than_central() -> None:
    torch.manual_seed(0)
    x = torch.randn(20, dtype=torch.float64)
    report = gradcheck(lambda v: torch.exp(v).sin() * 3.0, x, forward=True)
    assert report.passed
    (t,) = report.tensors
    assert t.forward_max_abs_error is not None and t.forward_max_relative_error is not None
    # O(h) against O(h²): with h = 1e-6 the forward error is around 1e-6, the central one
    # is at the float64 rounding floor (about 1e-10)
    assert t.forward_max_abs_error > 100 * t.max_abs_error
    assert 1e-8 < t.forward_max_abs_error < 1e-4
    no_forward = gradcheck(lambda v: torch.exp(v).sin() * 3.0, x, forward=False)
    assert no_forward.tensors[0].forward_max_abs_error is None
    assert "fwd rel err" not in str(no_forward)


# --- the user's model is left alone ---------------------------------------------------------


def test_the_users_module_is_unchanged() -> None:
    model = built("mlp", 6, hidden=[5], norm="batch", dropout=0.3)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 6)
    y = torch.randint(0, 3, (8,))
    report = gradcheck(model, x, y, loss=nn.functional.cross_entropy)
    assert report.passed, str(report)
    assert "eval mode" in " ".join(report.notes)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert after[key].dtype == value.dtype, key
        assert torch.equal(after[key], value), key  # batch-norm running stats too
    assert all(p.dtype == torch.float32 and p.grad is None for p in model.parameters())
    assert model.training and all(m.training for m in model.modules())
    assert x.dtype == torch.float32 and not x.requires_grad


def test_big_tensors_are_sampled_repeatably() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(100, 50), nn.Tanh(), nn.Linear(50, 2))
    x = torch.randn(4, 100)
    first = gradcheck(model, x, max_entries=25, seed=3)
    assert [t.checked for t in first.tensors] == [25, 25, 25, 2]
    assert first.checked == 77
    again = gradcheck(model, x, max_entries=25, seed=3)
    assert first.to_json() == again.to_json()
    everything = gradcheck(model, x, max_entries=None)
    assert [t.checked for t in everything.tensors] == [5000, 50, 100, 2]


def test_report_json_and_table() -> None:
    report = gradcheck(built("mlp", 4), torch.randn(5, 4))
    data = report.to_json()
    json.dumps(data, allow_nan=False)  # plain JSON
    assert data["passed"] is True
    assert data["max_relative_error"] == pytest.approx(report.max_relative_error)
    assert {"name", "shape", "checked", "max_abs_error", "max_relative_error", "passed"} <= set(
        data["tensors"][0]
    )
    text = str(report)
    assert text.startswith("gradcheck passed")
    for t in report.tensors:
        assert t.name in text
    assert isinstance(report, GradcheckReport)


# --- bad input ------------------------------------------------------------------------------


def _noisy(v: torch.Tensor) -> torch.Tensor:
    return v * torch.rand_like(v)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: gradcheck(nn.ReLU(), torch.randn(3)), "no trainable parameters"),
        (lambda: gradcheck(lambda i: i * 2, torch.arange(3)), "no floating-point tensor"),
        (
            lambda: gradcheck(
                nn.Linear(3, 2),
                torch.randn(4, 3),
                torch.randn(4, 2),
                loss=nn.MSELoss(reduction="none"),
            ),
            "scalar",
        ),
        (
            lambda: gradcheck(nn.Linear(3, 2), torch.randn(4, 3), torch.randn(4, 2)),
            "without a loss",
        ),
        (lambda: gradcheck(nn.Linear(3, 2), torch.randn(4, 3), eps=0.0), "eps"),
        (lambda: gradcheck(nn.Linear(3, 2), torch.randn(4, 3), max_entries=0), "max_entries"),
        (lambda: gradcheck(_noisy, torch.randn(4)), "not deterministic"),
        (lambda: gradcheck(lambda v: v.float().sum(), torch.randn(4)), "float32"),
        (lambda: gradcheck(lambda v: v.log(), -torch.ones(3)), "not finite"),
        (lambda: gradcheck(42, torch.randn(3)), "nn.Module or a function"),  # type: ignore[arg-type]
    ],
    ids=[
        "no-parameters",
        "no-float-inputs",
        "non-scalar-loss",
        "targets-without-loss",
        "bad-eps",
        "bad-max-entries",
        "random",
        "low-precision",
        "non-finite",
        "not-callable",
    ],
)
def test_bad_input_is_a_config_error(call: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call()


# --- the command ----------------------------------------------------------------------------

IRIS = {
    "data": {"dataset": "iris"},
    "model": {"arch": "mlp", "hidden": [8]},
    "train": {"epochs": 1, "threads": 1},
}


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", IRIS)
    result = nntune_in_process(capsys, "gradcheck", str(cfg), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # all of stdout is one JSON document
    assert data["passed"] is True
    assert data["max_relative_error"] < 1e-4
    assert [t["name"] for t in data["tensors"]] == [
        "1.0.0.weight",
        "1.0.0.bias",
        "2.weight",
        "2.bias",
    ]
    assert data["tensors"][0]["shape"] == [8, 4]  # iris: 4 features
    assert data["scalar"] == "loss(model(x), y)"
    assert not list(tmp_path.glob("runs"))  # a check writes no run folder


def test_cli_table_and_exit_status_one_on_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", IRIS)
    ok = nntune_in_process(
        capsys, "gradcheck", str(cfg), "--set", "model.arch=autoencoder", cwd=tmp_path
    )
    assert ok.returncode == 0, ok.stderr
    assert "gradcheck passed" in ok.stdout and "encoder" in ok.stdout
    # zero tolerance: rounding noise alone fails the check, the real failure path
    failed = nntune_in_process(
        capsys, "gradcheck", str(cfg), "--atol", "0", "--rtol", "0", cwd=tmp_path
    )
    assert failed.returncode == 1, failed.stderr
    assert "FAILED" in failed.stdout


def test_cli_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", {**IRIS, "modle": {"hidden": [4]}})
    result = nntune_in_process(capsys, "gradcheck", str(cfg), "--json", cwd=tmp_path)
    assert result.returncode == 2
    assert "modle" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    cfg = write_config(tmp_path / "cfg.yaml", IRIS)
    result = nntune_in_process(
        capsys, "gradcheck", str(cfg), "--set", "model.hiden=[3]", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "did you mean 'model.hidden'" in result.stderr
