"""Staged training (``stages:``): several trainings one after another, each continuing from the
previous stage's final weights, in one run folder.

Each stage is the config without ``stages``, with the stage's overrides applied (stages do not
accumulate: a stage says everything it changes from the base). Weights pass by name and shape
(:func:`nntune.train.transfer.load_matching`), so a stage may change the architecture: an
autoencoder stage followed by an mlp stage of the same widths fine-tunes a classifier on the
autoencoder's encoder. The run folder holds each stage's own run folder under ``stages/N/``,
and at its top ``metrics.jsonl`` (every stage's epochs, numbered on, with ``stage`` and
``stage_epoch``), the last stage's checkpoints and a ``summary.json`` of the last stage with
every stage's summary under ``stages``. A resumed staged run skips finished stages and resumes
the interrupted one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nntune.config import Config, config_to_dict, config_to_yaml, load_config
from nntune.errors import ConfigError
from nntune.records import RunResult
from nntune.train.build import check_components
from nntune.train.checkpoint import write_json_atomic, write_text_atomic
from nntune.train.rundir import existing_run_dir, new_run_dir

if TYPE_CHECKING:
    from nntune.train.run import Trainer

STAGES = "stages"


def stage_configs(config: Config) -> list[Config]:
    """The config of every stage, component names and options checked (errors name the
    stage)."""
    base = config_to_dict(config)
    base.pop("stages", None)
    configs = []
    for i, overrides in enumerate(config.stages, start=1):
        if not isinstance(overrides, dict) or not overrides:
            raise ConfigError(
                f"stages[{i - 1}]: a stage is a mapping of the keys it changes, e.g. "
                "{train.epochs: 5, train.freeze: ['1']}"
            )
        if "stages" in overrides:
            raise ConfigError(f"stages[{i - 1}]: a stage cannot have stages of its own")
        try:  # every stage checked before the first one trains
            stage = check_components(load_config(base, overrides))
        except ConfigError as err:
            raise ConfigError(f"stages[{i - 1}]: {err}") from None
        stage.name = f"{config.name or 'run'}-stage{i}"
        configs.append(stage)
    return configs


def _finished(folder: Path) -> bool:
    path = folder / "summary.json"
    if not path.exists():
        return False
    return json.loads(path.read_text()).get("status") == "completed"


def _final_weights(folder: Path) -> dict[str, torch.Tensor]:
    from nntune.train.callbacks.checkpoints import model_weights
    from nntune.train.checkpoint import load_checkpoint

    return dict(model_weights(load_checkpoint(folder / "checkpoints" / "last.pt")))


def fit_stages(trainer: Trainer, config: Config) -> RunResult:
    """Run every stage of ``config`` for ``trainer`` (its data, callbacks, folders)."""
    from nntune.train.run import Trainer

    configs = stage_configs(config)
    run_dir: Path | None = None
    if trainer.write:
        if trainer.resume is not None:
            run_dir = existing_run_dir(trainer.resume)
        else:
            run_dir = new_run_dir(config.name or "run", trainer.out, trainer.runs_root)
            write_text_atomic(run_dir / "config.yaml", config_to_yaml(config))
    trainer.run_dir = run_dir
    weights: dict[str, torch.Tensor] | None = None
    summaries: list[dict[str, Any]] = []
    result: RunResult | None = None
    stage_trainer: Trainer | None = None
    for i, stage in enumerate(configs, start=1):
        folder = run_dir / STAGES / str(i) if run_dir is not None else None
        if folder is not None and _finished(folder):  # a resumed run: this stage is done
            summaries.append(json.loads((folder / "summary.json").read_text()))
            weights = _final_weights(folder)
            continue
        started = folder is not None and (folder / "checkpoints" / "last.pt").exists()
        if folder is not None and folder.exists() and not started:
            shutil.rmtree(folder)  # our own stage folder, stopped before its first checkpoint
        resume = folder if started else None
        stage_trainer = Trainer(
            stage,
            out=folder if resume is None else None,
            resume=resume,
            write=trainer.write,
            data=trainer.data,
            val_data=trainer.val_data,
            test_data=trainer.test_data,
            callbacks=trainer.callbacks,
            progress=trainer.progress,
            init_weights=weights if resume is None else None,
        )
        result = stage_trainer.fit()
        summaries.append({**result.summary, "stage": i})
        weights = {k: v.detach().clone() for k, v in stage_trainer.model.state_dict().items()}
    if stage_trainer is not None:
        trainer.model = stage_trainer.model
        trainer.bundle = stage_trainer.bundle
        trainer.config = stage_trainer.config
    summary = {
        **summaries[-1],
        "name": config.name,
        "run_dir": str(run_dir) if run_dir is not None else None,
        "stages": [_brief(s, i) for i, s in enumerate(summaries, start=1)],
        "epochs_run": sum(int(s.get("epochs_run", 0)) for s in summaries),
        "seconds": round(sum(float(s.get("seconds", 0.0)) for s in summaries), 4),
    }
    summary.pop("stage", None)
    if run_dir is not None:  # also when a resumed run found every stage finished
        _merge_folders(run_dir, len(configs))
        write_json_atomic(run_dir / "summary.json", summary)
    history = result.history if result is not None else None
    return RunResult(run_dir=run_dir, summary=summary, history=history)  # type: ignore[arg-type]


def _brief(summary: dict[str, Any], index: int) -> dict[str, Any]:
    keys = ("name", "status", "stop_reason", "epochs_run", "best_epoch", "seconds", "val", "test")
    return {
        "stage": index,
        **{k: summary.get(k) for k in keys},
        "init_from": summary.get("init_from"),
    }


def _merge_folders(run_dir: Path, count: int) -> None:
    """The top of a staged run folder: every stage's epochs in one metrics.jsonl (numbered
    on), and the last stage's checkpoints, so evaluate, report and load_run read it as is."""
    lines: list[str] = []
    epoch = step = 0
    for i in range(1, count + 1):
        path = run_dir / STAGES / str(i) / "metrics.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for row in rows:
            merged = {
                **row,
                "epoch": epoch + row["epoch"],
                "step": step + row["step"],
                "stage": i,
                "stage_epoch": row["epoch"],
            }
            lines.append(json.dumps(merged))
        if rows:
            epoch += rows[-1]["epoch"]
            step += rows[-1]["step"]
    write_text_atomic(run_dir / "metrics.jsonl", "".join(line + "\n" for line in lines))
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    for name in ("best.pt", "last.pt"):
        source = run_dir / STAGES / str(count) / "checkpoints" / name
        if source.exists():
            temporary = checkpoints / f".{name}.tmp"
            shutil.copyfile(source, temporary)
            temporary.replace(checkpoints / name)
