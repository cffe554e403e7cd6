"""Loss formulas: values and gradients w.r.t. the logits against the textbook formulas,
computed here with plain Python and ``math`` (never with the torch functions the
implementation uses)."""

from __future__ import annotations

import math

import pytest
import torch

from nntune.losses import LOSSES, Loss, build_loss

# three samples, three classes: a confident right one, an unsure one, a confident wrong one
LOGITS = [[2.0, -1.0, 0.5], [0.1, 0.2, -0.3], [-1.5, 3.0, 0.0]]
TARGETS = [0, 2, 0]


def make(name: str, n_classes: int = 3, **options: object) -> Loss:
    entry = LOSSES.get(name)
    return build_loss(
        entry.name, entry.parse_options(options, "loss"), "classification", None, n_classes
    )


def torch_value_and_grad(
    loss: Loss, logits: list[list[float]], targets: list[int]
) -> tuple[float, list[list[float]]]:
    """The implementation's loss and its gradient w.r.t. the logits, in float64."""
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    value = loss(z, torch.tensor(targets))
    value.backward()
    assert z.grad is not None
    return float(value.detach()), z.grad.tolist()


def softmax(z: list[float]) -> list[float]:
    top = max(z)
    e = [math.exp(v - top) for v in z]
    total = sum(e)
    return [v / total for v in e]


def assert_close(got: list[list[float]], expected: list[list[float]], tol: float = 1e-12) -> None:
    assert len(got) == len(expected)
    for row_got, row_expected in zip(got, expected, strict=True):
        assert row_got == pytest.approx(row_expected, abs=tol, rel=1e-10)


# --- focal loss (Lin et al. 2017) -----------------------------------------------------------


def focal_by_hand(
    logits: list[list[float]], targets: list[int], gamma: float, alpha: float | None
) -> tuple[float, list[list[float]]]:
    """FL = -α_t (1 - p_t)^γ log p_t, averaged over samples; α_t = α for class 1, 1 - α else.

    With p = softmax(z) and p_t = p_y: ∂p_t/∂z_j = p_t (δ_jy - p_j), and
    ∂FL/∂p_t = α_t [γ (1 - p_t)^(γ-1) log p_t - (1 - p_t)^γ / p_t], so
    ∂FL/∂z_j = α_t [γ (1 - p_t)^(γ-1) p_t log p_t - (1 - p_t)^γ] (δ_jy - p_j).
    """
    n = len(logits)
    total = 0.0
    grads = []
    for z, y in zip(logits, targets, strict=True):
        p = softmax(z)
        pt = p[y]
        a = 1.0 if alpha is None else (alpha if y == 1 else 1.0 - alpha)
        total += -a * (1.0 - pt) ** gamma * math.log(pt)
        d_gamma = gamma * (1.0 - pt) ** (gamma - 1.0) * pt * math.log(pt) if gamma else 0.0
        outer = a * (d_gamma - (1.0 - pt) ** gamma)
        grads.append([outer * ((1.0 if j == y else 0.0) - p[j]) / n for j in range(len(z))])
    return total / n, grads


def test_focal_on_a_case_worked_out_on_paper() -> None:
    # z = (0, 0), y = 0, γ = 2: p_t = 1/2, FL = -(1/2)² ln(1/2) = ln(2)/4;
    # ∂FL/∂z_0 = [2 · (1/2) · (1/2) · ln(1/2) - 1/4] · (1 - 1/2) = -ln(2)/4 - 1/8 = -∂FL/∂z_1
    value, grad = torch_value_and_grad(make("focal", n_classes=2, gamma=2.0), [[0.0, 0.0]], [0])
    assert value == pytest.approx(math.log(2) / 4, rel=1e-12)
    g = -math.log(2) / 4 - 1 / 8
    assert_close(grad, [[g, -g]])


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.5])
def test_focal_value_and_gradient(gamma: float) -> None:
    value, grad = torch_value_and_grad(make("focal", gamma=gamma), LOGITS, TARGETS)
    expected_value, expected_grad = focal_by_hand(LOGITS, TARGETS, gamma, None)
    assert value == pytest.approx(expected_value, rel=1e-12)
    assert_close(grad, expected_grad)


def test_focal_alpha_weights_the_positive_class_of_a_binary_task() -> None:
    logits = [[1.0, -0.5], [0.2, 0.4], [-2.0, 1.0]]
    targets = [0, 1, 1]
    value, grad = torch_value_and_grad(
        make("focal", n_classes=2, gamma=2.0, alpha=0.25), logits, targets
    )
    expected_value, expected_grad = focal_by_hand(logits, targets, 2.0, 0.25)
    assert value == pytest.approx(expected_value, rel=1e-12)
    assert_close(grad, expected_grad)


def test_focal_with_gamma_zero_is_cross_entropy() -> None:
    expected = sum(-math.log(softmax(z)[y]) for z, y in zip(LOGITS, TARGETS, strict=True)) / 3
    value, _ = torch_value_and_grad(make("focal", gamma=0.0), LOGITS, TARGETS)
    assert value == pytest.approx(expected, rel=1e-12)


def test_focal_gradient_is_finite_for_a_confident_sample_with_gamma_below_one() -> None:
    # float32, as in training: p_t = 1 - 2e-9 rounds to 1; the true gradient is ~1e-9 · γ
    z = torch.tensor([[20.0, 0.0], [0.3, -0.2]], requires_grad=True)
    make("focal", n_classes=2, gamma=0.5)(z, torch.tensor([0, 1])).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert float(z.grad[0].abs().max()) < 1e-6  # a confident right sample barely pulls


