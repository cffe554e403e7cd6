"""Engine overhead: nntune's loop vs a plain PyTorch loop vs Lightning, in one process.

The same MLP (40-256-256-10), batch 64, Adam (lr 1e-3), 5 epochs on MNIST-1D (3,200 training
samples after the validation split, 250 optimizer steps), each run validating every epoch:

- nntune: ``nntune.train`` with its defaults (metrics.jsonl, checkpoints, per-epoch validation
  metrics); steps/s is summary.json's ``steps_per_second`` (training wall time, evaluation
  included, data preparation excluded).
- plain: a hand-written loop that indexes tensors, with validation loss and accuracy per epoch.
- lightning: a LightningModule fed by a DataLoader, validation each epoch, default checkpointing,
  no logger and no progress bar.

The three run back to back for several rounds; the medians are reported, and for nntune vs
plain the median of the per-round ratios (each round runs the two back to back, alternating
which goes first, so that drifts in the machine's speed cancel).
Prints one JSON line. Usage: python bench/engine.py [--rounds 5] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import nntune
from nntune.config import load_config
from nntune.data import prepare_data

EPOCHS = 5
BATCH = 64
LR = 1e-3
CONFIG = {
    "seed": 0,
    "data": {"dataset": "mnist1d"},
    "model": {"arch": "mlp", "hidden": [256, 256]},
    "optimizer": {"name": "adam", "lr": LR},
    "train": {"epochs": EPOCHS, "batch_size": BATCH},
}


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(40, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )


def plain_loop(x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor) -> float:
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    steps = 0
    start = time.perf_counter()
    for _ in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), BATCH):
            index = order[i : i + BATCH]
            loss = loss_fn(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            steps += 1
        model.eval()
        with torch.no_grad():
            out = model(xv)
            val_loss = loss_fn(out, yv).item()
            val_acc = (out.argmax(1) == yv).float().mean().item()
        _ = (total, val_loss, val_acc)
    return steps / (time.perf_counter() - start)


def nntune_loop(root: Path) -> float:
    result = nntune.train(CONFIG, runs_root=root)
    return float(result.summary["steps_per_second"])


def lightning_loop(
    x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor, root: Path
) -> float:
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()
            self.loss_fn = nn.CrossEntropyLoss()

        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            xb, yb = batch
            loss = self.loss_fn(self.net(xb), yb)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            xb, yb = batch
            out = self.net(xb)
            self.log("val_loss", self.loss_fn(out, yb))
            self.log("val_acc", (out.argmax(1) == yb).float().mean())

        def configure_optimizers(self):  # type: ignore[no-untyped-def]
            return torch.optim.Adam(self.parameters(), lr=LR)

    torch.manual_seed(0)
    train = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    val = DataLoader(TensorDataset(xv, yv), batch_size=len(xv))
    trainer = L.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(Module(), train, val)
    return trainer.global_step / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-lightning", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        CONFIG["train"]["threads"] = args.threads  # type: ignore[index]
    import logging
    import warnings

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    bundle = prepare_data(load_config(CONFIG).data, seed=0)
    assert bundle.x_val is not None and bundle.y_val is not None
    x, y, xv, yv = bundle.x_train, bundle.y_train, bundle.x_val, bundle.y_val
    results: dict[str, list[float]] = {"nntune": [], "plain": [], "lightning": []}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plain_loop(x, y, xv, yv)  # warm up kernels and allocator
        nntune_loop(root)
        for i in range(args.rounds):
            # back to back, alternating which goes first: the machine's speed drifts
            if i % 2:
                ours, plain = nntune_loop(root), plain_loop(x, y, xv, yv)
            else:
                plain, ours = plain_loop(x, y, xv, yv), nntune_loop(root)
            results["plain"].append(plain)
            results["nntune"].append(ours)
            ratios.append(ours / plain)
            if not args.no_lightning:
                results["lightning"].append(lightning_loop(x, y, xv, yv, root))
    median = {k: statistics.median(v) for k, v in results.items() if v}
    line = {
        "bench": "engine",
        "model": "mlp 40-256-256-10",
        "batch_size": BATCH,
        "epochs": EPOCHS,
        "steps": EPOCHS * (len(x) // BATCH),
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        **{f"{k}_steps_per_s": round(v, 1) for k, v in median.items()},
        # the median of the per-round ratios (each round runs the two back to back)
        "nntune_over_plain": round(statistics.median(ratios), 3),
    }
    if "lightning" in median:
        line["plain_over_lightning"] = round(median["plain"] / median["lightning"], 3)
        line["nntune_over_lightning"] = round(median["nntune"] / median["lightning"], 3)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
