"""``nntune export``: a run's model as ONNX or TorchScript, verified against nntune's own
predictions on the run's test split.

The exported model takes what the run's model takes: preprocessed features (the fitted
preprocessing is not part of the graph; ``nntune.load_run(run).features(raw)`` applies it), and
returns the model's raw outputs (logits for classification). Verification runs the exported
file (onnxruntime for ONNX, ``torch.jit.load`` for TorchScript) on the whole test split and
compares predicted classes (must match exactly) and probabilities or regression outputs (within
a tolerance) with nntune's model.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nntune.errors import ConfigError, NntuneError, RunFolderError
from nntune.evaluate.evaluation import OpenedRun, open_run, split_part
from nntune.packages import require
from nntune.train.checkpoint import write_json_atomic
from nntune.train.evaluate import predict_outputs


class ExportError(NntuneError):
    """The model could not be exported, or the file does not reproduce nntune's predictions:
    not bad input, so the CLI exits 1 (and auto records its export stage as failed)."""


class ExportMismatchError(ExportError):
    """The exported file does not reproduce nntune's predictions."""


FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
TOLERANCE = 1e-4  # probabilities (or regression outputs) of the exported model vs nntune's


def export_run(
    run_dir: str | Path,
    format: str = "onnx",
    *,
    checkpoint: str = "best",
    out: str | Path | None = None,
    split: str = "test",
    trust_code: bool = False,
) -> dict[str, Any]:
    """Export the ``checkpoint`` of a run folder to ``out`` (default
    ``<run>/export/model.onnx`` or ``model.torchscript.pt``; it must not exist yet) and verify
    it on ``split``. Returns ``{"path", "format", "bytes", "verified": {...}}``, also written
    beside the file as ``<file>.json``; :class:`ExportMismatchError` when the exported model
    does not reproduce nntune's predictions."""
    if format not in FORMATS:
        raise ConfigError(f"--format '{format}': allowed: {', '.join(FORMATS)}")
    opened = open_run(run_dir, checkpoint, trust_code)
    path = Path(out) if out is not None else opened.folder / "export" / FORMATS[format]
    if path.exists():
        raise RunFolderError(f"'{path}' exists; remove it or give --out another file")
    x, _ = split_part(opened, split)
    if len(x) == 0:
        raise RunFolderError(f"run '{opened.folder}' has an empty {split} split: nothing to verify")
    if format == "onnx":  # before anything is written
        for module in ("onnx", "onnxruntime"):
            require(module, "--format onnx")
    model = opened.model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    write, run = (_to_onnx, _run_onnx) if format == "onnx" else (_to_torchscript, _run_torchscript)
    try:
        write(model, x[:2], path)
    except Exception as err:  # the exporter's own errors (an operator it cannot translate...)
        path.unlink(missing_ok=True)
        raise ExportError(
            f"torch could not export the model of '{opened.folder}' to {format}: "
            f"{type(err).__name__}: {err}"
        ) from err
    try:
        exported = run(path, x)
    except Exception as err:  # the runtime refuses the file: no half-usable model is left
        path.unlink(missing_ok=True)
        raise ExportError(
            f"the exported {format} model of '{opened.folder}' does not run: "
            f"{type(err).__name__}: {err}"
        ) from err
    verified = compare_outputs(opened, predict_outputs(model, x), exported)
    verified["split"] = split
    result = {
        "run": str(opened.folder),
        "checkpoint": opened.checkpoint,
        "format": format,
        "path": str(path),
        "bytes": path.stat().st_size,
        "input_shape": ["batch", *opened.bundle.sample_shape],
        "seconds": round(time.perf_counter() - started, 3),
        "verified": verified,
    }
    write_json_atomic(path.with_name(path.name + ".json"), result)
    if not verified["passed"]:
        raise ExportMismatchError(
            f"the exported {format} model does not reproduce nntune's predictions on the "
            f"{split} split: {verified['summary']}; the file is kept at {path} for inspection"
        )
    return result


def _to_onnx(model: torch.nn.Module, sample: torch.Tensor, path: Path) -> None:
    # The TorchScript-based exporter (dynamo=False): it handles every nntune arch with a
    # dynamic batch axis; the torch.export-based one rejects the dynamic batch of some archs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (sample,),
            str(path),
            input_names=["x"],
            output_names=["outputs"],
            dynamic_axes={"x": {0: "batch"}, "outputs": {0: "batch"}},
            dynamo=False,
        )


def _run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    onnxruntime = require("onnxruntime", "--format onnx")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    # an image run's model takes its uint8 images as they are, a text run's its int64 token ids
    array = x.detach().cpu().numpy()
    feed = array if array.dtype in (np.uint8, np.int64) else array.astype(np.float32)
    out = session.run(None, {"x": feed})[0]
    return torch.from_numpy(np.asarray(out))


def _to_torchscript(model: torch.nn.Module, sample: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice
        # no tracer self-check: it retraces on the same sample and fails on the branches the
        # transformer's padding mask takes; the export is verified on a whole split instead
        traced = torch.jit.trace(model, sample, check_trace=False)
        torch.jit.save(traced, str(path))


def _run_torchscript(path: Path, x: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return loaded(x.cpu()).detach()


def compare_outputs(opened: OpenedRun, ours: torch.Tensor, theirs: torch.Tensor) -> dict[str, Any]:
    """Predicted classes equal and probabilities (regression: outputs) within TOLERANCE."""
    ours, theirs = ours.detach().float().cpu(), theirs.detach().float().cpu()
    if ours.shape != theirs.shape:
        return {
            "passed": False,
            "n": len(ours),
            "summary": f"output shape {tuple(theirs.shape)} instead of {tuple(ours.shape)}",
        }
    result: dict[str, Any] = {"n": len(ours), "tolerance": TOLERANCE}
    if opened.bundle.task == "classification":
        loss = opened.loss
        same = loss.predict_labels(ours) == loss.predict_labels(theirs)
        diff = (loss.probabilities(ours) - loss.probabilities(theirs)).abs().max()
        result["prediction_agreement"] = float(same.float().mean())
        result["max_abs_difference_probabilities"] = float(diff)
        passed = bool(same.all()) and float(diff) <= TOLERANCE
        summary = (
            f"{int((~same).sum())} of {len(same)} predicted classes differ, probabilities "
            f"differ by up to {float(diff):.2e}"
        )
    else:
        diff = (ours - theirs).abs().max()
        result["max_abs_difference_outputs"] = float(diff)
        passed = float(diff) <= TOLERANCE * max(1.0, float(ours.abs().max()))
        summary = f"outputs differ by up to {float(diff):.2e}"
    result["passed"] = passed
    result["summary"] = summary
    return result
