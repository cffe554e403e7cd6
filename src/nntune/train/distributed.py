"""Data-parallel training across processes: PyTorch DistributedDataParallel under torchrun.

``torchrun --nproc_per_node N -m nntune train cfg.yaml`` (or ``nntune train cfg.yaml --nproc N``)
starts N processes with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in their environment. Each one
prepares the same data (seeded), trains a copy of the model on its shard of every global batch,
and DDP averages the gradients, so every copy takes the same step. The rules that keep the
ranks one run:

- batches: ``train.batch_size`` is per process; the global batch is batch_size × world size.
  The epoch's order is a function of (seed, epoch) alone, the same on every rank; global batch
  i is ``order[i·G:(i+1)·G]`` and rank r trains on its every world-th sample from position r.
  A single process with batch_size × world size sees the very same global batches.
- randomness that should differ between ranks (augmentation, dropout, attacks) is re-seeded
  at each epoch from (seed, epoch, rank), so a resumed run replays it for the same world size.
- decisions: the loss callbacks see is the global batch's mean loss, gradients are already
  averaged, and each epoch's record (training and validation metrics) is rank 0's, broadcast;
  so a NaN on one rank, an early stop or a plateau lr cut happens on all of them at once.
- files: rank 0 alone writes the run folder, metrics, checkpoints and reports.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from nntune.errors import ConfigError


@dataclass(frozen=True)
class Shard:
    """Where this process stands in the job (from torchrun's environment)."""

    rank: int
    world: int
    local_rank: int = 0
    local_world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_environment() -> Shard | None:
    """This process's place in a torchrun job, or None when it trains alone."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    return Shard(
        rank=int(os.environ.get("RANK", "0")),
        world=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
    )


def is_main_process() -> bool:
    """True unless this is a torchrun worker other than rank 0 (those print and write nothing)."""
    return int(os.environ.get("RANK", "0") or 0) == 0


def check_device(name: str, local_world: int) -> None:
    """``train.device`` can serve ``local_world`` processes on this node (each its own GPU)."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return
    if not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name}, but no CUDA device is available")
    if name.startswith("cuda:"):
        raise ConfigError(
            f"train.device = {name}: under torchrun each process takes the GPU of its local "
            "rank; use train.device: cuda (or auto)"
        )
    if local_world > torch.cuda.device_count():
        raise ConfigError(
            f"{local_world} processes per node but {torch.cuda.device_count()} GPU(s)"
        )


def device_for(shard: Shard, name: str) -> torch.device:
    """Each process's device: its own GPU (cuda:LOCAL_RANK) on CUDA, else the CPU."""
    check_device(name, shard.local_world)
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    torch.cuda.set_device(shard.local_rank)
    return torch.device("cuda", shard.local_rank)


def init_process_group(device: torch.device) -> None:
    """Join the job's process group (gloo on CPU, nccl on CUDA), once per process."""
    if dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    # a rank that dies is noticed by torchrun, which stops the others; the timeout only bounds
    # a collective that waits on a rank that is alive but stuck
    dist.init_process_group(backend, timeout=timedelta(minutes=10))
    atexit.register(_destroy)


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A well-mixed 63-bit seed for one epoch of one random stream (-1: shared by all ranks)."""
    entropy = [seed % 2**63, epoch, stream + 1]
    return int(np.random.SeedSequence(entropy).generate_state(2, np.uint64)[0] >> np.uint64(1))


class DataParallel:
    """The model wrapped by DDP plus the collectives the engine needs to keep ranks in step."""

    def __init__(
        self, shard: Shard, model: nn.Module, device: torch.device, find_unused: bool
    ) -> None:
        from torch.nn.parallel import DistributedDataParallel

        self.shard = shard
        self.device = device
        # find_unused: frozen parameters (train.freeze) get no gradient but are registered,
        # so that they are averaged again once unfrozen
        self.module = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused,
        )

    def no_sync(self, active: bool) -> contextlib.AbstractContextManager[Any]:
        """Skip the gradient all-reduce of a micro-batch that is not the last of its step."""
        return self.module.no_sync() if active else contextlib.nullcontext()

    def sum(self, values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def mean(self, value: float) -> float:
        return self.sum([value])[0] / self.shard.world

    def gather(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every rank's ``tensors`` (any number of rows, none too), in rank order."""
        local = torch.cat(tensors).detach().cpu() if tensors else None
        parts: list[Any] = [None] * self.shard.world
        dist.all_gather_object(parts, local)
        return [part.to(self.device) for part in parts if part is not None]

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard_indices(index: torch.Tensor, shard: Shard) -> torch.Tensor:
    """Rank r's part of one global batch: every world-th sample from position r."""
    return index[shard.rank :: shard.world]


# --- synchronized BatchNorm -------------------------------------------------------------------


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over ranks; its gradient is the sum of the ranks' gradients (autograd works)."""
    import torch.distributed._functional_collectives as funcol

    return funcol.all_reduce(tensor, "sum", dist.group.WORLD)  # type: ignore[arg-type]


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose batch statistics are those of the global batch, over all ranks.

    torch.nn.SyncBatchNorm runs on GPUs only, and nntune's DDP runs on CPUs with gloo too, so
    this one reduces the per-channel sums with torch's differentiable functional all_reduce
    (two passes: the mean, then the centred sum of squares, for the variance's accuracy). Its
    parameters and buffers are BatchNorm's, under the same names: a checkpoint loads into the
    plain model. Outside a process group, or in eval mode, it is plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        local_count = input.numel() // channels
        counted = torch.cat([input.sum(dims), input.new_tensor([float(local_count)])])
        totals = _all_reduce_sum(counted)
        count = totals[-1]
        mean = totals[:-1] / count
        centred = input - mean.view(shape)
        var = _all_reduce_sum((centred * centred).sum(dims)) / count
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                assert self.num_batches_tracked is not None and self.running_var is not None
                self.num_batches_tracked += 1
                momentum = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                unbiased = var * (count / (count - 1).clamp(min=1))
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), momentum)
        out = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def sync_batchnorm(model: nn.Module, device: torch.device) -> int:
    """Make every BatchNorm of ``model`` synchronized across ranks, in place; returns how many."""
    count = 0
    for module in model.modules():
        for name, child in list(module.named_children()):
            if not isinstance(child, nn.modules.batchnorm._BatchNorm) or isinstance(
                child, (SyncBatchNorm, nn.SyncBatchNorm)
            ):
                continue
            if device.type == "cuda":
                setattr(module, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
            else:
                child.__class__ = SyncBatchNorm  # same parameters and buffers, synced forward
            count += 1
    return count
