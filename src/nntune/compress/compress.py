"""``nntune compress``: prune, fine-tune and quantize a run's model, with a before/after table.

Steps, each measured on the run's test split (metric, parameters and non-zero parameters,
serialized size, latency per sample at batch 1 and 256):

1. ``--prune F``: magnitude pruning with ``torch.nn.utils.prune``: unstructured (the F smallest
   weights of all linear and convolution layers together, global L1) or ``--structured`` (per
   layer, the F fraction of output channels/units with the smallest L2 norm; the output layer
   is left whole, its units are the predictions).
2. ``--finetune K``: K epochs of the run's own training recipe on its own data with the pruning
   masks held in place, then the pruning is made permanent (``prune.remove``).
3. ``--quantize dynamic``: int8 weights for linear and recurrent layers; ``--quantize static``:
   int8 weights and activations of every supported layer (convolutions too), activation
   ranges calibrated on ``calibration`` training samples (:mod:`nntune.models.quantize`).

The result is a run folder of its own (``<run>/compressed/`` or ``--out``): config.yaml,
``checkpoints/best.pt`` (loadable by ``nntune evaluate``, ``load_run`` and ``export``) and
``compress.json`` with the table.
"""

from __future__ import annotations

import copy
import io
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from nntune.config import config_to_dict
from nntune.errors import ConfigError, RunFolderError
from nntune.evaluate.cost import median_latency
from nntune.evaluate.evaluation import OpenedRun, open_run, score_outputs, split_part
from nntune.models.quantize import (
    QUANTIZE_MODES,
    quantizable_layers,
    quantize_dynamic,
    quantize_static,
)
from nntune.train.checkpoint import load_checkpoint, save_checkpoint, write_json_atomic
from nntune.train.evaluate import predict_outputs

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE)]


