"""Dropout in nntune's models is inverted dropout: at train time each unit is zeroed with
probability p and the kept ones are scaled by exactly 1/(1-p), so that the expected activation
is unchanged; at eval time dropout is the identity."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nntune.config import Component, ModelConfig
from nntune.models import build_model

N_FEATURES, WIDTH, N_OUTPUTS = 8, 256, 3


def mlp_with_dropout(p: float, hidden: list[int] | None = None) -> nn.Module:
    torch.manual_seed(0)
    # tanh: a unit's activation is (almost surely) never exactly 0, so a 0 after dropout is a
    # dropped unit (with relu, half of the units would be 0 before dropout already)
    config = ModelConfig(
        arch=Component(name="mlp"),
        hidden=hidden or [WIDTH],
        activation=Component(name="tanh"),
        dropout=p,
    )
    return build_model(config, (N_FEATURES,), N_OUTPUTS)


def dropout_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Dropout)]


def capture(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input, output) of the model's first dropout layer, and the model's output."""
    seen: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen["in"], seen["out"] = args[0].detach().clone(), out.detach().clone()

    handle = dropout_layers(model)[0].register_forward_hook(hook)
    try:
        with torch.no_grad():
            y = model(x)
    finally:
        handle.remove()
    return seen["in"], seen["out"], y


def test_the_mlp_has_one_dropout_per_hidden_layer_and_none_without_dropout() -> None:
    assert len(dropout_layers(mlp_with_dropout(0.3, [16, 16]))) == 2
    assert all(m.p == 0.3 for m in dropout_layers(mlp_with_dropout(0.3, [16, 16])))
    assert dropout_layers(mlp_with_dropout(0.0)) == []


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_train_mode_zeroes_a_fraction_p_and_scales_the_rest_by_one_over_one_minus_p(
    p: float,
) -> None:
    model = mlp_with_dropout(p)
    model.train()
    torch.manual_seed(1)
    x = torch.randn(400, N_FEATURES)
    before, after, _ = capture(model, x)
    assert bool((before != 0).all())  # tanh units: nothing is zero before dropout
    dropped = after == 0
    n = dropped.numel()  # 400 × 256 = 102,400 units
    fraction = dropped.float().mean().item()
    # binomial: the standard deviation of the fraction is sqrt(p(1-p)/n) ≤ 0.0016; allow 6 of them
    assert abs(fraction - p) < 6 * math.sqrt(p * (1 - p) / n)
    kept = ~dropped
    scale = after[kept] / before[kept]
    # exactly 1/(1-p), up to the float32 rounding of the product
    assert torch.allclose(scale, torch.full_like(scale, 1 / (1 - p)), rtol=1e-6, atol=0)
    # a new mask for every call
    _, again, _ = capture(model, x)
    assert not torch.equal(again == 0, dropped)


def test_train_mode_keeps_the_expected_output() -> None:
    # one hidden layer: output = W2 · dropout(tanh(W1 x + b1)) + b2 is linear in the dropout's
    # output, so E[train-mode output] = eval-mode output exactly when the kept units are scaled
    # by 1/(1-p); without the scaling the mean would be (1-p) times the hidden contribution
    p = 0.5
    model = mlp_with_dropout(p)
    x = torch.randn(1, N_FEATURES).expand(20_000, N_FEATURES)
    model.eval()
    with torch.no_grad():
        expected = model(x[:1])[0]
    model.train()
    torch.manual_seed(2)
    with torch.no_grad():
        samples = model(x)
    mean, sem = samples.mean(dim=0), samples.std(dim=0) / math.sqrt(len(samples))
    assert torch.all((mean - expected).abs() < 6 * sem), (mean, expected, sem)
    # and the test can tell: the unscaled mean is far outside that band
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    unscaled = (1 - p) * (expected - head.bias) + head.bias
    assert torch.any((mean - unscaled).abs() > 20 * sem)


def test_eval_mode_is_the_identity() -> None:
    model = mlp_with_dropout(0.5, [32, 32])
    model.eval()
    x = torch.randn(64, N_FEATURES)
    before, after, y = capture(model, x)
    assert torch.equal(before, after)
    # the whole model equals the same network with its dropout layers removed
    plain = nn.Sequential(*(m for m in model.modules() if isinstance(m, (nn.Linear, nn.Tanh))))
    with torch.no_grad():
        assert torch.allclose(y, plain(x), rtol=0, atol=1e-6)
        assert torch.equal(model(x), y)  # deterministic
