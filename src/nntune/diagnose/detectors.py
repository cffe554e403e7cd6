"""Detectors: pure functions from what a run recorded to a Finding (or None).

One detector per problem kind of the contract. Each reads the per-epoch history (the rows of
metrics.jsonl), the probe statistics and the data checks, and returns evidence with numbers and
a severity. The rules start from published ones (AutoTrainer, Zhang et al. ICSE 2021;
DeepDiagnosis, Wardat et al. ICSE 2022) and were calibrated on the sick and healthy configs of
examples/doctor/ plus ~60 more runs on every built-in dataset and arch (MLP, CNN 1-D/2-D,
ResNet, LSTM/GRU, transformer, autoencoder; SGD, momentum, Adam(W), RMSProp, GD; batch sizes
8 to full), half of them held out until the rules were fixed. Calibration changes, and why:

- vanishing gradients: first/last layer gradient-norm ratio < 1e-2 (was < 1e-3 AND a
  first-layer norm < 1e-4). The absolute norm depends on the loss scale and missed a 5-layer
  sigmoid MLP (ratio 1.6e-4, first norm 1.1e-4, stuck at chance); healthy runs stayed >= 0.15.
  Not reported when dying_relu is: dead units pass zero gradient, the depth is not the cause.
- exploding gradients: non-finite gradients; ratio > 70; a gradient norm EXPLODING_GROWTH
  (1e3, was 1e4) times the first epoch's while the loss got worse, or 10x when the run then
  died of a non-finite loss (a divergence, not a stray NaN); or a training loss that jumped
  EXPLODING_LOSS_RISE (100x) above the best loss before it. Huge-lr runs explode within one or
  two epochs, so a slow 1e4 growth of the epoch means was rarely seen before the NaN.
  Also (2026-12-06, issue 21) a median update ratio ‖Δw‖/‖w‖ above EXPLODING_UPDATE_RATIO (0.5:
  every step replaces half of the weights): a deep ReLU MLP with N(0, 0.5²) init on digits had
  first-step gradient norms of 9e3 and ratio 2.0 and died of NaN within its first epoch, with
  none of the growth signs (the gradients were huge from the start), and was reported nan_loss
  only; lr 10 gave 61. Healthy runs, aggressive ones included (Adam(W) lr 3e-2, momentum lr 0.1,
  widths 32-256): 0.001-0.015.
- dying ReLU: >= 70 % dead units (unchanged: sick runs 0.97-1.0, healthy <= 0.3 even at batch 8).
- saturated activations: > 60 % (was 50 %) of the inputs in the flat range: well-trained tanh
  nets at a high lr reach ~45 % while healthy; sick ones (large init, raw inputs) 72-99 %.
- oscillating loss: the later epochs' rises are measured against the run's total progress (from
  the uniform guess's loss log(K) for classifiers), not against the current loss, and only
  rises count: near-zero losses made minibatch noise look like 50 % swings, and the steady
  falls of a fast healthy run counted as "changes" (both gave false alarms).
- slow convergence: also read on the validation loss (noise-free descent where small batches
  make the training mean noisy), and it must fall steadily without slowing down (a healthy
  curve flattens); the drop is counted from log(K) for classifiers.
- overfitting: needs a train/validation metric gap > 0.1 (accuracy or R², last 3 epochs) with
  a validation loss that turned up or a training set learned by heart. A rising validation
  loss alone fired on accurate but over-confident healthy models (val accuracy 0.97-1.0).
- underfitting: both training AND validation scores poor (mixup/dropout lower the training
  accuracy of healthy runs), and levelled relative to the run's own progress (the old "< 2 %
  in the last quarter" also fired on the slow-convergence runs, which fall steadily).
- data issue: a feature far too large is reported alone; features only too small (std < 0.05,
  e.g. rare-ink border pixels after min-max scaling) only when they are most of the input, and
  constant columns only when most of the input is constant (they are harmless otherwise).
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

VANISHING_RATIO = 1e-2  # first/last layer gradient-norm ratio: two orders of magnitude
EXPLODING_RATIO = 70.0  # the first layer's gradients 70x the last layer's
EXPLODING_GROWTH = 1e3  # largest gradient norm over the first epoch's mean gradient norm
EXPLODING_GROWTH_BEFORE_NAN = 10.0  # ... enough when the run then died of a non-finite loss
EXPLODING_LOSS_RISE = 100.0  # an epoch's mean training loss over the best loss before it
EXPLODING_UPDATE_RATIO = 0.5  # median ‖Δw‖/‖w‖ of a step: half the weights replaced each step
LOSS_FLOOR = 0.1  # losses are compared with at least this share of the first epoch's loss


@DETECTORS.register("vanishing_gradients")
def vanishing_gradients(facts: RunFacts) -> Finding | None:
    """The first layer's gradients are orders of magnitude below the last layer's (median over
    the probe's samples of the whole run)."""
    probe = facts.probe
    if probe is None or probe.grad_ratio is None:
        return None
    if probe.dead_relu_fraction is not None and probe.dead_relu_fraction >= DEAD_RELU:
        return None  # dead units pass no gradient: dying_relu is the cause, not the depth
    if probe.grad_ratio < VANISHING_RATIO:
        return finding(
            "vanishing_gradients",
            "high" if probe.grad_ratio < VANISHING_RATIO**2 else "medium",
            first_last_grad_ratio=probe.grad_ratio,
            first_layer_grad_norm=probe.first_grad_norm
            if probe.first_grad_norm is not None
            else math.nan,
            last_layer_grad_norm=probe.last_grad_norm or math.nan,
        )
    return None


def _loss_blowup(facts: RunFacts) -> float | None:
    """The largest factor by which an epoch's mean training loss exceeded the best loss before
    it (at least LOSS_FLOOR of the first epoch's loss, so that a blip near zero loss is no
    blow-up). The first epoch is compared with the losses right after it (the next epoch's and
    the validation loss at its end) and, for classification, with the loss of a uniform guess
    log(K): a first-epoch mean far above all three is a spike inside that epoch (the weights
    blew up and came back, or died), while a high first loss that falls gradually is a bad
    start (unscaled inputs, a large init). Regression has no such reference for its first
    epoch."""
    values = [
        float(v) if isinstance(v, (int, float)) else math.nan
        for v in (r.get("train_loss") for r in facts.history)
    ]
    if not values or not math.isfinite(values[0]) or values[0] <= 0:
        return None
    worst = None
    if facts.task == "classification" and facts.n_classes and facts.n_classes > 1:
        after = [math.log(facts.n_classes)]
        if len(values) > 1 and math.isfinite(values[1]):
            after.append(values[1])
        val = facts.history[0].get("val_loss")
        if isinstance(val, (int, float)) and math.isfinite(val):
            after.append(float(val))
        worst = values[0] / max(after)
    floor = LOSS_FLOOR * values[0]
    best = values[0]
    for value in values[1:]:
        if not math.isfinite(value):
            continue
        factor = value / max(best, floor)
        worst = factor if worst is None else max(worst, factor)
        best = min(best, value)
    return worst


@DETECTORS.register("exploding_gradients")
def exploding_gradients(facts: RunFacts) -> Finding | None:
    """Gradients blow up: non-finite, far larger in the first layer than in the last, a gradient
    norm that grows by orders of magnitude over the first epoch's while the loss gets worse (by
    one order when the run then died of a non-finite loss: a divergence, not a stray NaN), or a
    training loss that jumps by orders of magnitude (the logits, and with them the gradients,
    exploded; it often ends in nan_loss). A run that is non-finite from its first steps without
    any of these signs is nan_loss only."""
    probe = facts.probe
    evidence: dict[str, float | str] = {}
    if probe is not None and probe.nonfinite_grads:
        evidence["nonfinite_gradient_samples"] = float(probe.nonfinite_grads)
    if probe is not None and probe.grad_ratio is not None and probe.grad_ratio > EXPLODING_RATIO:
        evidence["first_last_grad_ratio"] = probe.grad_ratio
    norms = _finite(facts.series("grad_norm"))
    losses = _finite(facts.series("train_loss"))
    if norms and norms[0] > 0:
        peak = max(norms[1:], default=0.0)
        if probe is not None and probe.max_grad_norm is not None:
            peak = max(peak, probe.max_grad_norm)
        growth = peak / norms[0]
        failed = facts.failure is not None and "non-finite" in facts.failure
        worse = failed or (len(losses) >= 2 and losses[-1] > min(losses))
        limit = EXPLODING_GROWTH_BEFORE_NAN if failed else EXPLODING_GROWTH
        if growth > limit and worse:
            evidence["grad_norm_growth"] = growth
    if (
        probe is not None
        and probe.update_ratio is not None
        and probe.update_ratio > EXPLODING_UPDATE_RATIO
    ):
        evidence["update_ratio"] = probe.update_ratio
    blowup = _loss_blowup(facts)
    if blowup is not None and blowup > EXPLODING_LOSS_RISE:
        evidence["train_loss_jump"] = blowup
    if not evidence:
        return None
    return finding("exploding_gradients", "high", **evidence)


# --- activations ----------------------------------------------------------------------------------

DEAD_RELU = 0.7
SATURATED = 0.6


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

# Loss-curve changes are measured against the run's total progress (from a uniform guess's loss,
# or the first epoch's, down to the lowest loss), not against the current loss: near zero loss,
# minibatch noise of a few 1e-3 is a large relative change but no oscillation; and the loss's
# falls are progress, so only its rises count.
OSCILLATION_UPS = 0.2  # share of the later epochs whose loss rose by more than UP_STEP
UP_STEP = 0.05  # ... of the total progress
OSCILLATION_RISE = 0.035  # mean rise per later epoch, as a share of the total progress
OSCILLATION_EPOCHS = 6  # fewer epochs are no evidence


def _chance_loss(facts: RunFacts) -> float:
    """The cross-entropy of a uniform guess, log(K), for classification (0 otherwise): where a
    classifier's loss starts, even when its first epoch's mean is already far below."""
    if facts.task == "classification" and facts.n_classes and facts.n_classes > 1:
        return math.log(facts.n_classes)
    return 0.0


def _progress(losses: list[float], start: float = 0.0) -> float:
    """The loss's total progress: from its start (the first epoch's mean, or the uniform guess's
    loss if higher) down to its lowest, at least LOSS_FLOOR of the start (a run that made almost
    no progress is judged against its loss level)."""
    first = max(losses[0], start)
    return max(first - min(losses), LOSS_FLOOR * abs(first))


@DETECTORS.register("oscillating_loss")
def oscillating_loss(facts: RunFacts) -> Finding | None:
    """The training loss jumps up and down from epoch to epoch instead of settling: in the later
    two thirds of the run, at least OSCILLATION_UPS of the epochs undo more than UP_STEP of all
    the progress made, and on average each epoch's rise undoes more than OSCILLATION_RISE of it
    (healthy runs, minibatch noise included, stay below ~0.025)."""
    losses = _finite(facts.series("train_loss"))
    if len(losses) < OSCILLATION_EPOCHS:
        return None
    scale = _progress(losses, _chance_loss(facts)) or 1.0
    tail = losses[len(losses) // 3 :]
    changes = [(b - a) / scale for a, b in itertools.pairwise(tail)]
    if not changes:
        return None
    ups = sum(c > UP_STEP for c in changes) / len(changes)
    rise = sum(max(c, 0.0) for c in changes) / len(changes)
    if ups >= OSCILLATION_UPS and rise > OSCILLATION_RISE:
        return finding(
            "oscillating_loss",
            "high" if rise > 0.2 else "medium",
            share_of_epochs_loss_rose=ups,
            mean_rise_over_progress=rise,
        )
    return None


SLOW_DROP = 0.3  # the training loss fell by less than this fraction over the whole run
SLOW_FALLING = 0.8  # ... yet fell in at least this share of the epochs
SLOW_KEEPS_PACE = 0.5  # ... and its second half fell at least half as much as its first half


def _relative_changes(values: list[float]) -> list[float]:
    return [(b - a) / abs(a) for a, b in itertools.pairwise(values) if a != 0]


def _steady_descent(values: list[float]) -> bool:
    """The series fell in at least SLOW_FALLING of its steps."""
    steps = list(itertools.pairwise(values))
    return bool(steps) and sum(b < a for a, b in steps) / len(steps) >= SLOW_FALLING


def _slow_curve(losses: list[float], start: float = 0.0) -> dict[str, float] | None:
    first = max(losses[0], start) if losses else 0.0
    if len(losses) < 4 or first <= 0:
        return None
    drop = (first - losses[-1]) / first
    mid = len(losses) // 2
    first_half, second_half = losses[0] - losses[mid], losses[mid] - losses[-1]
    keeps_pace = first_half > 0 and second_half >= SLOW_KEEPS_PACE * first_half
    if 0.0 < drop < SLOW_DROP and _steady_descent(losses) and keeps_pace:
        return {
            "relative_loss_drop": drop,
            "second_half_vs_first_half_drop": second_half / first_half,
        }
    return None


@DETECTORS.register("slow_convergence")
def slow_convergence(facts: RunFacts) -> Finding | None:
    """The loss falls steadily but far too little in the budget (a too small step size): it
    falls nearly every epoch, without slowing down (a healthy curve flattens as it converges;
    a too small step walks down a straight line), and in all by less than SLOW_DROP. Read on the
    training loss and on the validation loss (measured on fixed data with the epoch's final
    weights, so its steady descent shows even when small batches make the training mean noisy).
    A classifier's drop is counted from a uniform guess's loss log(K) when that is higher than
    its first epoch's: a run that made most of its progress inside the first epoch is not slow.
    """
    for key in ("train_loss", "val_loss"):
        losses = _finite(facts.series(key))
        evidence = _slow_curve(losses, _chance_loss(facts))
        if evidence is not None:
            return finding(
                "slow_convergence", "medium", loss=key, epochs=float(len(losses)), **evidence
            )
    return None


OVERFIT_RISE = 0.1  # val loss ended this much above its best
OVERFIT_GAP = 0.1  # train metric (accuracy, R²) above the validation metric
OVERFIT_MEMORIZED = 0.99  # a training accuracy (or R²) this high: the training set is learned
OVERFIT_LOSS_RATIO = 2.0  # without metrics: the final val loss over the final train loss


def _last_mean(values: list[float], k: int = 3) -> float:
    tail = values[-k:]
    return sum(tail) / len(tail)


@DETECTORS.register("overfitting")
def overfitting(facts: RunFacts) -> Finding | None:
    """The model learns its training set much better than it generalises: a train/validation gap
    in the task's metric (accuracy or R², mean of the last 3 epochs) above OVERFIT_GAP, together
    with a validation loss that turned up while the training loss kept falling, or with a
    training set learned by heart. A validation loss that rises while both metrics stay close
    (an over-confident but accurate model) is not reported, nor a gap while the validation loss
    still improves on a model that has not learned its training set."""
    val = facts.series("val_loss")
    train = facts.series("train_loss")
    if len(val) < 5 or len(train) != len(val) or not all(map(math.isfinite, val + train)):
        return None
    best = min(range(len(val)), key=val.__getitem__)
    rise = (val[-1] - val[best]) / max(abs(val[best]), 1e-12)
    turned_up = rise > OVERFIT_RISE and train[-1] < train[best] and best < 0.8 * (len(val) - 1)
    metric = "accuracy" if facts.task == "classification" else "r2"
    train_m, val_m = facts.series(f"train_{metric}"), facts.series(f"val_{metric}")
    evidence: dict[str, float | str] = {}
    if train_m and val_m:
        fitted, generalised = _last_mean(train_m), _last_mean(val_m)
        gap = fitted - generalised
        memorized = fitted >= OVERFIT_MEMORIZED
        if gap > OVERFIT_GAP and (turned_up or memorized):
            evidence[f"train_val_{metric}_gap"] = gap
            evidence[f"train_{metric}"] = fitted
    elif turned_up and val[-1] > OVERFIT_LOSS_RATIO * train[-1]:
        evidence["val_train_loss_ratio"] = val[-1] / max(train[-1], 1e-12)
    if not evidence:
        return None
    if turned_up:
        evidence["val_loss_rise"] = rise
        evidence["best_epoch"] = float(best + 1)
    return finding("overfitting", "high" if rise > 0.5 else "medium", **evidence)


UNDERFIT_ACCURACY = 0.7
UNDERFIT_R2 = 0.5
UNDERFIT_EPOCHS = 5  # fewer epochs are no evidence of a plateau
UNDERFIT_PLATEAU = 0.1  # the last third of the run made less than this share of the progress


@DETECTORS.register("underfitting")
def underfitting(facts: RunFacts) -> Finding | None:
    """The model cannot fit even its training data: training and validation scores are both
    poor, and the loss has levelled off (its last third made under UNDERFIT_PLATEAU of the run's
    progress; a loss still falling steadily is slow convergence, not a capacity limit)."""
    losses = _finite(facts.series("train_loss"))
    if len(losses) < UNDERFIT_EPOCHS:
        return None
    k = max(2, len(losses) // 3)
    recent = losses[-k - 1] - losses[-1]
    total = losses[0] - losses[-1]
    val = _finite(facts.series("val_loss"))
    descending = _steady_descent(losses[-k - 1 :]) or (
        len(val) == len(losses) and _steady_descent(val[-k - 1 :])
    )
    if total > LOSS_FLOOR * abs(losses[0]):
        levelled = recent <= UNDERFIT_PLATEAU * total
    else:  # hardly any progress: flat unless it walks down steadily (slow convergence)
        levelled = not descending
    if not levelled:
        return None
    if facts.task == "classification":
        train_acc, val_acc = facts.series("train_accuracy"), facts.series("val_accuracy")
        if not train_acc:
            return None
        chance = 1.0 / facts.n_classes if facts.n_classes else 0.0
        limit = max(UNDERFIT_ACCURACY, chance + 0.5 * (1 - chance))
        fitted = _last_mean(train_acc)
        generalised = _last_mean(val_acc) if val_acc else fitted
        if fitted < limit and generalised < limit:
            return finding(
                "underfitting",
                "medium",
                train_accuracy=fitted,
                val_accuracy=generalised,
                accuracy_limit=limit,
            )
        return None
    r2, val_r2 = facts.series("train_r2"), facts.series("val_r2")
    if r2 and _last_mean(r2) < UNDERFIT_R2 and (not val_r2 or _last_mean(val_r2) < UNDERFIT_R2):
        return finding("underfitting", "medium", train_r2=_last_mean(r2))
    return None


# --- data -----------------------------------------------------------------------------------------

UNSCALED_MEAN = 5.0
UNSCALED_STD = (0.05, 20.0)
UNSCALED_SMALL_SHARE = 0.5  # features that are only too small matter when they are the majority
CONSTANT_SHARE_ALARM = 0.5  # constant columns are harmless unless most of the input is constant
IMBALANCE = 10.0
DUPLICATES = 0.05
# text runs: more texts cut at max_length than this (auto's length keeps 95 % whole), and more
# held-out tokens outside the vocabulary than this, lose what the model could read
TRUNCATED_SHARE = 0.2
OOV_RATE = 0.25


@DETECTORS.register("data_issue")
def data_issue(facts: RunFacts) -> Finding | None:
    """Data problems: unscaled features, constant columns, strong class imbalance, rows shared
    between training and validation/test (the same image in two splits), non-finite values,
    for image folders empty class folders and skipped files, and for text empty texts, texts
    cut at max_length and held-out tokens outside the vocabulary (numbers from data checks).

    A feature far too large (|mean| > UNSCALED_MEAN or std > UNSCALED_STD[1]) dominates every
    dot product and is reported alone; features only too small (std < UNSCALED_STD[0], e.g. the
    rare-ink border pixels of min-max scaled images) are reported when they are most of the
    input. Constant columns likewise only when most of the input is constant."""
    data = facts.data
    if not data:
        return None
    evidence: dict[str, float | str] = {}
    features = max(int(data.get("features", 0) or 0), 1)
    if data.get("nonfinite_values", 0) > 0:
        evidence["nonfinite_values"] = float(data["nonfinite_values"])
    unscaled = int(data.get("unscaled_features", 0) or 0)
    too_large = (
        float(data.get("max_abs_mean", 0.0)) > UNSCALED_MEAN
        or float(data.get("max_std", 0.0)) > UNSCALED_STD[1]
    )
    if unscaled > 0 and (too_large or unscaled / features >= UNSCALED_SMALL_SHARE):
        evidence["unscaled_features"] = float(unscaled)
        evidence["max_abs_mean"] = float(data.get("max_abs_mean", 0.0))
        evidence["max_std"] = float(data.get("max_std", 0.0))
    if data.get("constant_features", 0) / features > CONSTANT_SHARE_ALARM:
        evidence["constant_features"] = float(data["constant_features"])
    if data.get("class_imbalance", 1.0) > IMBALANCE:
        evidence["class_imbalance"] = float(data["class_imbalance"])
    if data.get("duplicate_fraction", 0.0) > DUPLICATES:
        evidence["duplicate_fraction"] = float(data["duplicate_fraction"])
    # an image folder: class folders without an image, files that are no usable image
    for key in ("empty_class_folders", "skipped_files"):
        if data.get(key, 0) > 0:
            evidence[key] = float(data[key])
    # a text run: empty texts, texts cut short, held-out words the vocabulary lacks
    if data.get("empty_texts", 0) > 0:
        evidence["empty_texts"] = float(data["empty_texts"])
    if data.get("truncated_share", 0.0) > TRUNCATED_SHARE:
        evidence["truncated_share"] = float(data["truncated_share"])
    if data.get("oov_rate", 0.0) > OOV_RATE:
        evidence["oov_rate"] = float(data["oov_rate"])
    if not evidence:
        return None
    severe = "nonfinite_values" in evidence or "unscaled_features" in evidence
    return finding("data_issue", "high" if severe else "medium", **evidence)


# what a finding can be the consequence of: gradients that explode end in NaN, a collapsed
# model (underfitting) or a jumping loss; gradients that vanish, die or saturate leave a model
# that learns slowly or not at all; unscaled or non-finite inputs do any of these
CAUSES: dict[str, tuple[str, ...]] = {
    "nan_loss": ("exploding_gradients", "data_issue"),
    "oscillating_loss": ("exploding_gradients",),
    "underfitting": (
        "exploding_gradients",
        "vanishing_gradients",
        "dying_relu",
        "saturated_activations",
        "data_issue",
    ),
    "slow_convergence": (
        "vanishing_gradients",
        "dying_relu",
        "saturated_activations",
        "data_issue",
    ),
}


def detect(facts: RunFacts) -> list[Finding]:
    """Every detector's finding, causes first: a finding that another one found explains is
    marked ``consequence_of`` it and listed after the causes (so a repair treats the cause
    first; a deep net whose gradients explode into a collapsed model is exploding_gradients
    with underfitting as its consequence, not underfitting alone), else in the contract's order
    of kinds."""
    found = []
    for kind in KINDS:
        result = DETECTORS.get(kind).builder(facts)
        if result is not None:
            found.append(result)
    kinds = {f.kind for f in found}
    for item in found:
        item.consequence_of = [cause for cause in CAUSES.get(item.kind, ()) if cause in kinds]
    return sorted(found, key=lambda f: bool(f.consequence_of))
