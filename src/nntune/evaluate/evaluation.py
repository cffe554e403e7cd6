"""``evaluate_run``: a run folder's model on one of its data splits, with every metric and the
model's cost.

The split is rebuilt exactly as the run was trained: the config saved with the checkpoint gives
the dataset, the seed and the split fractions, and the data goes through the same preparation as
in training (:func:`nntune.data.prepare_data`). Preprocessing fitted on the training part is
deterministic, so it is fitted again; it must equal the fitted preprocessing saved with the
checkpoint, else the data changed since training and evaluating would be a lie (an error). The
model is the run's checkpoint, as :func:`nntune.load_run` loads it; the loss is built as the
trainer builds it (class weights from the training part).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nntune.config import Config, validate_config
from nntune.data import DataBundle, prepare_data
from nntune.errors import ConfigError, DataError, NntuneError, RunFolderError
from nntune.evaluate.cost import model_cost
from nntune.evaluate.scores import (
    classification_scores,
    finite_or_none,
    regression_scores,
    roc_curves,
)
from nntune.losses import LOSSES, Loss, build_loss
from nntune.train import load_run
from nntune.train.attacks import ATTACKS
from nntune.train.attacks import attack as attack_inputs
from nntune.train.build import as_reconstruction, is_reconstruction
from nntune.train.checkpoint import load_checkpoint, same_state
from nntune.train.evaluate import predict_outputs

SPLITS = ("test", "val", "train")
CHECKPOINTS = ("best", "last")
SNAPSHOT = re.compile(r"snapshot-\d+")  # train.snapshots: the weights at an lr cycle's end
# what Trainer records as the dataset of data given in Python: it cannot be loaded again
USER_DATA = ("user data", "user Dataset")


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    checkpoint: str = "best",
    *,
    cost: bool = True,
    threads: int | None = None,
    curves: bool = False,
    attack: str | None = None,
    eps: float = 0.1,
    steps: int = 10,
    trust_code: bool = False,
) -> dict[str, Any]:
    """Evaluate the ``checkpoint`` (``best`` or ``last``) of a run folder on its ``split``
    (``test``, ``val`` or ``train``; the training part without augmentation).

    Returns ``{"run", "split", "checkpoint", "task", "n", "metrics", "per_class",
    "confusion_matrix", "cost"}``; ``metrics`` holds ``loss`` plus ``accuracy``, ``precision``,
    ``recall``, ``f1``, ``auc``, ``pr_auc``, ``log_loss`` (classification) or ``rmse``, ``mae``,
    ``r2`` (regression); undefined values are None. ``cost=False`` leaves out the cost;
    ``threads`` sets torch's threads for the timings (default: torch's current setting).
    ``curves=True`` adds ``roc`` (classification: one-vs-rest ROC curves, for reports).
    ``attack`` (``fgsm`` or ``pgd``, L∞ budget ``eps`` in preprocessed units, PGD with
    ``steps`` steps) scores the model on adversarial versions of the split: robust metrics.
    ``last`` of a run with train.ema/swa is its weight average, as the run ended with.
    ``trust_code``: import the user code the run names, from its own copies (else a run that
    names user code is refused). Raises :class:`~nntune.errors.NntuneError` subclasses on bad input.
    """
    if split not in SPLITS:
        raise ConfigError(f"--split '{split}' is not a split; allowed: {', '.join(SPLITS)}")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads {threads}: give 1 or more")
    if attack is not None and attack not in ATTACKS:
        raise ConfigError(f"--attack '{attack}': allowed: {', '.join(ATTACKS)}")
    if attack is not None and not eps > 0:
        raise ConfigError(f"--eps {eps}: give a positive perturbation budget, e.g. 0.1")
    if steps < 1:
        raise ConfigError(f"--steps {steps}: give 1 or more")
    opened = open_run(run_dir, checkpoint, trust_code)
    folder, bundle, loss, model = opened.folder, opened.bundle, opened.loss, opened.model
    used, notes = opened.checkpoint, list(opened.notes)
    part = split_part(opened, split)
    x, y = part
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x, y = x.to(device), y.to(device)
    if attack is not None:
        x = _adversarial(model, loss, x, y, attack, eps, steps)
    outputs = predict_outputs(model, x)

    result: dict[str, Any] = {
        "run": str(folder),
        "split": split,
        "checkpoint": used,
        "task": bundle.task,
        "n": len(y),
    }
    if attack is not None:
        result["attack"] = {"method": attack, "eps": eps, "norm": "linf"}
        if attack == "pgd":
            result["attack"].update(steps=steps, step_size=2.5 * eps / steps, random_start=True)
    result.update(score_outputs(opened, outputs, y, curves=curves))
    if cost and len(x):
        result["cost"] = model_cost(model, x, threads=threads)
    elif cost:
        notes.append("the split is empty: no cost measured")
    if notes:
        result["notes"] = notes
    return result


def score_outputs(
    opened: OpenedRun, outputs: torch.Tensor, y: torch.Tensor, *, curves: bool = False
) -> dict[str, Any]:
    """``{"metrics", "per_class", "confusion_matrix"}`` (and ``roc`` with ``curves``) of a
    run's ``outputs`` against the targets ``y``; ``metrics`` starts with the run's loss."""
    loss, bundle = opened.loss, opened.bundle
    with torch.no_grad():
        loss_value = float(loss(outputs, y)) if len(y) else math.nan
    extra: dict[str, Any] = {}
    if bundle.task == "classification":
        labels = loss.predict_labels(outputs).cpu().numpy()
        probs = loss.probabilities(outputs).cpu().numpy()
        scores = classification_scores(y.cpu().numpy(), probs, labels, bundle.class_names)
        if curves:
            names = [row["class"] for row in scores["per_class"]]
            extra["roc"] = roc_curves(y.cpu().numpy(), probs, names)
    else:
        scores = regression_scores(y.cpu().numpy(), outputs.float().cpu().numpy())
        scores.update(per_class=[], confusion_matrix=None)
    return {
        **extra,
        "metrics": {"loss": finite_or_none(loss_value), **scores["metrics"]},
        "per_class": scores["per_class"],
        "confusion_matrix": scores["confusion_matrix"],
    }


@dataclass
class OpenedRun:
    """A run folder's model with the data and loss it was trained with, ready to be scored
    (by evaluate, compress and export alike)."""

    folder: Path
    model: torch.nn.Module
    config: Config
    bundle: DataBundle
    loss: Loss
    checkpoint: str  # the checkpoint actually loaded (best falls back to last)
    notes: list[str]


def open_run(run_dir: str | Path, checkpoint: str = "best", trust_code: bool = False) -> OpenedRun:
    """Load a run folder's ``checkpoint`` (``last`` with its weight average, as the run ended)
    and rebuild its data exactly as trained; errors name what does not fit."""
    if checkpoint not in CHECKPOINTS and not SNAPSHOT.fullmatch(checkpoint):
        raise ConfigError(
            f"--checkpoint '{checkpoint}' is not a checkpoint; allowed: {', '.join(CHECKPOINTS)} "
            "or snapshot-<epoch> (train.snapshots)"
        )
    folder = Path(run_dir)
    if (
        SNAPSHOT.fullmatch(checkpoint)
        and not (folder / "checkpoints" / f"{checkpoint}.pt").exists()
    ):
        raise RunFolderError(f"run '{folder}' has no checkpoints/{checkpoint}.pt")
    # checks the folder (RunFolderError if unusable) and the trust in its user code
    predictor = load_run(folder, checkpoint, trust_code)
    path = folder / "checkpoints" / f"{checkpoint}.pt"
    used = checkpoint if path.exists() else "last"  # load_run falls back to last.pt
    config = validate_config(predictor.meta["config"])
    bundle = _rebuild_data(config, predictor.meta, folder)
    notes: list[str] = []
    if used == "last":
        notes += _use_weight_average(predictor.model, folder / "checkpoints" / "last.pt")
    loss = run_loss(config, bundle)
    return OpenedRun(folder, predictor.model, config, bundle, loss, used, notes)


def split_part(opened: OpenedRun, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The (x, y) tensors of one split of an opened run; a DataError when it has none."""
    if split not in SPLITS:
        raise ConfigError(f"--split '{split}' is not a split; allowed: {', '.join(SPLITS)}")
    part = opened.bundle.split(split)
    if part is None:
        why = {
            "val": "data.val_split is 0",
            "test": "the dataset has no test split and data.test_split is 0",
            "train": "it was trained on a torch Dataset",
        }[split]
        raise DataError(f"run '{opened.folder}' has no {split} part ({why}); try another --split")
    return part


