"""Detectors: pure functions from what a run recorded to a Finding (or None).

One detector per problem kind of the contract. Each reads the per-epoch history (the rows of
metrics.jsonl), the probe statistics and the data checks, and returns evidence with numbers and
a severity. The rules start from published ones and are calibrated on nntune's sick and healthy
example configs (examples/doctor/):

- vanishing gradients: first/last layer gradient-norm ratio < 1e-3 with a first-layer norm
  < 1e-4 (AutoTrainer, Zhang et al. ICSE 2021);
- exploding gradients: that ratio > 70, non-finite gradients, or a gradient norm that grew by
  10⁴ while the loss got worse (AutoTrainer);
- dying ReLU: ≥ 70 % of a ReLU layer's units output zero on every sample (AutoTrainer);
- saturated activations: > 50 % of a sigmoid/tanh layer's inputs in its flat range
  (DeepDiagnosis, Wardat et al. ICSE 2022);
- the loss-curve kinds (oscillating, slow convergence, over- and underfitting) read the
  per-epoch losses and metrics.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nntune.diagnose.probe import ProbeStats
from nntune.records import Finding
from nntune.registry import Registry

KINDS = (
    "nan_loss",
    "exploding_gradients",
    "vanishing_gradients",
    "dying_relu",
    "saturated_activations",
    "oscillating_loss",
    "slow_convergence",
    "overfitting",
    "underfitting",
    "data_issue",
)


@dataclass
class RunFacts:
    """Everything detectors may read about one run."""

    history: list[dict[str, Any]]  # metrics.jsonl rows
    task: str = "classification"
    epochs: int = 0  # the planned budget
    probe: ProbeStats | None = None
    failure: str | None = None  # the error that ended the run, if any
    data: dict[str, Any] = field(default_factory=dict)  # data check numbers (data.checks)
    n_classes: int | None = None

    def series(self, key: str) -> list[float]:
        return [float(r[key]) for r in self.history if isinstance(r.get(key), (int, float))]


Detector = Callable[[RunFacts], Finding | None]
DETECTORS: Registry[Detector] = Registry("detector")


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _round(value: float) -> float:
    return float(f"{value:.4g}") if math.isfinite(value) else value


def finding(kind: str, severity: str, **evidence: float | str) -> Finding:
    clean = {k: _round(v) if isinstance(v, float) else v for k, v in evidence.items()}
    return Finding(kind=kind, severity=severity, evidence=clean)


# --- numbers ------------------------------------------------------------------------------------


@DETECTORS.register("nan_loss")
def nan_loss(facts: RunFacts) -> Finding | None:
    """Non-finite losses: steps skipped by the NaN guard, non-finite epoch losses, or a run that
    stopped on them."""
    skipped = sum(int(r.get("skipped_steps") or 0) for r in facts.history)
    bad_epochs = sum(
        1
        for r in facts.history
        for k in ("train_loss", "val_loss")
        if (isinstance(r.get(k), float) and not math.isfinite(r[k]))
        or (k == "train_loss" and r.get(k) is None)
    )
    failed = facts.failure is not None and "non-finite" in facts.failure
    if not (skipped or bad_epochs or failed):
        return None
    severity = "high" if failed or bad_epochs else "medium"
    return finding(
        "nan_loss", severity, skipped_steps=skipped, nonfinite_epochs=bad_epochs, failed=str(failed)
    )


# --- gradients ------------------------------------------------------------------------------------

VANISHING_RATIO = 1e-3
VANISHING_FIRST_NORM = 1e-4
EXPLODING_RATIO = 70.0
EXPLODING_GROWTH = 1e4


@DETECTORS.register("vanishing_gradients")
def vanishing_gradients(facts: RunFacts) -> Finding | None:
    """The first layer's gradients are orders of magnitude below the last layer's."""
    probe = facts.probe
    if probe is None or probe.grad_ratio is None or probe.first_grad_norm is None:
        return None
    if probe.grad_ratio < VANISHING_RATIO and probe.first_grad_norm < VANISHING_FIRST_NORM:
        return finding(
            "vanishing_gradients",
            "high" if probe.grad_ratio < VANISHING_RATIO**2 else "medium",
            first_last_grad_ratio=probe.grad_ratio,
            first_layer_grad_norm=probe.first_grad_norm,
            last_layer_grad_norm=probe.last_grad_norm or math.nan,
        )
    return None


@DETECTORS.register("exploding_gradients")
def exploding_gradients(facts: RunFacts) -> Finding | None:
    """Gradients blow up: non-finite, far larger in the first layer than in the last, or a
    gradient norm that grows by orders of magnitude while the loss gets worse."""
    probe = facts.probe
    evidence: dict[str, float | str] = {}
    if probe is not None and probe.nonfinite_grads:
        evidence["nonfinite_gradient_samples"] = float(probe.nonfinite_grads)
    if probe is not None and probe.grad_ratio is not None and probe.grad_ratio > EXPLODING_RATIO:
        evidence["first_last_grad_ratio"] = probe.grad_ratio
    norms = _finite(facts.series("grad_norm"))
    losses = _finite(facts.series("train_loss"))
    if len(norms) >= 2 and norms[0] > 0 and len(losses) >= 2:
        growth = max(norms) / norms[0]
        if growth > EXPLODING_GROWTH and losses[-1] > min(losses):
            evidence["grad_norm_growth"] = growth
    if not evidence:
        return None
    return finding("exploding_gradients", "high", **evidence)


# --- activations ----------------------------------------------------------------------------------

DEAD_RELU = 0.7
SATURATED = 0.5


@DETECTORS.register("dying_relu")
def dying_relu(facts: RunFacts) -> Finding | None:
    """Most units of a ReLU layer output zero for every input: they get no gradient again."""
    probe = facts.probe
    if probe is None or probe.dead_relu_fraction is None:
        return None
    if probe.dead_relu_fraction >= DEAD_RELU:
        return finding(
            "dying_relu",
            "high" if probe.dead_relu_fraction >= 0.9 else "medium",
            dead_relu_fraction=probe.dead_relu_fraction,
        )
    return None


@DETECTORS.register("saturated_activations")
def saturated_activations(facts: RunFacts) -> Finding | None:
    """Most inputs of a sigmoid/tanh layer sit in its flat range, where its slope is ~0."""
    probe = facts.probe
    if probe is None or probe.saturated_fraction is None:
        return None
    if probe.saturated_fraction > SATURATED:
        return finding(
            "saturated_activations", "medium", saturated_fraction=probe.saturated_fraction
        )
    return None


# --- loss curves ----------------------------------------------------------------------------------

OSCILLATION_UPS = 0.3  # share of epochs whose training loss rose by more than UP_STEP
UP_STEP = 0.05
OSCILLATION_SWING = 0.1  # mean relative epoch-to-epoch change


def _relative_changes(values: list[float]) -> list[float]:
    return [(b - a) / abs(a) for a, b in itertools.pairwise(values) if a != 0]


@DETECTORS.register("oscillating_loss")
def oscillating_loss(facts: RunFacts) -> Finding | None:
    """The training loss jumps up and down from epoch to epoch instead of settling."""
    losses = _finite(facts.series("train_loss"))
    if len(losses) < 6:
        return None
    changes = _relative_changes(losses[len(losses) // 3 :])
    if not changes:
        return None
    ups = sum(c > UP_STEP for c in changes) / len(changes)
    swing = sum(abs(c) for c in changes) / len(changes)
    if ups >= OSCILLATION_UPS and swing > OSCILLATION_SWING:
        return finding(
            "oscillating_loss",
            "high" if swing > 0.5 else "medium",
            share_of_epochs_loss_rose=ups,
            mean_relative_change=swing,
        )
    return None


SLOW_DROP = 0.3  # the training loss fell by less than this fraction over the whole run


@DETECTORS.register("slow_convergence")
def slow_convergence(facts: RunFacts) -> Finding | None:
    """The loss falls steadily but far too little in the budget (a too small step size)."""
    losses = _finite(facts.series("train_loss"))
    if len(losses) < 4 or losses[0] <= 0:
        return None
    drop = (losses[0] - losses[-1]) / losses[0]
    changes = _relative_changes(losses)
    steady = sum(c <= 0.01 for c in changes) / len(changes) >= 0.8
    still_falling = losses[-1] < losses[len(losses) // 2]
    if 0.0 <= drop < SLOW_DROP and steady and still_falling:
        return finding(
            "slow_convergence", "medium", relative_loss_drop=drop, epochs=float(len(losses))
        )
    return None


OVERFIT_RISE = 0.1  # val loss ended this much above its best
OVERFIT_GAP = 0.1  # train accuracy above val accuracy


@DETECTORS.register("overfitting")
def overfitting(facts: RunFacts) -> Finding | None:
    """Validation loss turns up while training loss keeps falling; a wide train/val gap."""
    val = facts.series("val_loss")
    train = facts.series("train_loss")
    if len(val) < 5 or len(train) != len(val) or not all(map(math.isfinite, val + train)):
        return None
    best = min(range(len(val)), key=val.__getitem__)
    rise = (val[-1] - val[best]) / max(abs(val[best]), 1e-12)
    train_fell = train[-1] < train[best]
    evidence: dict[str, float | str] = {}
    if rise > OVERFIT_RISE and train_fell and best < 0.8 * (len(val) - 1):
        evidence["val_loss_rise"] = rise
        evidence["best_epoch"] = float(best + 1)
    if facts.task == "classification":
        train_acc, val_acc = facts.series("train_accuracy"), facts.series("val_accuracy")
        if train_acc and val_acc:
            gap = train_acc[-1] - val_acc[-1]
            if (gap > OVERFIT_GAP and evidence) or (gap > 2 * OVERFIT_GAP and train_acc[-1] > 0.95):
                evidence["train_val_accuracy_gap"] = gap
    if not evidence:
        return None
    return finding("overfitting", "high" if rise > 0.5 else "medium", **evidence)


UNDERFIT_ACCURACY = 0.7
UNDERFIT_R2 = 0.5


@DETECTORS.register("underfitting")
def underfitting(facts: RunFacts) -> Finding | None:
    """The model cannot fit even its training data, and training has levelled off."""
    losses = _finite(facts.series("train_loss"))
    if len(losses) < 4:
        return None
    quarter = max(1, len(losses) // 4)
    levelled = (losses[-quarter - 1] - losses[-1]) / max(abs(losses[-quarter - 1]), 1e-12) < 0.02
    if facts.task == "classification":
        train_acc = facts.series("train_accuracy")
        if not train_acc:
            return None
        chance = 1.0 / facts.n_classes if facts.n_classes else 0.0
        limit = max(UNDERFIT_ACCURACY, chance + 0.5 * (1 - chance))
        if train_acc[-1] < limit and levelled:
            return finding(
                "underfitting", "medium", train_accuracy=train_acc[-1], accuracy_limit=limit
            )
        return None
    r2 = facts.series("train_r2")
    if r2 and r2[-1] < UNDERFIT_R2 and levelled:
        return finding("underfitting", "medium", train_r2=r2[-1])
    return None


# --- data -----------------------------------------------------------------------------------------

UNSCALED_MEAN = 5.0
UNSCALED_STD = (0.05, 20.0)
IMBALANCE = 10.0
DUPLICATES = 0.05


@DETECTORS.register("data_issue")
def data_issue(facts: RunFacts) -> Finding | None:
    """Data problems: unscaled features, constant columns, strong class imbalance, rows shared
    between training and validation/test, non-finite values (numbers from data checks)."""
    data = facts.data
    if not data:
        return None
    evidence: dict[str, float | str] = {}
    if data.get("nonfinite_values", 0) > 0:
        evidence["nonfinite_values"] = float(data["nonfinite_values"])
    if data.get("unscaled_features", 0) > 0:
        evidence["unscaled_features"] = float(data["unscaled_features"])
        evidence["max_abs_mean"] = float(data.get("max_abs_mean", 0.0))
        evidence["max_std"] = float(data.get("max_std", 0.0))
    if data.get("constant_features", 0) > 0:
        evidence["constant_features"] = float(data["constant_features"])
    if data.get("class_imbalance", 1.0) > IMBALANCE:
        evidence["class_imbalance"] = float(data["class_imbalance"])
    if data.get("duplicate_fraction", 0.0) > DUPLICATES:
        evidence["duplicate_fraction"] = float(data["duplicate_fraction"])
    if not evidence:
        return None
    severe = "nonfinite_values" in evidence or "unscaled_features" in evidence
    return finding("data_issue", "high" if severe else "medium", **evidence)


def detect(facts: RunFacts) -> list[Finding]:
    """Every detector's finding, in the order of the contract's kinds."""
    found = []
    for kind in KINDS:
        result = DETECTORS.get(kind).builder(facts)
        if result is not None:
            found.append(result)
    return found
