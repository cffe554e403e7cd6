"""Mixed precision on this machine: steps/s of the MNIST-1D recipe in fp32 and bf16 autocast.

Trains ``examples/mnist1d.yaml`` for a few epochs per precision, alternating the two for several
rounds in this process, and prints one JSON line with the median steps/s of each and their
ratio (bf16 over fp32). On CPUs without native bf16 matrix units autocast is expected to be
slower; on CUDA it is the fast path.
Usage: python bench/precision.py [--epochs 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

import nntune

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "mnist1d.yaml"


def steps_per_second(precision: str, epochs: int) -> float:
    result = nntune.train(
        RECIPE,
        {"train.epochs": epochs, "train.precision": precision},
        write=False,
        progress=False,
    )
    return float(result.summary["steps_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for precision in runs:
            runs[precision].append(steps_per_second(precision, args.epochs))
    fp32, bf16 = statistics.median(runs["fp32"]), statistics.median(runs["bf16"])
    print(
        json.dumps(
            {
                "bench": "precision",
                "device": "cuda" if torch.cuda.is_available() else "cpu",
                "epochs": args.epochs,
                "rounds": args.rounds,
                "fp32_steps_per_s": round(fp32, 1),
                "bf16_steps_per_s": round(bf16, 1),
                "bf16_over_fp32": round(bf16 / fp32, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
