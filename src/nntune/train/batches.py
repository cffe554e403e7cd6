"""Where training batches come from: tensors in memory (indexed), or a Dataset (DataLoader).

The batch size is fixed, grows on a schedule (:class:`BatchSizes`), or is drawn per step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from nntune.train.distributed import Shard


@dataclass(frozen=True)
class BatchSizes:
    """The batch size of each epoch: ``base`` × ``factor`` every ``every`` epochs, up to ``cap``
    (Smith et al. 2018, "Don't decay the learning rate, increase the batch size"); with
    ``lr_scaling`` the lr follows the size (linear: × size/base, Goyal et al. 2017; sqrt:
    × √(size/base), Krizhevsky 2014)."""

    base: int
    factor: float = 1.0
    every: int = 1
    cap: int | None = None
    lr_scaling: str = "none"

    def at(self, epoch: int) -> int:
        if self.factor == 1.0:
            return self.base
        size = round(self.base * self.factor ** (epoch // self.every))
        return max(1, min(size, self.cap if self.cap is not None else size))

    def lr_factor(self, epoch: int) -> float:
        ratio = self.at(epoch) / self.base
        if self.lr_scaling == "linear":
            return ratio
        if self.lr_scaling == "sqrt":
            return math.sqrt(ratio)
        return 1.0


def _count(n: int, size: int, smallest: int = 2) -> int:
    """Batches of ``size`` in ``n`` samples, a last one kept if it has ``smallest`` or more."""
    full, rest = divmod(n, size)
    return full + (1 if rest >= smallest else 0)


class _SizedBatches:
    """What both batch sources share: a batch-size rule, and the lr factor that follows it."""

    sizes: BatchSizes

    def steps_in_epoch(self, epoch: int) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.steps_in_epoch(0)

    def lr_factor(self, epoch: int) -> float:
        return self.sizes.lr_factor(epoch)


class TensorBatches(_SizedBatches):
    """Shuffled mini-batches by indexing tensors that live on the training device.

    This is the fast path (no collation, no worker processes). A last batch of a single sample
    is dropped, because BatchNorm cannot train on it. With ``random_range`` each batch's size
    is drawn uniformly from [low, high] with the epoch's generator (so resume replays it).

    With a ``shard`` (data-parallel training), the batch size is per process: each global batch
    of size × world samples is split between the ranks, this one taking every world-th sample
    from its rank on (:mod:`nntune.train.distributed`); a last global batch too small to give
    every rank two samples is dropped.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int | BatchSizes,
        random_range: tuple[int, int] | None = None,
        shard: Shard | None = None,
    ) -> None:
        self.x, self.y = x, y
        self.n = len(x)
        self.sizes = batch_size if isinstance(batch_size, BatchSizes) else BatchSizes(batch_size)
        self.random_range = random_range
        self.shard = shard
        self.world = shard.world if shard else 1
        if shard is not None and random_range is not None:
            raise ValueError("random batch sizes cannot be sharded")
        self.batch_size = self.size_at(0)

    def size_at(self, epoch: int) -> int:
        """The per-process batch size of an epoch."""
        return max(1, min(self.sizes.at(epoch), self.n // self.world))

    def steps_in_epoch(self, epoch: int) -> int:
        """Batches in an epoch (the expected number when sizes are random)."""
        if self.random_range is not None:
            low, high = self.random_range
            return max(1, round(self.n / min((low + high) / 2, self.n)))
        return _count(self.n, self.size_at(epoch) * self.world, 2 * self.world)

    def epoch(
        self, gen: torch.Generator, epoch: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(self.n, generator=gen).to(self.x.device)
        start = 0
        size = self.size_at(epoch) * self.world
        while start < self.n:
            if self.random_range is not None:
                low, high = self.random_range
                size = int(torch.randint(low, high + 1, (1,), generator=gen))
            index = order[start : start + size]
            start += size
            if len(index) < 2 * self.world and self.n > 1:  # a last batch of one sample a rank
                break
            if self.shard is not None:
                index = index[self.shard.rank :: self.world]
            yield self.x[index], self.y[index]


class LoaderBatches(_SizedBatches):
    """Batches from a map-style Dataset through a DataLoader, shuffled by the epoch's generator
    (so resuming at an epoch boundary replays the same order). With a ``shard``, each process
    reads its part of the epoch (torch's DistributedSampler, which pads the last part by
    repeating samples so that every rank takes the same number of steps)."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int | BatchSizes,
        device: torch.device,
        num_workers: int = 0,
        shard: Shard | None = None,
    ) -> None:
        self.dataset = dataset
        self.sizes = batch_size if isinstance(batch_size, BatchSizes) else BatchSizes(batch_size)
        self.batch_size = self.sizes.base
        self.device = device
        self.num_workers = num_workers
        self.shard = shard
        self.n = len(dataset)  # type: ignore[arg-type]

    def steps_in_epoch(self, epoch: int) -> int:
        per_rank = math.ceil(self.n / self.shard.world) if self.shard else self.n
        return math.ceil(per_rank / self.sizes.at(epoch))

    def epoch(
        self, gen: torch.Generator, epoch: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        if self.shard is not None:
            sampler: DistributedSampler[object] = DistributedSampler(
                self.dataset, self.shard.world, self.shard.rank, shuffle=True, seed=seed
            )
            loader = DataLoader(
                self.dataset,
                batch_size=self.sizes.at(epoch),
                sampler=sampler,
                num_workers=self.num_workers,
            )
        else:
            loader = DataLoader(
                self.dataset,
                batch_size=self.sizes.at(epoch),
                shuffle=True,
                generator=torch.Generator().manual_seed(seed),
                num_workers=self.num_workers,
            )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
