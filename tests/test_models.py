"""Models: every arch × norm builds and trains a step; activations and inits do what they say."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from nntune.config import Component, ModelConfig
from nntune.errors import ConfigError
from nntune.models import ACTIVATIONS, ARCHS, INITS, apply_init, build_model

# the archs that read numbers (bag and textcnn read token ids only: tests/test_text.py)
NUMERIC_ARCHS = [name for name in ARCHS.list() if name not in ARCHS.list("text_only")]


def config(arch: str, **fields: Any) -> ModelConfig:
    fields.setdefault("hidden", [8, 8])
    return ModelConfig(arch=Component(name=arch), **fields)


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("arch", NUMERIC_ARCHS)
def test_arch_forward_backward(arch: str, norm: str) -> None:
    torch.manual_seed(0)
    n_features, n_outputs = 64, 3  # 64 = an 8×8 image for cnn2d, 64 steps for sequences
    model = build_model(config(arch, norm=norm), (n_features,), n_outputs)
    model.train()
    x = torch.randn(6, n_features)
    out = model(x)
    reconstructs = "reconstruction" in ARCHS.get(arch).tags
    assert out.shape == ((6, n_features) if reconstructs else (6, n_outputs))
    assert torch.isfinite(out).all()
    out.pow(2).mean().backward()
    params = [p for p in model.parameters() if p.requires_grad]
    assert params
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert any(float(p.grad.abs().sum()) > 0 for p in params)
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape[0] == 1  # a single sample works in eval mode


@pytest.mark.parametrize("arch", NUMERIC_ARCHS)
def test_arch_with_dropout_and_residual(arch: str) -> None:
    torch.manual_seed(0)
    # widths change between layers (a projection is needed), except for the transformer
    hidden = [8, 8] if arch == "transformer" else [8, 4]
    model = build_model(config(arch, dropout=0.2, residual=True, hidden=hidden), (16,), 2)
    out = model(torch.randn(5, 16))
    assert out.shape[0] == 5
    assert torch.isfinite(out).all()


def test_cnn2d_needs_a_square_image() -> None:
    with pytest.raises(ConfigError, match="input_shape"):
        build_model(config("cnn2d"), (40,), 3)


def test_input_shape_reshapes_flat_features() -> None:
    model = build_model(config("cnn2d", input_shape=[1, 5, 8]), (40,), 3)
    assert model(torch.randn(4, 40)).shape == (4, 3)
    model = build_model(config("cnn1d", input_shape=[2, 20]), (40,), 3)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv1d))
    assert first_conv.in_channels == 2
    assert model(torch.randn(4, 40)).shape == (4, 3)


def test_input_shape_of_the_wrong_size() -> None:
    with pytest.raises(ConfigError, match="input_shape"):
        build_model(config("cnn2d", input_shape=[1, 6, 6]), (40,), 3)


def test_images_of_higher_rank_keep_their_shape() -> None:
    model = build_model(config("cnn2d"), (3, 6, 6), 4)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == 3
    assert model(torch.randn(2, 3, 6, 6)).shape == (2, 4)


def test_mlp_widths_follow_hidden() -> None:
    model = build_model(config("mlp", hidden=[32, 16]), (10,), 3)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(10, 32), (32, 16), (16, 3)]


def test_unknown_arch_option() -> None:
    bad = ModelConfig(arch=Component(name="cnn1d", options={"kernel": 3}), hidden=[4])
    with pytest.raises(ConfigError, match=r"model\.arch\.kernel.*cnn1d"):
        build_model(bad, (16,), 2)


# --- activations ----------------------------------------------------------------------------


def _phi(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


# formulas written out, not torch's modules
REFERENCE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": lambda x: 1.0 / (1.0 + torch.exp(-x)),
    "tanh": lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
    "hardtanh": lambda x: torch.clamp(x, -1.0, 1.0),
    "softsign": lambda x: x / (1.0 + x.abs()),
    "relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "leaky_relu": lambda x: torch.where(x > 0, x, 0.01 * x),
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1.0),
    "gelu": lambda x: x * _phi(x),
    "silu": lambda x: x / (1.0 + torch.exp(-x)),
}


@pytest.mark.parametrize("name", ACTIVATIONS.list())
def test_activation_matches_its_formula(name: str) -> None:
    assert name in REFERENCE, f"add a reference formula for activation '{name}'"
    entry = ACTIVATIONS.get(name)
    module = entry.builder(entry.parse_options({}, "model.activation"))
    x = torch.linspace(-6.0, 6.0, 241, dtype=torch.float64)
    torch.testing.assert_close(module(x), REFERENCE[name](x))


def test_activation_options() -> None:
    x = torch.linspace(-3.0, 3.0, 61, dtype=torch.float64)
    entry = ACTIVATIONS.get("leaky_relu")
    module = entry.builder(entry.parse_options({"negative_slope": 0.2}, "model.activation"))
    torch.testing.assert_close(module(x), torch.where(x > 0, x, 0.2 * x))
    entry = ACTIVATIONS.get("elu")
    module = entry.builder(entry.parse_options({"alpha": 0.5}, "model.activation"))
    torch.testing.assert_close(module(x), torch.where(x > 0, x, 0.5 * (torch.exp(x) - 1.0)))


def test_model_uses_the_configured_activation() -> None:
    model = build_model(config("mlp", activation=Component(name="tanh")), (4,), 2)
    assert any(isinstance(m, nn.Tanh) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())


# --- inits ----------------------------------------------------------------------------------

FAN_IN, FAN_OUT = 512, 256


def init_layer(name: str, **options: Any) -> nn.Linear:
    torch.manual_seed(0)
    layer = nn.Linear(FAN_IN, FAN_OUT)
    nn.init.constant_(layer.bias, 0.5)  # so that zeroing is visible
    entry = INITS.get(name)
    apply_init(layer, entry.builder(entry.parse_options(options, "model.init")))
    return layer


def check_uniform(w: torch.Tensor, bound: float) -> None:
    assert float(w.abs().max()) <= bound * (1 + 1e-6)
    assert float(w.abs().max()) >= 0.98 * bound
    assert float(w.std()) == pytest.approx(bound / math.sqrt(3.0), rel=0.05)


def check_normal(w: torch.Tensor, std: float, mean: float = 0.0) -> None:
    assert float(w.mean()) == pytest.approx(mean, abs=0.05 * std)
    assert float(w.std()) == pytest.approx(std, rel=0.05)


# expected statistics from the papers' formulas (fan_in 512, fan_out 256, ReLU gain √2)
INIT_CHECKS: dict[str, Callable[[torch.Tensor], None]] = {
    "default": lambda w: check_uniform(w, 1.0 / math.sqrt(FAN_IN)),
    "xavier_uniform": lambda w: check_uniform(w, math.sqrt(6.0 / (FAN_IN + FAN_OUT))),
    "xavier_normal": lambda w: check_normal(w, math.sqrt(2.0 / (FAN_IN + FAN_OUT))),
    "kaiming_uniform": lambda w: check_uniform(w, math.sqrt(6.0 / FAN_IN)),
    "kaiming_normal": lambda w: check_normal(w, math.sqrt(2.0 / FAN_IN)),
    "orthogonal": lambda w: torch.testing.assert_close(
        w @ w.T, torch.eye(FAN_OUT), atol=1e-4, rtol=0
    ),
    "normal": lambda w: check_normal(w, 0.01),
    "uniform": lambda w: check_uniform(w, 0.05),
}


@pytest.mark.parametrize("name", INITS.list())
def test_init_statistics(name: str) -> None:
    assert name in INIT_CHECKS, f"add the expected statistics of init '{name}'"
    layer = init_layer(name)
    INIT_CHECKS[name](layer.weight.detach())
    if name == "default":
        assert torch.all(layer.bias == 0.5)  # PyTorch's init is left alone
    else:
        assert torch.all(layer.bias == 0.0)


def test_init_options() -> None:
    check_normal(init_layer("kaiming_normal", gain=1.0).weight.detach(), 1.0 / math.sqrt(FAN_IN))
    check_normal(
        init_layer("kaiming_normal", mode="fan_out").weight.detach(), math.sqrt(2.0 / FAN_OUT)
    )
    bound = 2.0 * math.sqrt(6.0 / (FAN_IN + FAN_OUT))
    check_uniform(init_layer("xavier_uniform", gain=2.0).weight.detach(), bound)
    check_normal(init_layer("normal", std=0.2, mean=1.0).weight.detach(), 0.2, mean=1.0)
    check_uniform(init_layer("uniform", a=0.3).weight.detach(), 0.3)
    w = init_layer("orthogonal", gain=3.0).weight.detach()
    torch.testing.assert_close(w @ w.T, 9.0 * torch.eye(FAN_OUT), atol=1e-3, rtol=0)


def test_init_reaches_conv_and_recurrent_weights_but_not_norms() -> None:
    init = Component(name="normal", options={"std": 0.5})
    model = build_model(config("cnn1d", hidden=[16, 16], norm="batch", init=init), (32,), 3)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert norms and all(torch.all(m.weight == 1.0) and torch.all(m.bias == 0.0) for m in norms)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    weights = torch.cat([m.weight.detach().flatten() for m in convs])
    assert float(weights.std()) == pytest.approx(0.5, rel=0.1)
    assert all(torch.all(m.bias == 0.0) for m in convs)
    model = build_model(config("lstm", hidden=[16], init=init), (32,), 3)
    lstm = next(m for m in model.modules() if isinstance(m, nn.LSTM))
    assert float(lstm.weight_hh_l0.detach().std()) == pytest.approx(0.5, rel=0.1)
    assert torch.all(lstm.bias_ih_l0 == 0.0)