def prune_model(model: nn.Module, amount: float, structured: bool) -> list[str]:
    """Attach pruning masks to ``model`` in place; returns the pruned layers' names."""
    layers = _layers(model)
    if not layers:
        raise ConfigError("--prune: the model has no linear or convolution layer to prune")
    if structured:
        output_layer = layers[-1][0]
        pruned = [(n, m) for n, m in layers if n != output_layer]
        for _, module in pruned:
            prune.ln_structured(module, "weight", amount=amount, n=2, dim=0)
        return [n for n, _ in pruned]
    prune.global_unstructured(
        [(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured, amount=amount
    )
    return [n for n, _ in layers]


def make_permanent(model: nn.Module) -> None:
    for _, module in _layers(model):
        if prune.is_pruned(module) and hasattr(module, "weight_orig"):
            prune.remove(module, "weight")


def _size(model: nn.Module) -> tuple[int, int, int]:
    """(parameters, non-zero parameters, bytes of the serialized state dict). Pruned weights
    count through their masks; quantized layers' packed int8 weights count as parameters;
    buffers (BatchNorm statistics, masks) and quantization scales do not."""
    state = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    total = nonzero = 0
    for key, value in state.items():
        if key in buffers or key.endswith((".scale", ".zero_point")):
            continue
        tensors = list(value) if isinstance(value, tuple) else [value]  # (weight, bias) packs
        for tensor in tensors:
            if not isinstance(tensor, torch.Tensor):
                continue
            if tensor.is_quantized:
                tensor = tensor.dequantize()
            if key.endswith("weight_orig"):
                tensor = tensor * state[key.removesuffix("_orig") + "_mask"]
            total += tensor.numel()
            nonzero += int((tensor != 0).sum())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return total, nonzero, len(buffer.getvalue())


def measure(model: nn.Module, opened: OpenedRun, x: torch.Tensor, y: torch.Tensor) -> dict:
    """One row of the table: the model's test metric, size and latency (CPU, eval mode)."""
    model = model.cpu().eval()
    x, y = x.cpu(), y.cpu()
    with torch.inference_mode():
        outputs = predict_outputs(model, x)
    metric = "accuracy" if opened.bundle.task == "classification" else "rmse"
    value = score_outputs(opened, outputs, y)["metrics"][metric]
    parameters, nonzero, size = _size(model)
    big = x[torch.arange(256) % len(x)]
    return {
        f"test_{metric}": value,
        "parameters": parameters,
        "nonzero_parameters": nonzero,
        "bytes": size,
        "latency_ms_batch1": round(1000 * median_latency(model, x[:1]), 4),
        "latency_ms_per_sample_batch256": round(1000 * median_latency(model, big) / 256, 5),
    }


def compress_run(
    run_dir: str | Path,
    *,
    prune_amount: float | None = None,
    structured: bool = False,
    quantize: str | None = None,
    finetune: int = 0,
    checkpoint: str = "best",
    out: str | Path | None = None,
    progress: Any = None,
    calibration: int = 512,
    trust_code: bool = False,
) -> dict[str, Any]:
    """Compress a run's model (see the module's docstring); returns the contents of
    compress.json: ``{"run", "out", "steps": [{"step", <measures>}], ...}``."""
    if prune_amount is None and quantize is None:
        raise ConfigError("nothing to do: give --prune FRACTION and/or --quantize dynamic")
    if prune_amount is not None and not 0.0 < prune_amount < 1.0:
        raise ConfigError(f"--prune {prune_amount}: give a fraction between 0 and 1, e.g. 0.5")
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ConfigError(f"--quantize '{quantize}': allowed: {', '.join(QUANTIZE_MODES)}")
    if calibration < 1:
        raise ConfigError(f"--calibration {calibration}: give 1 or more training samples")
    if finetune < 0:
        raise ConfigError(f"--finetune {finetune}: give 0 or more epochs")
    if finetune and prune_amount is None:
        raise ConfigError("--finetune retrains a pruned model: give --prune too")
    say = progress or (lambda line: None)
    opened = open_run(run_dir, checkpoint, trust_code)
    folder = Path(out) if out is not None else opened.folder / "compressed"
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise RunFolderError(f"'{folder}' exists and is not empty; remove it or give --out")
    if quantize == "dynamic" and quantizable_layers(opened.model) == 0:
        raise ConfigError(
            "--quantize dynamic: the model has no linear or recurrent layer to quantize"
        )
    x, y = split_part(opened, "test")
    started = time.perf_counter()
    model = copy.deepcopy(opened.model).cpu().eval()
    steps = [{"step": "original", **measure(model, opened, x, y)}]
    say(f"compress: original {steps[0]}")
    pruned_layers: list[str] = []
    if prune_amount is not None:
        pruned_layers = prune_model(model, prune_amount, structured)
        kind = "structured" if structured else "unstructured"
        steps.append({"step": f"pruned {prune_amount:g} ({kind})", **measure(model, opened, x, y)})
        say(f"compress: {steps[-1]}")
        if finetune:
            model = _finetune(model, opened, finetune)
            steps.append({"step": f"fine-tuned {finetune} epochs", **measure(model, opened, x, y)})
            say(f"compress: {steps[-1]}")
        make_permanent(model)
    if quantize == "dynamic":
        model = quantize_dynamic(model)
        steps.append({"step": "quantized (dynamic int8)", **measure(model, opened, x, y)})
        say(f"compress: {steps[-1]}")
    elif quantize == "static":
        model = _quantize_static(model, opened, calibration)
        steps.append({"step": "quantized (static int8)", **measure(model, opened, x, y)})
        say(f"compress: {steps[-1]}")
    compression = {
        "prune": prune_amount,
        "structured": structured,
        "pruned_layers": pruned_layers,
        "finetune": finetune,
        "quantize": quantize,
        "source": str(opened.folder),
        "checkpoint": opened.checkpoint,
    }
    _write_run_folder(folder, opened, model, compression)
    result = {
        "run": str(opened.folder),
        "out": str(folder),
        "task": opened.bundle.task,
        "n_test": len(y),
        **{k: v for k, v in compression.items() if k != "source"},
        "steps": steps,
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_json_atomic(folder / "compress.json", result)
    return result


def _quantize_static(model: nn.Module, opened: OpenedRun, samples: int) -> nn.Module:
    """FX graph mode static quantization, its activation ranges observed on the first
    ``samples`` rows of the run's training part (preprocessed, not augmented)."""
    try:
        return quantize_static(model, opened.bundle.train_sample(samples)[0])
    except Exception as err:  # FX tracing or a layer without a quantized kernel
        raise ConfigError(
            f"--quantize static: this model cannot be quantized statically ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); try --quantize dynamic"
        ) from None


def _finetune(model: nn.Module, opened: OpenedRun, epochs: int) -> nn.Module:
    """The run's own recipe for ``epochs`` epochs, starting from the pruned weights (the
    masks' forward hooks keep pruned weights at zero throughout)."""
    from nntune.train import Trainer

    changes: dict[str, Any] = {
        "train.epochs": epochs,
        "train.early_stopping": None,
        "train.doctor": False,
        "train.log_to": [],
    }
    config = config_to_dict(opened.config)
    trainer = Trainer(config, changes, model=model, write=False)
    trainer.fit()
    return model.cpu().eval()


def _write_run_folder(
    folder: Path, opened: OpenedRun, model: nn.Module, compression: dict[str, Any]
) -> None:
    """A run folder nntune's readers understand: the source's config, and best.pt with the
    compressed weights and the source's meta plus how it was compressed."""
    source = opened.folder / "checkpoints" / f"{opened.checkpoint}.pt"
    meta = dict(load_checkpoint(source).get("meta") or {})
    meta["compression"] = compression
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(opened.folder / "config.yaml", folder / "config.yaml")
    if (opened.folder / "code").is_dir():  # the user code it names, with the weights
        shutil.copytree(opened.folder / "code", folder / "code", dirs_exist_ok=True)
    save_checkpoint({"model": model.state_dict(), "meta": meta}, folder / "checkpoints" / "best.pt")
