"""``nntune ensemble``: several run folders' models averaged, against each member.

Classification averages the members' class probabilities, regression their outputs. The
members must have been trained on the same data with the same split (the same test samples in
the same order, the same classes); each member's data is rebuilt and checked as
``nntune evaluate`` does, so a member whose data changed is refused.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nntune.errors import ConfigError, DataError
from nntune.evaluate.evaluation import OpenedRun, open_run, split_part
from nntune.evaluate.scores import classification_scores, regression_scores
from nntune.train.evaluate import outputs_for_metrics, predict_outputs
from nntune.usercode import is_reference, split_reference


def snapshot_names(run_dir: Path) -> list[str]:
    """A run's snapshot checkpoints (train.snapshots), in epoch order."""
    found = (run_dir / "checkpoints").glob("snapshot-*.pt")
    names = [p.stem for p in found if p.stem.removeprefix("snapshot-").isdigit()]
    return sorted(names, key=lambda n: int(n.removeprefix("snapshot-")))


def _scores(opened: OpenedRun, y: torch.Tensor, readable: torch.Tensor) -> dict[str, Any]:
    """Every metric of averaged probabilities (classification) or outputs (regression)."""
    if opened.bundle.task == "classification":
        return classification_scores(y.numpy(), readable.numpy(), None, opened.bundle.class_names)[
            "metrics"
        ]
    return regression_scores(y.numpy(), readable.numpy())["metrics"]


def ensemble_runs(
    run_dirs: Sequence[str | Path],
    *,
    split: str = "test",
    checkpoint: str = "best",
    trust_code: bool = False,
) -> dict[str, Any]:
    """Score each run folder and the average of all of them on ``split`` (one run folder with
    ``train.snapshots``: its snapshots are the members). Returns
    ``{"members": [{"run", "metrics"}], "ensemble": {"metrics"}, "mean_member": {...},
    "best_member": {...}, "gain_over_mean_member", "metric", ...}``."""
    if not run_dirs:
        raise ConfigError("give 2 or more run folders (or one run with snapshots)")
    if len({str(Path(r).resolve()) for r in run_dirs}) != len(run_dirs):
        raise ConfigError("the same run folder is given twice; give different runs")
    sources = [(Path(r), checkpoint) for r in run_dirs]
    if len(run_dirs) == 1:  # one run: a snapshot ensemble of its lr cycles' ends
        snapshots = snapshot_names(Path(run_dirs[0]))
        if len(snapshots) < 2:
            raise ConfigError(
                f"an ensemble needs 2 or more run folders, or one run with 2 or more snapshots "
                f"(train.snapshots with a restarting schedule); '{run_dirs[0]}' has "
                f"{len(snapshots)}"
            )
        sources = [(Path(run_dirs[0]), name) for name in snapshots]
    members: list[dict[str, Any]] = []
    total: torch.Tensor | None = None
    first: OpenedRun | None = None
    targets: torch.Tensor | None = None
    for run_dir, member_checkpoint in sources:
        opened = open_run(run_dir, member_checkpoint, trust_code)
        x, y = split_part(opened, split)
        if first is None or targets is None:
            first, targets = opened, y.cpu()
        else:
            _check_same_data(first, opened, targets, y.cpu(), split)
        with torch.inference_mode():
            outputs = predict_outputs(opened.model, x)
        readable = outputs_for_metrics(opened.loss, opened.bundle.task, outputs).float().cpu()
        total = readable if total is None else total + readable
        members.append(
            {
                "run": str(opened.folder),
                "checkpoint": opened.checkpoint,
                "metrics": _scores(opened, y.cpu(), readable),
            }
        )
    assert first is not None and targets is not None and total is not None
    averaged = total / len(sources)
    ensemble = _scores(first, targets, averaged)
    task = first.bundle.task
    metric = "accuracy" if task == "classification" else "rmse"
    higher = task == "classification"
    values = [m["metrics"][metric] for m in members]
    mean_member = statistics.fmean(values)
    best = max(values) if higher else min(values)
    gain = ensemble[metric] - mean_member if higher else mean_member - ensemble[metric]
    return {
        "task": task,
        "split": split,
        "checkpoint": checkpoint,
        "n": len(targets),
        "metric": metric,
        "higher_is_better": higher,
        "members": members,
        "ensemble": {
            "metrics": ensemble,
            "method": "mean of probabilities" if higher else "mean of outputs",
        },
        "mean_member": mean_member,
        "best_member": best,
        "gain_over_mean_member": gain,
        "beats_best_member": (ensemble[metric] > best) if higher else (ensemble[metric] < best),
    }


# the data fields that decide which samples a split holds (preprocessing and augmentation may
# differ between members: they change features, not samples)
SAMPLE_FIELDS = ("dataset", "target", "features", "task", "n_samples", "noise", "val_split",
                 "val_fold", "test_split")  # fmt: skip


def _samples(opened: OpenedRun) -> dict[str, Any]:
    data = opened.config.data
    fields = {name: getattr(data, name) for name in SAMPLE_FIELDS}
    if is_reference(data.dataset):  # user code: the same code (by its hash), wherever it lies
        module, attr = split_reference(data.dataset)
        fields["dataset"] = f"{opened.config.code.get(module, module)}:{attr}"
        fields["dataset options"] = dict(data.model_extra or {})
    fields["split seed"] = data.split_seed if data.split_seed is not None else opened.config.seed
    return fields


def _check_same_data(
    first: OpenedRun, other: OpenedRun, y_first: torch.Tensor, y_other: torch.Tensor, split: str
) -> None:
    """The same samples in the same order: the data fields that pick them, and the targets."""
    problems = []
    a, b = _samples(first), _samples(other)
    differ = [f"data.{k}" if k != "split seed" else k for k in a if a[k] != b[k]]
    if differ:
        problems.append(f"{', '.join(differ)} differ")
    if other.bundle.task != first.bundle.task:
        problems.append(f"task {other.bundle.task} instead of {first.bundle.task}")
    if other.bundle.class_names != first.bundle.class_names:
        problems.append("other class names")
    if y_other.shape != y_first.shape or not torch.equal(y_other, y_first):
        problems.append(f"other {split} targets")
    if problems:
        raise DataError(
            f"run '{other.folder}' does not share the {split} samples of run '{first.folder}': "
            f"{'; '.join(problems)}. Ensemble runs of one dataset and split: the same data "
            "section, and data.split_seed fixed when the seeds differ"
        )
