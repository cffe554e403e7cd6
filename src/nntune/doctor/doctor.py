"""``nntune doctor``: probe a config's training, name its problems, and verify repairs.

Diagnosis trains the config once with the probe on (its own budget unless ``epochs`` is given)
and runs every detector. Repair (``repair=True``) is conservative by construction:

- the unrepaired config is trained on ``seeds`` seeds (the probe run is the first), giving a
  baseline validation score per seed and its seed-to-seed spread;
- for each problem, most severe first, its remedies are tried in order, each trained on the
  same seeds and budget; a remedy is kept only if no run still shows the problem AND its mean
  validation score beats the current one by more than the spread of both (so a fix within seed
  noise is rejected). Kept remedies stack; each must beat the config before it, so the repaired
  config is never worse than the original on these seeds;
- tried-and-rejected remedies are reported with their numbers.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nntune.config import (
    Config,
    apply_overrides,
    config_to_dict,
    config_to_yaml,
    validate_config,
)
from nntune.diagnose.remedies import remedies_for
from nntune.errors import ConfigError, TrainingError
from nntune.train.checkpoint import write_json_atomic, write_text_atomic
from nntune.train.objects import with_objects

SEVERITY = {"high": 0, "medium": 1, "low": 2}


@dataclass
class Trial:
    """One training run of the doctor: its problems and validation score."""

    seed: int
    kinds: set[str]
    score: float  # higher is better (a loss or error is negated)
    report: dict[str, Any] = field(default_factory=dict)
    # the same metric of predicting the majority class / the mean (same orientation as score)
    trivial: float = -math.inf


def _score_key(task: str) -> tuple[str, str]:
    """(split metric, direction) the doctor compares runs by."""
    return ("accuracy", "max") if task == "classification" else ("rmse", "min")


def train_probed(config: Config, seed: int) -> Trial:
    """Train ``config`` with the probe on (no run folder) and read what the detectors found."""
    from nntune.train.run import Trainer

    probed = config.model_copy(deep=True)
    probed.seed = seed
    probed.train.doctor = True
    trainer = Trainer(probed, write=False, progress=False)
    summary: dict[str, Any] | None = None
    with contextlib.suppress(TrainingError):  # a diverged run: the doctor's findings say why
        summary = trainer.fit().summary
    report = trainer.doctor or {"healthy": True, "problems": [], "probe": {}}
    bundle = trainer.bundle
    metric, direction = _score_key(bundle.task if bundle is not None else "classification")
    split = "val" if bundle is None or bundle.y_val is not None else "test"
    value = (summary or {}).get(split) or {}
    raw = value.get(metric) if isinstance(value, dict) else None
    score = -math.inf
    if isinstance(raw, (int, float)) and math.isfinite(raw):
        score = float(raw) if direction == "max" else -float(raw)
    trivial_raw = _trivial(bundle, split)
    trivial = -math.inf
    if math.isfinite(trivial_raw):
        trivial = trivial_raw if direction == "max" else -trivial_raw
    report["score"] = {"metric": f"val_{metric}", "value": raw, "trivial": _finite(trivial_raw)}
    return Trial(seed, {p["kind"] for p in report["problems"]}, score, report, trivial)


def _trivial(bundle: Any, split: str) -> float:
    """The headline metric of predicting the majority class / the mean on ``split``."""
    from nntune.metrics import trivial_score

    y_eval = getattr(bundle, f"y_{split}", None) if bundle is not None else None
    if y_eval is None:
        return math.nan
    return trivial_score(bundle.task, bundle.y_train.numpy(), y_eval.numpy())


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _mean(trials: Sequence[Trial]) -> float:
    return statistics.mean(t.score for t in trials)


def _spread(trials: Sequence[Trial]) -> float:
    scores = [t.score for t in trials]
    if any(not math.isfinite(s) for s in scores):
        return 0.0
    return max(scores) - min(scores)


def _shown(score: float, task_metric: str) -> float | None:
    if not math.isfinite(score):
        return None
    return -score if task_metric.endswith("rmse") else score


def apply_changes(config: Config, changes: Mapping[str, Any]) -> Config:
    raw = apply_overrides(config_to_dict(config), list(changes.items()))
    return validate_config(raw)


def doctor(
    config: str | Path | Mapping[str, Any] | Config,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    *,
    epochs: int | None = None,
    repair: bool = False,
    seeds: int = 2,
    out: Path | None = None,
    runs_root: Path = Path("runs"),
    progress: Callable[[str], None] | None = None,
    model: Any = None,
    data: Any = None,
    loss: Any = None,
    metrics: Any = None,
    repair_seconds: float | None = None,
) -> dict[str, Any]:
    """Diagnose (and with ``repair`` verify fixes for) a config; returns the contract's JSON
    object and writes it, with repaired.yaml and report.html, to ``out`` (default
    runs/<name>-doctor-<time>/).
    ``model``, ``data``, ``loss``, ``metrics``: your own objects given in Python (a model
    class or factory, data as (x, y), a dict of splits, a DataFrame or a Dataset; see
    :mod:`nntune.train.objects`).
    ``repair_seconds``: the repair's time budget (from its start); no remedy is begun that the
    last one's time says would end past it (default: none, every remedy is tried).
    """
    if seeds < 2 and repair:
        raise ConfigError(f"--seeds {seeds}: a verified repair needs at least 2 seeds")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs {epochs}: must be at least 1")
    base = with_objects(config, overrides, model=model, data=data, loss=loss, metrics=metrics)
    if epochs is not None:
        base.train.epochs = epochs
    folder = out or runs_root / f"{base.name}-doctor-{time.strftime('%Y%m%d-%H%M%S')}"
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"--out {folder}: exists and is not empty; choose a new folder")
    started = time.perf_counter()
    say = progress or (lambda line: None)
    say(f"doctor: probing {base.name} ({base.train.epochs} epochs, seed {base.seed})")
    probe_run = train_probed(base, base.seed)
    report: dict[str, Any] = {
        "healthy": probe_run.report["healthy"],
        "problems": probe_run.report["problems"],
        "probe": probe_run.report.get("probe", {}),
        "data": probe_run.report.get("data", {}),
        "score": probe_run.report["score"],
        "config": base.name,
    }
    if repair:
        deadline = None if repair_seconds is None else time.perf_counter() + repair_seconds
        report["repair"] = verified_repair(base, probe_run, seeds, folder, say, deadline)
    report["seconds"] = round(time.perf_counter() - started, 2)
    report["folder"] = str(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "doctor.json", report)  # what `nntune doctor --json` prints
    from nntune.report import report_after

    report_after(folder)
    return report


def candidate_remedies(kind: str, config: Config) -> list[tuple[str, dict[str, Any]]]:
    """The kind's remedies; for slow convergence the LR range test's suggestion comes first
    (when it is higher than the configured lr)."""
    remedies = remedies_for(kind, config)
    if kind != "slow_convergence" or config.optimizer.name in ("gd", "lbfgs", "newton"):
        return remedies
    from nntune.doctor.lr_find import lr_find

    current = float(config.optimizer.options.get("lr", 1e-3))
    try:
        suggested = float(f"{lr_find(config).suggestion:.3g}")
    except (ConfigError, TrainingError):
        return remedies
    if suggested <= current:
        return remedies
    return [(f"lr {suggested:g} from the LR range test", {"optimizer.lr": suggested}), *remedies]


def not_applicable(config: Config, changes: dict[str, Any]) -> str | None:
    """Why a remedy cannot change the model, or None: a user's arch takes model.activation,
    model.norm... only where its signature says so (nntune does not edit the user's code); a
    text run takes no augmentation or preprocessing."""
    from nntune.models import ARCHS
    from nntune.models.user import MODEL_KEYS
    from nntune.usercode import is_reference, short_name, takes

    if config.data.text:
        touched = [k for k in changes if k in ("data.augment", "data.preprocess")]
        if touched:
            return (
                f"{touched[0]}: a text run's inputs are token ids, which augmentations and "
                "preprocessing do not change (regularize with model.dropout, model.variational "
                "or weight decay)"
            )
    arch = config.model.arch.name
    if not is_reference(arch):
        return None
    target = ARCHS.get(arch, key="model.arch").target
    for key in changes:
        section, _, name = key.partition(".")
        if section == "model" and name in MODEL_KEYS and not takes(target, name):
            return (
                f"{key} changes the architecture, and your arch {short_name(arch)} takes no "
                f"'{name}' parameter: make the change in its code (or give it that parameter)"
            )
    return None


def verified_repair(
    base: Config,
    probe_run: Trial,
    seeds: int,
    folder: Path,
    say: Callable[[str], None] = lambda line: None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Try the remedies of each problem (causes first) and keep the verified ones; with a
    ``deadline`` (time.perf_counter()), stop before a remedy whose trainings would end past it."""
    metric = probe_run.report["score"]["metric"]
    began = time.perf_counter()
    current = base
    say(f"doctor: baseline on {seeds} seeds")
    runs = [probe_run] + [train_probed(base, base.seed + i) for i in range(1, seeds)]
    before = runs
    # what one remedy costs: the baseline's extra seeds, each as long as the probe run
    per_remedy = (time.perf_counter() - began) * seeds / max(1, seeds - 1)
    out_of_time = False
    # causes before their consequences (detect's order), then by severity
    problems = sorted(
        probe_run.report["problems"],
        key=lambda p: (bool(p.get("consequence_of")), SEVERITY.get(p["severity"], 3)),
    )
    applied: list[dict[str, Any]] = []
    tried: list[dict[str, Any]] = []
    for problem in problems:
        kind = problem["kind"]
        if not any(kind in r.kinds for r in runs):
            continue  # an earlier remedy fixed it too
        for label, changes in candidate_remedies(kind, current):
            if deadline is not None and time.perf_counter() + per_remedy > deadline:
                out_of_time = True
                tried.append(
                    {"kind": kind, "remedy": label, "changes": changes, "skipped": "no time left"}
                )
                continue
            why = not_applicable(current, changes)
            if why is not None:
                tried.append({"kind": kind, "remedy": label, "changes": changes, "skipped": why})
                continue
            try:
                candidate = apply_changes(current, changes)
            except ConfigError as err:
                tried.append({"kind": kind, "remedy": label, "changes": changes, "error": str(err)})
                continue
            say(f"doctor: {kind}: trying {label}")
            started = time.perf_counter()
            new = [train_probed(candidate, base.seed + i) for i in range(seeds)]
            per_remedy = time.perf_counter() - started
            gone = all(kind not in r.kinds for r in new)
            gain = _mean(new) - _mean(runs)
            margin = max(_spread(runs), _spread(new))
            kept = gone and gain > margin and math.isfinite(_mean(new))
            if not math.isfinite(_mean(runs)) and math.isfinite(_mean(new)) and gone:
                kept = True  # the run diverged before and trains now
            # and it must have learned something from the inputs: a repaired run no better
            # than predicting the majority class / the mean is not a repair
            learned = _mean(new) > probe_run.trivial
            kept = kept and learned
            tried.append(
                {
                    "kind": kind,
                    "remedy": label,
                    "changes": changes,
                    "problem_gone": gone,
                    "before": _shown(_mean(runs), metric),
                    "after": _shown(_mean(new), metric),
                    "margin": round(margin, 6),
                    "beats_trivial": learned,
                    "kept": kept,
                }
            )
            if kept:
                current, runs = candidate, new
                applied.append({"kind": kind, "remedy": label, "changes": changes})
                # and keep looking: the next remedies are tried on top, each kept only if it
                # beats the repaired config by more than the spread (clipping made a too-wide
                # init train, 10 % → 32 %; the init fix after it is what reaches 90 %+)
    result: dict[str, Any] = {
        "applied": applied,
        "tried": tried,
        "seeds": seeds,
        "before": {metric: _shown(_mean(before), metric)},
        "after": {metric: _shown(_mean(runs), metric)},
        "trivial": {metric: _shown(probe_run.trivial, metric)},
        "improved": bool(applied),
        "config": None,
        "remaining": sorted(set().union(*(r.kinds for r in runs))),
        "out_of_time": out_of_time,
    }
    if applied:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "repaired.yaml"
        repaired = current.model_copy(deep=True)
        repaired.train.doctor = False
        write_text_atomic(path, config_to_yaml(repaired))
        result["config"] = str(path)
        changed: dict[str, Any] = {}
        for step in applied:
            changed.update(step["changes"])
        result["changes"] = changed
    return result
