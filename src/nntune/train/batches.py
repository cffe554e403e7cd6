"""Where training batches come from: tensors in memory (indexed), or a Dataset (DataLoader)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset


class TensorBatches:
    """Shuffled mini-batches by indexing tensors that live on the training device.

    This is the fast path (no collation, no worker processes). A last batch of a single sample
    is dropped, because BatchNorm cannot train on it.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
        self.x, self.y = x, y
        self.n = len(x)
        self.batch_size = min(batch_size, self.n)
        full, rest = divmod(self.n, self.batch_size)
        self.n_batches = full + (1 if rest > 1 else 0)

    def __len__(self) -> int:
        return self.n_batches

    def epoch(self, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(self.n, generator=gen).to(self.x.device)
        size = self.batch_size
        for i in range(self.n_batches):
            index = order[i * size : (i + 1) * size]
            yield self.x[index], self.y[index]


class LoaderBatches:
    """Batches from a map-style Dataset through a DataLoader, shuffled by the run's generator
    (so resuming at an epoch boundary replays the same order)."""

    def __init__(
        self, dataset: Dataset, batch_size: int, device: torch.device, num_workers: int = 0
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = device
        self.num_workers = num_workers
        n = len(dataset)  # type: ignore[arg-type]
        self.n = n
        self.n_batches = math.ceil(n / batch_size)

    def __len__(self) -> int:
        return self.n_batches

    def epoch(self, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
            num_workers=self.num_workers,
        )
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
