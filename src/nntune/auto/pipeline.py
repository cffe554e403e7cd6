"""``nntune auto``: from a data set to a tuned, diagnosed, evaluated and exported model.

The stages, in order, within one wall-clock budget:

    data       what the data holds; the starting recipe (start.yaml)
    lr_find    LR range test: the recipe's lr is kept unless it lies past the test's loss minimum
    doctor     a probe of the recipe (30% of its epochs); a sick recipe is repaired, if the
               verified repair fits in 20% of the budget
    tune       the zero-config search space with pruning, for the time the later stages leave
    retrain    best.yaml trained with seeds 0..K-1 (seed 0 is the final model); without the
               search's refit, the recipe refit on the whole training part here
    ablate     the final recipe's tricks, each removed, if the time that remains allows it
    evaluate   the final model on the test split, with bootstrap confidence intervals
    export     ONNX, verified against nntune's own predictions
    report     report.html of all of it

Each stage's estimate of its cost comes from what already ran (the probe's seconds per epoch,
then the search's trials), and a stage that would not fit is skipped with a note. Ctrl-C stops
the stage that runs, keeps the finished ones and writes auto.json and the report of them.
Everything auto decided is in its folder as config and JSON: ``nntune train best.yaml``
trains the final model again.
"""

from __future__ import annotations

import math
import re
import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from nntune.auto.recipe import (
    DataFacts,
    bag_tokenizers,
    search_space,
    starting_config,
    understand,
)
from nntune.config import Config, config_to_dict, config_to_yaml, load_config
from nntune.errors import ConfigError, NntuneError
from nntune.metrics import headline
from nntune.records import RunResult
from nntune.train.build import check_components
from nntune.train.checkpoint import write_json_atomic, write_text_atomic

AUTO = "auto.json"
LAYOUTS = ("auto", "NCL", "NLC", "NCHW", "NHW")  # data.layout's
ERRORS = "errors.log"  # tracebacks of stages that failed by a bug (not by the user's input)
# the stages after the final model exists: a bug in one of them is recorded as that stage's
# failure and the others still run, so the budget spent on the model is never lost
LATER = ("ablate", "evaluate", "export")
# shares of the budget: the doctor's repair may take this much; evaluation, export and report
# get this much plus a few seconds
REPAIR_SHARE = 0.2
FINISH_SHARE = 0.02
FINISH_SECONDS = 3.0
# the search ends a few seconds after its deadline (trials stop at their next epoch)
OVERSHOOT_SHARE = 0.03
OVERSHOOT_SECONDS = 3.0
RUN_OVERHEAD = 1.0  # seconds a training spends outside its epochs (data, final evaluation)
# a search round needs this much time (or this share of the budget) to be worth starting
MIN_TUNE_SECONDS = 10.0
MIN_TUNE_SHARE = 0.05
MAX_TUNE_ROUNDS = 3
FIRST_ROUND_SHARE = 0.25  # of the time left: the first search round's least
PROBE_SHARE = 0.3  # of the recipe's epochs
SMALL_SERIES_PROBE_EPOCHS = 15  # enough for the doctor's detectors
TIMING_EPOCHS = 3  # a timing run of the small-series recipe
SAFETY = 1.2  # a training's estimated seconds are multiplied by this before it is started
# the search leaves time for as many retrain seeds as fit in this share of the budget, at least
# one (seed 0, the final model); the retrain stage runs the others while time is left. On
# fortunes a 10-minute auto reserved 3 × 279 s, and its search completed no trial
RETRAIN_SHARE = 1 / 3