def _adversarial(
    model: torch.nn.Module,
    loss: Loss,
    x: torch.Tensor,
    y: torch.Tensor,
    method: str,
    eps: float,
    steps: int,
    batch_size: int = 512,
) -> torch.Tensor:
    """The split's adversarial examples, in batches; PGD's random start is seeded (0), so an
    evaluation is repeatable."""
    generator = torch.Generator().manual_seed(0)
    parts = [
        attack_inputs(
            model,
            loss,
            x[i : i + batch_size],
            y[i : i + batch_size],
            method=method,
            eps=eps,
            steps=steps,
            generator=generator,
        )
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(parts) if parts else x


def _rebuild_data(config: Config, meta: dict[str, Any], folder: Path) -> DataBundle:
    """The run's data, split and preprocessed as in training; an error if it is not the same
    data (the preprocessing fitted now differs from the saved one, or the shapes do)."""
    if meta.get("dataset") in USER_DATA:
        raise RunFolderError(
            f"run '{folder}' was trained on data given in Python (Trainer(data=...)), which is "
            "not saved with the run; evaluate its model with nntune.load_run(...).predict(x)"
        )
    bundle = prepare_data(config.data, config.seed)
    if is_reconstruction(config):
        bundle = as_reconstruction(bundle)
    saved = meta.get("pipeline")
    fitted = bundle.pipeline.state_dict() if bundle.pipeline is not None else None
    changed = []
    if saved is not None and fitted is not None and not same_state(saved, fitted):
        changed.append("the preprocessing fitted on its training part")
    if list(bundle.sample_shape) != list(meta.get("sample_shape", [])):
        changed.append(f"the sample shape ({meta.get('sample_shape')} → {bundle.sample_shape})")
    if bundle.n_outputs != meta.get("n_outputs"):
        changed.append(f"the number of outputs ({meta.get('n_outputs')} → {bundle.n_outputs})")
    if (meta.get("class_names") or None) != (bundle.class_names or None):
        changed.append("the class names")
    if changed:
        raise DataError(
            f"the data of run '{folder}' (data.dataset '{config.data.dataset}') is not the data "
            f"it was trained on: {'; '.join(changed)} differ(s) from what the checkpoint saved. "
            "Restore the original data file to evaluate this run"
        )
    return bundle


def run_loss(config: Config, bundle: DataBundle) -> Loss:
    """The run's loss, built as the trainer builds it (class weights from the training part)."""
    try:
        entry = LOSSES.get(config.loss.name, key="loss")
        return build_loss(
            entry.name,
            entry.parse_options(config.loss.options, "loss"),
            bundle.task,
            bundle.y_train if bundle.task == "classification" else None,
            bundle.n_outputs,
        )
    except NntuneError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise RunFolderError(f"the loss of this run cannot be rebuilt: {err}") from None


def _use_weight_average(model: torch.nn.Module, path: Path) -> list[str]:
    """last.pt keeps the trained weights and, with train.ema/swa, their average, which is what
    the run validated and ended with: load the average into ``model``."""
    from nntune.train.averaging import WeightAverage

    engine = load_checkpoint(path).get("engine") or {}
    saved = engine.get("average")
    if not saved or saved.get("average") is None:
        return []
    average = WeightAverage(model, "ema")
    try:
        average.load_state_dict(saved)
        model.load_state_dict(average.weights())
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        raise RunFolderError(f"'{path}' holds a weight average that does not fit: {err}") from None
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if has_bn:
        return [
            "last.pt: the weight average is evaluated with its averaged BatchNorm statistics "
            "(SWA recomputes them at the end of training, so its final numbers may differ)"
        ]
    return []
