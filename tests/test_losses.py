"""Losses: each one against its formula written out here, task checks, class weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nntune.errors import ConfigError
from nntune.losses import LOSSES, Loss, build_loss

N, K = 24, 4


def make(name: str, task: str, labels: torch.Tensor | None = None, **options: Any) -> Loss:
    entry = LOSSES.get(name)
    opts = entry.parse_options(options, "loss")
    n = K if task == "classification" else 1
    return build_loss(entry.name, opts, task, labels, n)


def log_softmax(z: torch.Tensor) -> torch.Tensor:
    return z - torch.log(torch.exp(z).sum(dim=1, keepdim=True))


def ce_reference(z: torch.Tensor, y: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    k = z.shape[1]
    q = (1 - smoothing) * F.one_hot(y, k).double() + smoothing / k
    return -(q * log_softmax(z)).sum(dim=1).mean()


def bce_reference(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sigmoid cross-entropy; one logit for two classes, one per class (one-vs-rest) beyond."""
    t = y.double().unsqueeze(1) if z.shape[1] == 1 else F.one_hot(y, z.shape[1]).double()
    p = 1.0 / (1.0 + torch.exp(-z))
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()


def focal_reference(z: torch.Tensor, y: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    p_t = torch.exp(log_softmax(z))[torch.arange(len(y)), y]
    return (-((1 - p_t) ** gamma) * torch.log(p_t)).mean()


def hinge_reference(z: torch.Tensor, y: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    total = torch.zeros((), dtype=z.dtype)
    for scores, label in zip(z, y.tolist(), strict=True):
        for j in range(len(scores)):
            if j != label:
                total = total + torch.clamp(scores[j] - scores[label] + margin, min=0.0)
    return total / len(y)


def huber_reference(pred: torch.Tensor, target: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    d = (pred - target).abs()
    return torch.where(d <= delta, 0.5 * d**2, delta * (d - 0.5 * delta)).mean()


# name → (task, reference with default options)
REFERENCE: dict[str, tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "cross_entropy": ("classification", ce_reference),
    "bce": ("classification", bce_reference),
    "focal": ("classification", focal_reference),
    "hinge": ("classification", hinge_reference),
    "mse": ("regression", lambda p, t: ((p - t) ** 2).mean()),
    "mae": ("regression", lambda p, t: (p - t).abs().mean()),
    "huber": ("regression", huber_reference),
}


def class_batch(k: int = K, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = 2.0 * torch.randn(N, k, generator=g, dtype=torch.float64)
    y = torch.arange(N) % k
    return z, y


def regression_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pred = 2.0 * torch.randn(N, 2, generator=g, dtype=torch.float64)
    return pred, pred + 1.5 * torch.randn(N, 2, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("name", LOSSES.list())
def test_loss_matches_its_formula(name: str) -> None:
    assert name in REFERENCE, f"add a reference formula for loss '{name}'"
    task, reference = REFERENCE[name]
    loss = make(name, task)
    assert loss.task == task
    if task == "classification":
        z, y = class_batch()
        z = z[:, : loss.n_outputs(K)]
    else:
        z, y = regression_batch()
    torch.testing.assert_close(loss(z, y), reference(z, y))


@pytest.mark.parametrize("name", LOSSES.list())
def test_loss_is_differentiable(name: str) -> None:
    task, _ = REFERENCE[name]
    loss = make(name, task)
    if task == "classification":
        z, y = class_batch()
        z = z[:, : loss.n_outputs(K)].clone().requires_grad_(True)
    else:
        z, y = regression_batch()
        z = z.clone().requires_grad_(True)
    loss(z, y).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert float(z.grad.abs().sum()) > 0


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_cross_entropy_label_smoothing(smoothing: float) -> None:
    z, y = class_batch()
    loss = make("cross_entropy", "classification", label_smoothing=smoothing)
    torch.testing.assert_close(loss(z, y), ce_reference(z, y, smoothing))
    torch.testing.assert_close(loss(z, y), F.cross_entropy(z, y, label_smoothing=smoothing))


def test_focal_with_gamma_zero_is_cross_entropy() -> None:
    z, y = class_batch()
    focal = make("focal", "classification", gamma=0.0)
    torch.testing.assert_close(focal(z, y), ce_reference(z, y))


@pytest.mark.parametrize("gamma", [0.5, 1.0, 3.0])
def test_focal_gamma(gamma: float) -> None:
    z, y = class_batch()
    focal = make("focal", "classification", gamma=gamma)
    torch.testing.assert_close(focal(z, y), focal_reference(z, y, gamma))
    assert float(focal(z, y)) < float(ce_reference(z, y))  # easy examples are down-weighted


@pytest.mark.parametrize("margin", [0.5, 2.0])
def test_hinge_margin(margin: float) -> None:
    z, y = class_batch()
    hinge = make("hinge", "classification", margin=margin)
    torch.testing.assert_close(hinge(z, y), hinge_reference(z, y, margin))


def test_hinge_is_zero_beyond_the_margin() -> None:
    y = torch.tensor([0, 1, 2])
    z = 5.0 * F.one_hot(y, 3).double()
    assert float(make("hinge", "classification")(z, y)) == 0.0


def test_bce_uses_one_logit_for_two_classes() -> None:
    loss = make("bce", "classification")
    assert loss.n_outputs(2) == 1
    assert loss.n_outputs(5) == 5
    z, y = class_batch(k=2)
    z1 = z[:, :1]
    torch.testing.assert_close(loss(z1, y), bce_reference(z1, y))
    probs = loss.probabilities(z1)
    p = 1.0 / (1.0 + torch.exp(-z1[:, 0]))
    torch.testing.assert_close(probs.double(), torch.stack([1 - p, p], dim=1))


def test_softmax_probabilities() -> None:
    z, _ = class_batch()
    probs = make("cross_entropy", "classification").probabilities(z)
    torch.testing.assert_close(probs.double(), torch.exp(log_softmax(z)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(N))


@pytest.mark.parametrize("delta", [0.3, 2.0])
def test_huber_delta(delta: float) -> None:
    pred, target = regression_batch()
    loss = make("huber", "regression", delta=delta)
    torch.testing.assert_close(loss(pred, target), huber_reference(pred, target, delta))


@pytest.mark.parametrize("name", [n for n in LOSSES.list() if REFERENCE[n][0] == "regression"])
def test_regression_loss_on_classification_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        make(name, "classification")
    message = str(info.value)
    assert name in message and "classification" in message
    assert "cross_entropy" in message  # the losses that fit are listed


@pytest.mark.parametrize("name", [n for n in LOSSES.list() if REFERENCE[n][0] == "classification"])
def test_classification_loss_on_regression_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="mse"):
        make(name, "regression")


# --- class weights --------------------------------------------------------------------------


def imbalanced_labels() -> torch.Tensor:
    return torch.tensor([0] * 12 + [1] * 6 + [2] * 4 + [3] * 2)


def test_balanced_class_weights_are_inverse_frequencies() -> None:
    from sklearn.utils.class_weight import compute_class_weight

    labels = imbalanced_labels()
    loss = make("cross_entropy", "classification", labels, class_weights="balanced")
    expected = compute_class_weight("balanced", classes=np.arange(K), y=labels.numpy())
    assert loss.class_weights is not None
    np.testing.assert_allclose(loss.class_weights.numpy(), expected, rtol=1e-6)


def test_weighted_cross_entropy_is_a_weighted_mean() -> None:
    labels = imbalanced_labels()
    loss = make("cross_entropy", "classification", labels, class_weights="balanced")
    z, _ = class_batch()
    y = labels
    w = torch.tensor([24 / (4 * 12), 24 / (4 * 6), 24 / (4 * 4), 24 / (4 * 2)])[y].double()
    per_sample = -log_softmax(z)[torch.arange(N), y]
    expected = (w * per_sample).sum() / w.sum()
    torch.testing.assert_close(loss(z.float(), y).double(), expected, rtol=1e-5, atol=1e-6)


def test_explicit_class_weights() -> None:
    loss = make("hinge", "classification", class_weights=[1.0, 2.0, 3.0, 4.0])
    z, y = class_batch()
    w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)[y]
    per_sample = torch.stack([hinge_reference(z[i : i + 1], y[i : i + 1]) for i in range(N)])
    torch.testing.assert_close(loss(z, y).double(), (w * per_sample).sum() / w.sum())


def test_class_weights_of_the_wrong_length() -> None:
    with pytest.raises(ConfigError, match="class_weights"):
        make("cross_entropy", "classification", class_weights=[1.0, 2.0])


@pytest.mark.parametrize("k", [2, 4])
def test_bce_class_weights_weight_each_sample_by_its_class(k: int) -> None:
    weights = [0.5, 1.0, 2.0, 4.0][:k]
    entry = LOSSES.get("bce")
    opts = entry.parse_options({"class_weights": weights}, "loss")
    loss = build_loss("bce", opts, "classification", None, k)
    z, y = class_batch(k)
    z = z[:, : loss.n_outputs(k)]
    w = torch.tensor(weights, dtype=torch.float64)[y]
    per_sample = torch.stack([bce_reference(z[i : i + 1], y[i : i + 1]) for i in range(N)])
    torch.testing.assert_close(loss(z, y).double(), (w * per_sample).sum() / w.sum())
