"""What a model costs: parameters, FLOPs per sample and inference latency."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import nn


def count_flops(model: nn.Module, sample: torch.Tensor) -> int:
    """FLOPs of one forward pass on ``sample`` (a batch of one), as counted by
    ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add is 2 FLOPs; only the operators
    it knows are counted: matmuls, convolutions, attention; elementwise work is not)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            model(sample)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def median_latency(
    model: nn.Module, batch: torch.Tensor, warmup: int = 3, repeats: int = 7
) -> float:
    """Median wall time of a forward pass on ``batch``, in seconds, after ``warmup`` passes
    (eval mode, ``torch.inference_mode``; CUDA work is synchronised before each clock read)."""
    cuda = batch.device.type == "cuda"
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode():
            for i in range(warmup + repeats):
                if cuda:
                    torch.cuda.synchronize(batch.device)
                start = time.perf_counter()
                model(batch)
                if cuda:
                    torch.cuda.synchronize(batch.device)
                if i >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times)


def model_cost(
    model: nn.Module, x: torch.Tensor, big_batch: int = 256, threads: int | None = None
) -> dict[str, Any]:
    """``{"parameters", "flops_per_sample", "latency_ms_batch1",
    "latency_ms_per_sample_batch256", ...}`` of ``model`` on samples like the rows of ``x``
    (the batch of 256 repeats the rows of ``x`` as needed), timed with ``threads`` torch
    threads (default: torch's current setting)."""
    if len(x) == 0:
        raise ValueError("model_cost needs at least one sample")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _cost(model, x, big_batch)
    finally:
        torch.set_num_threads(previous)


def _cost(model: nn.Module, x: torch.Tensor, big_batch: int) -> dict[str, Any]:
    one = x[:1]
    rows = torch.arange(big_batch, device=x.device) % len(x)
    big = x[rows]
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "flops_per_sample": count_flops(model, one),
        "latency_ms_batch1": 1000.0 * median_latency(model, one, warmup=5, repeats=21),
        f"latency_ms_per_sample_batch{big_batch}": 1000.0
        * median_latency(model, big, warmup=2, repeats=7)
        / big_batch,
        "device": str(x.device),
        "threads": torch.get_num_threads(),
    }