def parse_budget(text: str | float | int) -> float:
    """Seconds from ``600``, ``600s``, ``10m``, ``1.5h`` or ``1h30m``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        value = str(text).strip().lower()
        parts = re.fullmatch(
            r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", value
        )
        if not value or parts is None or not any(parts.groups()):
            raise ConfigError(
                f"--budget {text!r}: give seconds or a duration such as 600, 90s, 10m, 1h30m"
            )
        h, m, s = (float(g) if g else 0.0 for g in parts.groups())
        seconds = 3600 * h + 60 * m + s
    if not math.isfinite(seconds) or seconds < 10:
        raise ConfigError(f"--budget {text!r}: must be at least 10 seconds")
    return seconds


class Clock:
    """The budget: seconds spent and left, from the command's start."""

    def __init__(self, seconds: float) -> None:
        self.total = seconds
        self.started = time.monotonic()

    def spent(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return self.total - self.spent()


class Auto:
    """One ``nntune auto`` run: its folder, clock and record (auto.json)."""

    def __init__(
        self,
        data: str,
        *,
        target: str | None = None,
        budget: float | str = 600.0,
        task: str = "auto",
        layout: str = "auto",
        out: Path | None = None,
        runs_root: Path = Path("runs"),
        seed: int = 0,
        seeds: int = 3,
        export: bool = True,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        from nntune.report import result_folder

        if task not in ("auto", "classification", "regression"):
            raise ConfigError(f"--task {task!r}: allowed: auto, classification, regression")
        if seeds < 1:
            raise ConfigError(f"--seeds {seeds}: must be at least 1")
        self.clock = Clock(parse_budget(budget))
        self.say = progress or (lambda line: None)
        if layout not in LAYOUTS:
            raise ConfigError(f"--layout {layout!r}: allowed: {', '.join(LAYOUTS)}")
        self.facts: DataFacts = understand(
            data, target, task, layout
        )  # bad data: an error, no folder
        name = _name(self.facts.dataset)
        self.name = name
        self.folder = result_folder(out, f"{name}-auto", runs_root)
        self.seed = seed
        self.seeds = seeds
        self.export = export
        self.record: dict[str, Any] = {
            "name": name,
            "status": "running",
            "budget_seconds": self.clock.total,
            "data": self.facts.to_json(),
            "stages": [],
        }
        self.config: dict[str, Any] = {}
        self.seconds_per_training: float | None = None

    # --- the stages -------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        stages: list[tuple[str, Callable[[], str | None]]] = [
            ("data", self._data),
            ("lr_find", self._lr_find),
            ("doctor", self._doctor),
            ("tune", self._tune),
            ("retrain", self._retrain),
            ("ablate", self._ablate),
            ("evaluate", self._evaluate),
            ("export", self._export),
        ]
        interrupted = False
        for name, stage in stages:
            started = time.monotonic()
            entry: dict[str, Any] = {"stage": name, "started_at": round(self.clock.spent(), 2)}
            self.say(f"auto: {name} ({self.clock.left():.0f} s of the budget left)")
            try:
                note = stage()
                entry["status"] = "skipped" if note and note.startswith("skipped") else "done"
                if note:
                    entry["note"] = note
            except KeyboardInterrupt:
                entry["status"] = "interrupted"
                interrupted = True
            except Exception as err:
                bug = not isinstance(err, NntuneError)  # not the input's fault
                entry["status"] = "failed"
                entry["note"] = f"{type(err).__name__}: {err}" if bug else str(err)
                if bug:
                    entry["traceback"] = self._log_traceback(name)
                # after a failed data or retrain stage there is nothing to go on with
                if name in ("data", "retrain") or (bug and name not in LATER):
                    entry["seconds"] = round(time.monotonic() - started, 2)
                    self.record["stages"].append(entry)
                    self.record["status"] = "failed"
                    self._save()
                    self._report()
                    raise
            entry["seconds"] = round(time.monotonic() - started, 2)
            self.record["stages"].append(entry)
            self.say(f"auto: {name} {entry['status']} in {entry['seconds']:.0f} s")
            self._save()
            if interrupted:
                break
        self.record["status"] = "interrupted" if interrupted else "completed"
        self.record["seconds"] = round(self.clock.spent(), 2)
        self._save()
        self._report()
        if interrupted:
            raise KeyboardInterrupt
        return self.record

    def _data(self) -> str | None:
        config = starting_config(self.facts, self.name, self.seed)
        checked = check_components(load_config(config))  # valid before anything trains
        config["search"]["space"] = search_space(self.facts, checked)
        self.config = config
        note = None
        if self.facts.kind == "text" and checked.model.arch.name == "bag":
            # which tokens the bag reads: a linear probe on the validation part, in seconds
            # (the search would spend whole trials on it; auto/tokenizer_probe.py)
            from nntune.auto.tokenizer_probe import choose_tokenizer

            chosen, probe = choose_tokenizer(config, bag_tokenizers(self.facts), self.seed)
            config["data"]["tokenizer"] = chosen
            self.record["tokenizer_probe"] = probe
            note = f"tokens: {chosen['name']} up to {chosen.get('ngrams', 1)}-grams" + (
                f" ({probe['skipped']})" if "skipped" in probe else ""
            )
        self._write_yaml("start.yaml", config)
        self.record["start_config"] = str(self.folder / "start.yaml")
        facts = self.facts
        self.say(
            f"auto: {facts.kind} data, {facts.task}, {facts.n_rows} rows "
            f"{facts.sample_shape}; model {_arch(config)}"
        )
        return note

    def _lr_find(self) -> str | None:
        from nntune.doctor.lr_find import lr_find

        if self.clock.left() < 0.5 * self.clock.total:
            return "skipped: the data stage took half of the budget"
        if self.facts.recipe == "small_series":
            return "skipped: the small-series recipe keeps its measured lr"
        result = lr_find(self.config, steps=100)
        current = float(self.config["optimizer"]["lr"])
        chosen = guarded_lr(current, result.suggestion, result.min_loss_lr)
        self.config["optimizer"]["lr"] = chosen
        self.record["lr_find"] = {
            "suggestion": result.suggestion,
            "method": result.method,
            "min_loss_lr": result.min_loss_lr,
            "before": current,
            "lr": chosen,
            "seconds": round(result.seconds, 2),
        }
        write_json_atomic(self.folder / "lr_find.json", result.to_json())
        self.say(f"auto: lr {current:g} → {chosen:g} (range test suggests {result.suggestion:.2g})")
        if chosen == current:
            limit = result.min_loss_lr
            return f"lr {current:g} kept: not past the range test's loss minimum ({limit:.2g})"
        return None

    def _doctor(self) -> str | None:
        from nntune.doctor.doctor import doctor

        epochs = int(self.config["train"]["epochs"])
        probe_epochs = max(1, min(epochs, round(PROBE_SHARE * epochs)))
        if self.facts.recipe == "small_series":  # its long training: the probe's epochs bounded
            probe_epochs = min(probe_epochs, SMALL_SERIES_PROBE_EPOCHS)
        found = doctor(self.config, epochs=probe_epochs, out=self.folder / "doctor")
        # the probe's training time (the doctor's detectors and report excluded), per epoch
        probe_seconds = float(found["probe"].get("seconds") or found["seconds"])
        ran = int(found["probe"].get("epochs") or probe_epochs)
        expected = expected_epochs(load_config(self.config), probe_epochs, ran)
        self.seconds_per_training = RUN_OVERHEAD + probe_seconds * expected / max(1, ran)
        entry: dict[str, Any] = {
            "healthy": found["healthy"],
            "problems": [p["kind"] for p in found["problems"]],
            "probe_epochs": probe_epochs,
            "folder": str(self.folder / "doctor"),
        }
        self.record["doctor"] = entry
        if found["healthy"]:
            return None
        # a verified repair trains 2 seeds of the recipe and of each remedy tried
        cost = 2 * (1 + 2 * len(found["problems"])) * probe_seconds * SAFETY
        if cost > REPAIR_SHARE * self.clock.total or cost > self.clock.left() / 2:
            return f"found {', '.join(entry['problems'])}; no time for a verified repair"
        # the repair keeps looking while its share lasts (the doctor stops before a remedy
        # that would end past it)
        allowed = min(REPAIR_SHARE * self.clock.total, self.clock.left() / 2)
        repaired = doctor(
            self.config,
            epochs=probe_epochs,
            repair=True,
            out=self.folder / "doctor-repair",
            repair_seconds=allowed,
        )
        repair = repaired.get("repair") or {}
        entry["repair"] = {
            "applied": repair.get("applied"),
            "improved": repair.get("improved"),
            "folder": str(self.folder / "doctor-repair"),
        }
        if repair.get("improved") and repair.get("applied"):
            for applied in repair["applied"]:
                for key, value in applied["changes"].items():
                    _set(self.config, key, value)
            self._write_yaml("repaired.yaml", self.config)
            return f"repaired: {json_changes(repair['applied'])}"
        return "no remedy was verified to help; the recipe stays"

    def _tune(self) -> str | None:
        """Search while the estimate of the later stages leaves time; the estimate improves
        once trials have run (the best trial's seconds), so a second round continues the same
        study with the time the first one was too careful about."""
        from nntune.search.tune import TuneOptions, tune

        if self.facts.recipe == "small_series":
            return self._fit_small_series()
        base = dict(self.config)
        rounds = 0
        result = None
        while rounds < MAX_TUNE_ROUNDS:
            overshoot = OVERSHOOT_SECONDS + OVERSHOOT_SHARE * self.clock.total
            reserve = self._retrain_reserve() + self._finish_reserve() + overshoot
            timeout = self.clock.left() - reserve
            if rounds == 0:
                # the estimate so far comes from a short probe; the search's own trials measure
                # what a training costs, so the first round always gets a share of the time
                timeout = max(timeout, FIRST_ROUND_SHARE * self.clock.left())
                too_short = search_too_short(timeout, self.seconds_per_training)
                if too_short is not None:
                    return too_short
            if timeout < max(MIN_TUNE_SECONDS, MIN_TUNE_SHARE * self.clock.total):
                break
            rounds += 1
            self.record.setdefault("budget_split", []).append(
                {
                    "round": rounds,
                    "search_seconds": round(timeout, 1),
                    "retrain_reserve": round(self._retrain_reserve(), 1),
                    "seconds_per_training": round(self.seconds_per_training or 0.0, 1),
                    "finish_reserve": round(self._finish_reserve(), 1),
                    "overshoot_reserve": round(overshoot, 1),
                }
            )
            self.say(f"auto: search for {timeout:.0f} s (round {rounds})")
            result = tune(
                base,
                options=TuneOptions(
                    timeout=timeout,
                    out=self.folder / "study",
                    study=f"{self.name}-auto",
                    quiet=True,
                ),
            )
            seconds = _trial_seconds(self.folder / "study", result.summary.get("best_trial"))
            if seconds:
                self.seconds_per_training = RUN_OVERHEAD + seconds
        if result is None:
            return f"skipped: the later stages need the {self.clock.left():.0f} s left"
        summary = result.summary
        self.record["tune"] = {
            "folder": str(self.folder / "study"),
            "rounds": rounds,
            "seconds": summary.get("seconds"),
            "best_value": summary.get("best_value"),
            "metric": summary.get("metric"),
            "best_params": summary.get("best_params"),
            "n_complete": summary.get("n_complete"),
            "n_pruned": summary.get("n_pruned"),
            "n_failed": summary.get("n_failed"),
            "importances": summary.get("importances"),
            "folds": summary.get("folds"),
            # best.yaml trains on the whole training part (search.refit)
            "refit": summary.get("refit"),
        }
        if result.best_config is not None:
            best = yaml.safe_load(Path(result.best_config).read_text())
            best.pop("search", None)
            self.config = {**best, "search": self.config.get("search", {})}
        return None

    def _fit_small_series(self) -> str:
        """Few series: no search. A trial scored on a validation part of a few series ranks by
        luck, cross-validating each trial costs five trainings the budget does not hold, and
        the series are worth more as training data (measured: docs/benchmarks.md#series). The
        recipe trains on the whole training part, for as many of its epochs as the budget
        gives each seed (fewer seeds before fewer than SMALL_SERIES_MIN_EPOCHS epochs)."""
        from nntune.auto.recipe import SMALL_SERIES_MIN_EPOCHS

        epochs = int(self.config["train"]["epochs"])
        self.config["data"] = {**self.config["data"], "val_split": 0.0}
        per_epoch, overhead = self._time_training(self.config)
        per_epoch *= SAFETY
        available = self.clock.left() - self._finish_reserve() - OVERSHOOT_SECONDS
        seeds = self.seeds
        while seeds > 1 and available / seeds < overhead + SMALL_SERIES_MIN_EPOCHS * per_epoch:
            seeds -= 1
        fitted = int((available / seeds - overhead) / per_epoch) if per_epoch > 0 else epochs
        fitted = max(1, min(epochs, fitted))
        self.config["train"] = {
            **self.config["train"],
            "epochs": fitted,
            "early_stopping": None,
            "monitor": None,
        }
        self.seconds_per_training = overhead + fitted * per_epoch / SAFETY
        self.record["small_series"] = {
            "epochs": fitted,
            "recipe_epochs": epochs,
            "seeds": seeds,
            "seconds_per_epoch": round(per_epoch / SAFETY, 4),
            "seconds_outside_epochs": round(overhead, 2),
        }
        note = f"skipped: few series; the recipe trains on all of them for {fitted} epochs"
        if seeds < self.seeds:
            note += f" with {seeds} of {self.seeds} seeds (the budget)"
            self.seeds = seeds
        return note

    def _time_training(self, config: dict[str, Any]) -> tuple[float, float]:
        """(seconds per epoch, seconds outside the epochs) of ``config``'s training, from a
        run of TIMING_EPOCHS of its epochs (the doctor's probe validates and measures every
        epoch, and took 3.7× the time of a plain one on bench/series.py's multi6)."""
        import nntune

        out = self.folder / "timing"
        timed = {
            **config,
            "name": f"{self.name}-timing",
            "train": {**config["train"], "epochs": TIMING_EPOCHS, "early_stopping": None},
        }
        started = time.monotonic()
        result = nntune.train(timed, out=out, progress=False)
        wall = time.monotonic() - started
        # each epoch's seconds: the run's training time up to the end of that epoch
        seconds = [float(v) for v in result.history.values("seconds") if v is not None]
        if not seconds:
            return wall / TIMING_EPOCHS, RUN_OVERHEAD
        if len(seconds) > 1:  # after the first epoch, which warms up
            per_epoch = (seconds[-1] - seconds[0]) / (len(seconds) - 1)
        else:
            per_epoch = seconds[0]
        return per_epoch, max(RUN_OVERHEAD, wall - seconds[-1])

    def _retrain(self) -> str | None:
        import nntune
        from nntune.report import report_after

        # the seeds vary the weights, not the split: the test part stays the one the search
        # never saw (with --seed S the search held out split S)
        data = {**self.config.get("data", {}), "split_seed": self.seed}
        config = {**self.config, "name": f"{self.name}-best", "seed": 0, "data": data}
        config, split = self._refit_unsearched(config)
        best = self._write_yaml("best.yaml", config)
        self.record["best_config"] = str(best)
        self.record["reproduce"] = f"nntune train {best}"
        runs: list[dict[str, Any]] = []
        values: dict[str, list[float]] = {}
        note = None
        for seed in range(self.seeds):
            estimate = (self.seconds_per_training or 0.0) * SAFETY
            if seed > 0 and estimate > self.clock.left() - self._finish_reserve():
                note = f"{seed} of {self.seeds} seeds: the budget ends"
                break
            if seed == 0 and split is not None:  # the run on the split is best.yaml's seed 0
                out, result = split
            else:
                out = self.folder / "retrain" / f"seed{seed}"
                started = time.monotonic()
                result = nntune.train(best, {"seed": seed}, out=out)
                report_after(out)
                self.seconds_per_training = time.monotonic() - started
            runs.append({"seed": seed, "run": str(out), "test": result.summary.get("test")})
            for metric, value in (result.summary.get("test") or {}).items():
                if value is not None:
                    values.setdefault(metric, []).append(float(value))
            self.say(f"auto: seed {seed}: test {headline(result.summary.get('test'))}")
        self.record["retrain"] = {
            "runs": runs,
            "test": {
                metric: {
                    "mean": statistics.mean(v),
                    "std": statistics.stdev(v) if len(v) > 1 else 0.0,
                    "values": v,
                }
                for metric, v in values.items()
            },
        }
        self.record["final_run"] = runs[0]["run"]
        return note

    def _refit_unsearched(
        self, config: dict[str, Any]
    ) -> tuple[dict[str, Any], tuple[Path, RunResult] | None]:
        """The final config trained on the whole training part when the search wrote no refit
        best.yaml (no trial completed in its time, or no search): as the search's refit does,
        for the epochs that trained the weights a run on the split kept. With early stopping
        that takes a run on the split first (``retrain/split``, seed 0 of the config); when the
        refit would not fit in the time left after it, that run is the final model (returned
        with its folder). Without early stopping the refit trains every epoch.
        On fortunes a 10-minute auto completed no trial, and the bag trained on all the texts
        scored 55.3 % against 53.7 % on its split (docs/benchmarks.md, text). Skipped, with the
        reason in auto.json's ``refit``, where a refit cannot stand in for the split."""
        import nntune
        from nntune.report import report_after
        from nntune.search.study import kept_epochs
        from nntune.search.tune import refit_config, refit_obstacle

        searched = self.record.get("tune") or {}
        checked = load_config(config)
        if searched.get("refit") or not checked.search.refit or self.facts.recipe != "default":
            return config, None  # the search's refit decided (or refit is off, or small series)
        held = checked.data.val_split > 0 or checked.data.val_fold is not None
        why = refit_obstacle(checked)
        if self.facts.own_validation:
            why = "the data brings its own validation part"
        elif not held:
            why = "no validation part (data.val_split: 0)"
        if why is not None:
            self.record["refit"] = {"skipped": why}
            return config, None
        epochs = int(checked.train.epochs)
        entry: dict[str, Any] = {"why": "no search trial completed" if searched else "no search"}
        if checked.train.early_stopping is not None:
            # seed 0 on the split trains whatever the budget: the run seed 0 always was
            out = self.folder / "retrain" / "split"
            started = time.monotonic()
            result = nntune.train(config, out=out)
            report_after(out)
            seconds = time.monotonic() - started
            epochs = kept_epochs(result.summary)
            ran = max(1, int(result.summary.get("epochs_run") or epochs))
            entry["split_run"] = {
                "run": str(out),
                "epochs_run": ran,
                "test": result.summary.get("test"),
            }
            # the refit: the kept epochs over the whole training part
            share = 1 / (1 - checked.data.val_split) if checked.data.val_split < 1 else 1.0
            refit_seconds = seconds * share * epochs / ran
            left = self.clock.left() - self._finish_reserve()
            if refit_seconds * SAFETY > left:
                self.seconds_per_training = seconds
                self.record["refit"] = {
                    **entry,
                    "skipped": f"the refit needs ~{refit_seconds * SAFETY:.0f} s, "
                    f"{max(0.0, left):.0f} s left: the run on the split is the final model",
                }
                return config, (out, result)
            self.seconds_per_training = refit_seconds
            self.say(f"auto: on the split, {epochs} of {ran} epochs trained the kept weights")
        refit, said = refit_config(checked, epochs)
        self.record["refit"] = {**entry, **said}
        return config_to_dict(refit), None

    def _ablate(self) -> str | None:
        from nntune.evaluate.ablate import ablate, find_tricks
        from nntune.report import save_result

        best = Path(self.record["best_config"])
        tricks = find_tricks(load_config(best))
        if not tricks:
            return "skipped: the final recipe has no trick to remove"
        per = (self.seconds_per_training or 0.0) * SAFETY
        left = self.clock.left() - self._finish_reserve()
        seeds = next((k for k in (3, 2) if (len(tricks) + 1) * k * per <= left), None)
        if seeds is None:
            need = (len(tricks) + 1) * 2 * per
            return f"skipped: {len(tricks)} tricks × 2 seeds need ~{need:.0f} s, {left:.0f} s left"
        result = ablate(best, seeds=seeds)
        save_result("ablate", result, self.folder / "ablate")
        self.record["ablate"] = {
            "folder": str(self.folder / "ablate"),
            "seeds": seeds,
            "rows": [
                {k: row.get(k) for k in ("trick", "delta", "p_value", "verdict")}
                for row in result.get("rows", [])
            ],
        }
        return None

    def _evaluate(self) -> str | None:
        from nntune.auto.confidence import test_intervals

        final = self.record.get("final_run")
        if final is None:
            return "skipped: no final model"
        self.record["final"] = test_intervals(Path(final))
        return None

    def _export(self) -> str | None:
        from nntune.auto.confidence import final_checkpoint
        from nntune.compress.export import export_run

        final = self.record.get("final_run")
        if not self.export or final is None:
            return "skipped: --no-export" if not self.export else "skipped: no final model"
        exported = export_run(
            final,
            "onnx",
            checkpoint=final_checkpoint(Path(final)),
            out=self.folder / "model.onnx",
            trust_code=True,  # auto trained it from the user's own data
        )
        self.record["export"] = {
            "path": exported["path"],
            "bytes": exported["bytes"],
            "verified": exported.get("verified"),
        }
        return None

    # --- helpers ----------------------------------------------------------------------------

    def _log_traceback(self, stage: str) -> str:
        """Append the running exception's traceback to the folder's errors.log; its path."""
        path = self.folder / ERRORS
        with path.open("a") as log:
            log.write(f"stage {stage}:\n{traceback.format_exc()}\n")
        return str(path)

    def _retrain_reserve(self) -> float:
        """The seconds the search leaves for the retrain stage: the seeds that fit in
        RETRAIN_SHARE of the budget, at least one (the final model)."""
        per = (self.seconds_per_training or 0.0) * SAFETY
        return reserved_seeds(self.seeds, per, self.clock.total) * per

    def _finish_reserve(self) -> float:
        return FINISH_SECONDS + FINISH_SHARE * self.clock.total

    def _write_yaml(self, name: str, config: dict[str, Any]) -> Path:
        path = self.folder / name
        write_text_atomic(path, config_to_yaml(load_config(config)))
        return path

    def _save(self) -> None:
        self.record["seconds"] = round(self.clock.spent(), 2)
        write_json_atomic(self.folder / AUTO, self.record)

    def _report(self) -> None:
        from nntune.report import report_after

        path = report_after(self.folder)
        if path is not None:
            self.record["report"] = str(path)
            write_json_atomic(self.folder / AUTO, self.record)


def expected_epochs(config: Config, probe_epochs: int, ran: int) -> int:
    """The epochs a training of ``config`` is expected to run, from the doctor's probe of
    ``probe_epochs`` of them that ran ``ran``: all of them, unless early stopping ended the
    probe; then the probe's epochs and one more patience (a longer schedule can keep its best
    later), at most all. On fortunes the probe stopped after 8 of 9 epochs and the recipe's
    run after 8 of 30: counting all 30 made the estimate 279 s for a 94 s training."""
    epochs = int(config.train.epochs)
    stopping = config.train.early_stopping
    if stopping is None or ran >= probe_epochs:
        return epochs
    return min(epochs, ran + int(stopping.patience))


def search_too_short(seconds: float, training: float | None) -> str | None:
    """Why a first search round of ``seconds`` is not worth starting, or None: it would end
    before one training of the estimated ``training`` seconds, so it completes no trial, and its
    first trial (the recipe itself) is trained again on the split by the retrain stage. On
    fortunes split 1 such a round (106 s for a ~318 s estimate) stopped the recipe's trial
    after 111 s, and the refit it had taken the time from was then 3 s short."""
    if training is None or training <= 0 or seconds >= training:
        return None
    return (
        f"skipped: a training takes ~{training:.0f} s and the search would have "
        f"{seconds:.0f} s, too short for one trial; the recipe is refit instead"
    )


def reserved_seeds(seeds: int, seconds: float, budget: float) -> int:
    """Of ``seeds`` trainings of ``seconds`` each, how many the search leaves time for: those
    that fit in RETRAIN_SHARE of the ``budget``, at least one. The final model is seed 0; the
    others measure the spread over seeds, worth less than the search's trials when a training
    is a large part of the budget."""
    if seconds <= 0:
        return seeds
    return max(1, min(seeds, int(RETRAIN_SHARE * budget / seconds)))


def moved_lr(current: float, suggestion: float) -> float:
    """``current`` moved toward the range test's suggestion, at most 3× either way (the range
    test reads one short run, and the search explores 10× around the lr it is given)."""
    return float(f"{min(max(suggestion, current / 3), current * 3):.2g}")


def guarded_lr(current: float, suggestion: float, min_loss_lr: float) -> float:
    """The recipe's lr after the range test: kept, unless it lies past the lr where the test's
    loss stopped falling (then moved down toward the suggestion, at most 3×). The test's
    steepest point says how fast the training loss falls in 100 steps, not how well a model
    generalizes: moving the recipe's lr to it gained nothing on four data sets and cost
    fortunes 1.9 test points (bench/lr_move.py, docs/benchmarks.md "auto's learning rate"); an
    lr past the loss minimum is one the test saw diverge."""
    if current <= min_loss_lr:
        return current
    return min(current, moved_lr(current, suggestion))


def auto(data: str, **options: Any) -> dict[str, Any]:
    """Run ``nntune auto`` on ``data`` (a built-in dataset name or a .csv/.parquet/.npz file);
    returns auto.json's content. Options are those of :class:`Auto` (``target``, ``budget``
    in seconds or as "10m", ``task``, ``out``, ``seed``, ``seeds``, ``export``, ``progress``)."""
    return Auto(data, **options).run()


def _name(dataset: str) -> str:
    return Path(dataset).stem if ("/" in dataset or "." in dataset) else dataset


def _arch(config: dict[str, Any]) -> str:
    arch = config["model"]["arch"]
    name = arch["name"] if isinstance(arch, dict) else arch
    return f"{name} {config['model'].get('hidden')}"


def _set(config: dict[str, Any], dotted: str, value: Any) -> None:
    node = config
    *parents, last = dotted.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {"name": child} if isinstance(child, str) else {}
            node[part] = child
        node = child
    node[last] = value


def json_changes(applied: list[dict[str, Any]]) -> str:
    return "; ".join(f"{a['kind']}: {a['changes']}" for a in applied)


def _trial_seconds(study_dir: Path, trial: int | None) -> float | None:
    """Seconds the search's best trial trained (a complete trial: its whole schedule)."""
    if trial is None:
        return None
    import json

    path = study_dir / "trials" / f"{trial:04d}" / "summary.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("status") in ("completed", "stopped") and data.get("seconds"):
        return float(data["seconds"])
    return None