def test_every_class_weighted_loss_is_a_weighted_mean_over_samples() -> None:
    # one convention for all losses: Σ w_y · l / Σ w_y (torch's cross_entropy), so focal with
    # γ = 0 equals cross-entropy with the same class weights
    weights = [1.0, 2.0, 0.5]
    z = torch.tensor([[1.0, -0.5, 0.2], [0.1, 0.4, -1.0], [-0.3, 0.2, 0.9], [2.0, 0.0, 0.5]])
    y = torch.tensor([0, 1, 2, 1])
    ce = make("cross_entropy", class_weights=weights)(z, y)
    focal = make("focal", gamma=0.0, class_weights=weights)(z, y)
    torch.testing.assert_close(focal, ce)


# --- multi-class hinge (Weston & Watkins 1999) ----------------------------------------------


def hinge_by_hand(
    logits: list[list[float]], targets: list[int], margin: float
) -> tuple[float, list[list[float]]]:
    """L = mean_i Σ_{j≠y_i} max(0, s_j - s_y + Δ); ∂/∂s_j = [s_j - s_y + Δ > 0] for j ≠ y and
    ∂/∂s_y = -(number of violating j)."""
    n = len(logits)
    total = 0.0
    grads = []
    for s, y in zip(logits, targets, strict=True):
        row = [0.0] * len(s)
        for j in range(len(s)):
            if j == y:
                continue
            violation = s[j] - s[y] + margin
            if violation > 0:
                total += violation
                row[j] += 1.0 / n
                row[y] -= 1.0 / n
        grads.append(row)
    return total / n, grads


# the example of CS231n's linear-classification notes: per-sample losses 2.9, 0 and 12.9
SCORES = [[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]]
LABELS = [0, 1, 2]


def test_hinge_is_weston_watkins_on_the_textbook_example() -> None:
    value, grad = torch_value_and_grad(make("hinge", margin=1.0), SCORES, LABELS)
    # a sum over the violating classes (Crammer-Singer's max would give (2.9 + 0 + 6.6) / 3),
    # not divided by the number of classes (torch.nn.MultiMarginLoss would divide by 3)
    assert value == pytest.approx((2.9 + 0.0 + 12.9) / 3, rel=1e-12)
    third = 1 / 3
    assert_close(grad, [[-third, third, 0.0], [0.0, 0.0, 0.0], [third, third, -2 * third]])


@pytest.mark.parametrize("margin", [0.5, 1.0, 2.0])
def test_hinge_value_and_gradient(margin: float) -> None:
    value, grad = torch_value_and_grad(make("hinge", margin=margin), LOGITS, TARGETS)
    expected_value, expected_grad = hinge_by_hand(LOGITS, TARGETS, margin)
    assert value == pytest.approx(expected_value, rel=1e-12)
    assert_close(grad, expected_grad)
    # this example has active and inactive margins at every Δ tried: both branches are tested
    assert any(g == 0.0 for row in expected_grad for g in row)
    assert expected_value > 0


# --- cross-entropy with label smoothing (Szegedy et al. 2016) --------------------------------


def smoothed_ce_by_hand(
    logits: list[list[float]], targets: list[int], eps: float
) -> tuple[float, list[list[float]]]:
    """q = (1 - ε) onehot(y) + ε / K; L = mean_i -Σ_j q_j log p_j; ∂L/∂z_j = (p_j - q_j) / n."""
    n = len(logits)
    total = 0.0
    grads = []
    for z, y in zip(logits, targets, strict=True):
        k = len(z)
        p = softmax(z)
        q = [(1.0 - eps) * (1.0 if j == y else 0.0) + eps / k for j in range(k)]
        total += -sum(q[j] * math.log(p[j]) for j in range(k))
        grads.append([(p[j] - q[j]) / n for j in range(k)])
    return total / n, grads


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_cross_entropy_with_label_smoothing(eps: float) -> None:
    value, grad = torch_value_and_grad(make("cross_entropy", label_smoothing=eps), LOGITS, TARGETS)
    expected_value, expected_grad = smoothed_ce_by_hand(LOGITS, TARGETS, eps)
    assert value == pytest.approx(expected_value, rel=1e-12)
    assert_close(grad, expected_grad)


def test_label_smoothing_on_a_case_worked_out_on_paper() -> None:
    # z = (ln 2, 0): p = (2/3, 1/3); y = 0, ε = 0.2, K = 2: q = (0.9, 0.1);
    # L = -0.9 ln(2/3) - 0.1 ln(1/3); ∂L/∂z = p - q = (-7/30, 7/30)
    value, grad = torch_value_and_grad(
        make("cross_entropy", n_classes=2, label_smoothing=0.2), [[math.log(2), 0.0]], [0]
    )
    assert value == pytest.approx(-0.9 * math.log(2 / 3) - 0.1 * math.log(1 / 3), rel=1e-12)
    assert_close(grad, [[-7 / 30, 7 / 30]])


def test_cross_entropy_class_weights_give_a_weighted_mean() -> None:
    # torch's convention, which nntune's cross_entropy follows: Σ w_y l_i / Σ w_y
    weights = [1.0, 2.0, 0.5]
    loss = make("cross_entropy", class_weights=weights)
    assert loss.class_weights is not None
    loss.class_weights = loss.class_weights.double()
    value, _ = torch_value_and_grad(loss, LOGITS, TARGETS)
    per_sample = [-math.log(softmax(z)[y]) for z, y in zip(LOGITS, TARGETS, strict=True)]
    w = [weights[y] for y in TARGETS]
    expected = sum(wi * li for wi, li in zip(w, per_sample, strict=True)) / sum(w)
    assert value == pytest.approx(expected, rel=1e-12)


def test_focal_alpha_on_several_classes_is_a_config_error() -> None:
    from nntune.errors import ConfigError

    with pytest.raises(ConfigError, match="binary task"):
        make("focal", n_classes=3, alpha=0.25)
