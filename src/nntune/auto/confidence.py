"""The final model's test metrics with confidence intervals (bootstrap over test samples)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from nntune.evaluate.evaluation import open_run, score_outputs, split_part
from nntune.evaluate.stats import bootstrap_ci
from nntune.train.evaluate import predict_outputs

LEVEL = 0.95
RESAMPLES = 2000


def final_checkpoint(run_dir: Path) -> str:
    """The weights the run's summary.json measured: best.pt when early stopping restored them,
    else last.pt (with its weight average, as the run ended)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    return "best" if summary.get("restored") else "last"


def test_intervals(run_dir: Path, level: float = LEVEL) -> dict[str, Any]:
    """``{"run", "n", "metrics", "ci": {metric: {"low", "high", "level"}}}``: accuracy's
    interval resamples the per-sample hits, rmse's the squared errors (then the square root)."""
    checkpoint = final_checkpoint(run_dir)
    opened = open_run(run_dir, checkpoint, trust_code=True)  # auto trained it
    x, y = split_part(opened, "test")
    outputs = predict_outputs(opened.model, x)
    metrics = score_outputs(opened, outputs, y)["metrics"]
    ci: dict[str, Any] = {}
    if opened.bundle.task == "classification":
        hits = (opened.loss.predict_labels(outputs).cpu() == y.cpu()).double().numpy()
        found = bootstrap_ci(hits, level, RESAMPLES)
        ci["accuracy"] = {"low": found["low"], "high": found["high"], "level": level}
    else:
        predicted = outputs.float().cpu().reshape(len(y), -1)
        errors = ((predicted - y.float().cpu().reshape(len(y), -1)) ** 2).mean(dim=1)
        found = bootstrap_ci(errors.numpy().astype(np.float64), level, RESAMPLES)
        ci["rmse"] = {
            "low": math.sqrt(found["low"]),
            "high": math.sqrt(found["high"]),
            "level": level,
        }
    return {
        "run": str(run_dir),
        "checkpoint": checkpoint,
        "n": len(y),
        "metrics": metrics,
        "ci": ci,
        "method": f"percentile bootstrap over the test samples, {RESAMPLES} resamples",
    }
