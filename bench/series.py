"""Time-series classification: ``nntune auto`` against 1-NN Euclidean and 1-NN DTW on generated
calibration cases with a fixed train/test split. One JSON line per figure on stdout, progress
on stderr.

    python bench/series.py [--cases uni50,varlen] [--seeds 1] [--budget 3m] [--data-seed 0]
        [--baselines-only] [--resnet-epochs 500] [--selftest] [--out runs/bench-series]

The cases (CASES below), written as .npz files (x, y, x_test, y_test) under ``--out``/data/
from the ``mnist1d`` package's generator (offline, seeded: ``--data-seed``), split as public
time-series archives are: few training series (balanced over the 10 classes), more test series.
Every case is z-normalized per series and channel over its real steps, as the archives are,
except ``uni36long`` (raw, with a random offset and scale per series: the model's own
normalization has to cope):

- ``uni50``: [N, 1, 150], the 40-step signals resampled (linear interpolation) to 150 steps;
  50 training series, 300 test;
- ``uni36long``: [N, 1, 250], resampled to 250, gaussian noise of 0.2 × the series' std added;
  36 training, 175 test;
- ``multi6``: [N, 6, 100]: channel 0 the signal resampled to 100, channels 1-2 shifted and scaled
  copies of it with noise, channels 3-5 pure noise; 60 training, 200 test;
- ``varlen``: [N, 1, 120] with NaN padding: each signal resampled to 120, then a random window of
  60-100 % of that length kept at its own length, NaN-padded at the end; 100 training, 300 test;
- ``multi_nlc``: like ``multi6`` with 3 channels (the signal, a copy, noise) and 128 steps, stored
  as [N, L, C] = [N, 128, 3] (the other common layout); 80 training, 200 test.

The methods, on the same split:

- ``1nn_ed``: 1-NN Euclidean; ``1nn_dtw``: 1-NN DTW (dependent: the squared euclidean distance
  over the channels per step) with a Sakoe-Chiba window of 10 % of the length. Both on the
  series z-normalized per series and channel, every series first resampled from its real steps
  to the case's length (the NaN padding of ``varlen``);
- ``resnet_review`` (with ``--resnet-epochs E``): the ResNet of the time-series review trained
  its way for E epochs per seed, without a budget (``review_resnet`` below);
- ``auto`` (unless ``--baselines-only``): ``nntune auto CASE.npz --budget B --seed S --json
  --out OUT/<case>-auto-<S>`` for S in 0..``--seeds``-1; its accuracy is auto.json's
  ``final.metrics.accuracy`` (else ``retrain.test.accuracy.mean``).

Lines: ``{"bench": "series", "case", "method", "accuracy", "seconds", "train", "test",
"shape"}`` per case and method (auto's also carry ``seed``, ``final`` and ``retrain_test``).
``--selftest`` checks the vectorized DTW against a plain double loop and the cases' shapes and
normalization, then stops.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "runs" / "bench-series"  # runs/ is git-ignored
CLASSES = 10  # mnist1d's
WINDOW = 0.1  # Sakoe-Chiba window, a fraction of the length
MAX_PAIRS = 40_000  # test × train pairs per DTW block (memory: (L + 1) × pairs float64, twice)


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def emit(**line: Any) -> None:
    print(json.dumps({"bench": "series", **line}), flush=True)


# --- data -------------------------------------------------------------------------------------


def mnist1d_signals(n: int, seed: int, **overrides: Any) -> tuple[np.ndarray, np.ndarray]:
    """At least n mnist1d signals [M, 40] and labels, from the generator (never the download)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = CLASSES * math.ceil(n / CLASSES)
    args.train_split = 1.0  # everything in x; the split is made below
    args.seed = seed
    for key, value in overrides.items():
        if not hasattr(args, key):
            raise KeyError(f"mnist1d has no argument {key}")
        setattr(args, key, value)
    data = make_dataset(args)
    return np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"], dtype=np.int64)


def resample(x: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of [..., L] to [..., length] (both ends kept)."""
    old = np.linspace(0.0, 1.0, x.shape[-1])
    new = np.linspace(0.0, 1.0, length)
    flat = x.reshape(-1, x.shape[-1])
    return np.stack([np.interp(new, old, row) for row in flat]).reshape(*x.shape[:-1], length)


def shifted(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Each row of [N, L] moved by shift[n] steps (fractional; the edge values repeat)."""
    steps = np.arange(x.shape[-1], dtype=np.float64)
    return np.stack([np.interp(steps - s, steps, row) for row, s in zip(x, shift, strict=True)])


def znorm(x: np.ndarray) -> np.ndarray:
    """Each series and channel of [N, C, L] to mean 0 and std 1 over its real (non-NaN) steps."""
    mean = np.nanmean(x, axis=-1, keepdims=True)
    std = np.nanstd(x, axis=-1, keepdims=True)
    return (x - mean) / np.where(std > 1e-12, std, 1.0)


def uni(length: int, noise: float = 0.0, raw: bool = False) -> Builder:
    def build(s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = resample(s, length)
        if noise:
            x = x + rng.normal(size=x.shape) * noise * x.std(axis=1, keepdims=True)
        if raw:  # an offset and a scale per series, as raw sensor series would have
            scale = np.exp(rng.uniform(np.log(0.2), np.log(5.0), size=(len(x), 1)))
            x = x * scale + rng.uniform(-10.0, 10.0, size=(len(x), 1))
        return x[:, None, :]

    return build


def multi(length: int, copies: int, noises: int, noise: float, max_shift: float) -> Builder:
    """Channel 0 the signal; then copies shifted by up to max_shift steps (a random shift per
    series), scaled by 0.5-1.5 (the second and fourth copies negated) plus noise of std
    noise × the signal's; then pure noise channels with the signal's std."""

    def build(s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = resample(s, length)
        std = x.std(axis=1, keepdims=True)
        channels = [x]
        for k in range(copies):
            move = rng.uniform(-max_shift, max_shift, size=len(x))
            scale = rng.uniform(0.5, 1.5, size=(len(x), 1)) * (-1.0 if k % 2 else 1.0)
            channels.append(scale * shifted(x, move) + rng.normal(size=x.shape) * noise * std)
        channels += [rng.normal(size=x.shape) * std for _ in range(noises)]
        return np.stack(channels, axis=1)

    return build


def cropped(length: int, low: float) -> Builder:
    """Resampled to length, then a random window of low..1 × length, NaN-padded at the end."""

    def build(s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = resample(s, length)
        out = np.full_like(x, np.nan)
        for n, row in enumerate(x):
            keep = int(rng.integers(math.ceil(low * length), length + 1))
            start = int(rng.integers(0, length - keep + 1))
            out[n, :keep] = row[start : start + keep]
        return out[:, None, :]

    return build


Builder = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Case:
    train: int
    test: int
    build: Builder
    layout: str = "NCL"  # how x is stored: NCL ([N, C, L]) or NLC ([N, L, C])
    normalize: bool = True  # z-normalized per series and channel, as public archives are
    mnist1d: dict[str, Any] = field(default_factory=dict)  # the generator's arguments changed


CASES: dict[str, Case] = {
    "uni50": Case(50, 300, uni(150)),
    "uni36long": Case(36, 175, uni(250, noise=0.2, raw=True), normalize=False),
    "multi6": Case(60, 200, multi(100, copies=2, noises=3, noise=0.3, max_shift=5.0)),
    "varlen": Case(100, 300, cropped(120, 0.6)),
    "multi_nlc": Case(80, 200, multi(128, copies=1, noises=1, noise=0.3, max_shift=5.0),
                      layout="NLC"),
}  # fmt: skip


def balanced_split(
    y: np.ndarray, n_train: int, n_test: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """n_train positions spread evenly over the classes, then n_test of the rest (shuffled)."""
    order = rng.permutation(len(y))
    rank = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        mine = order[y[order] == label]
        rank[mine] = np.arange(len(mine))
    tie = rng.random(len(y))
    by_rank = np.lexsort((tie, rank))  # the first of each class, then the second, ...
    train = by_rank[:n_train]
    rest = rng.permutation(by_rank[n_train:])
    if len(rest) < n_test:
        raise ValueError(f"{len(rest)} series left for {n_test} test series")
    return train, rest[:n_test]


def make_case(name: str, seed: int) -> dict[str, np.ndarray]:
    """x, y, x_test, y_test of a case, in its stored layout (float32)."""
    case = CASES[name]
    signals, labels = mnist1d_signals(case.train + case.test, seed, **case.mnist1d)
    rng = np.random.default_rng([seed, *name.encode()])
    x = case.build(signals, rng)
    if case.normalize:
        x = znorm(x)
    if case.layout == "NLC":
        x = x.transpose(0, 2, 1)
    train, test = balanced_split(labels, case.train, case.test, rng)
    x = x.astype(np.float32)
    return {"x": x[train], "y": labels[train], "x_test": x[test], "y_test": labels[test]}


def write_case(name: str, seed: int, folder: Path) -> Path:
    path = folder / f"{name}-{seed}.npz"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, **make_case(name, seed))
        tmp.replace(path)
    return path


# --- baselines --------------------------------------------------------------------------------


def prepared(x: np.ndarray, layout: str) -> np.ndarray:
    """[N, C, L] float64, each series' real steps resampled to L, z-normalized."""
    x = np.asarray(x, dtype=np.float64)
    if layout == "NLC":
        x = x.transpose(0, 2, 1)
    length = x.shape[-1]
    out = np.empty_like(x)
    for n in range(len(x)):
        real = ~np.isnan(x[n]).any(axis=0)
        out[n] = resample(x[n][:, real], length) if not real.all() else x[n]
    return znorm(out)


def euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared euclidean distances [n_a, n_b] between series [n, C, L]."""
    fa, fb = a.reshape(len(a), -1), b.reshape(len(b), -1)
    d = (fa**2).sum(1)[:, None] + (fb**2).sum(1)[None, :] - 2.0 * fa @ fb.T
    return np.maximum(d, 0.0)


# No DTW library is among the project's dependencies (tslearn and sktime pull numba), so the
# DTW is written here: the dynamic program over (i, j) in the window, each cell computed for
# every test × train pair at once, arrays shaped (n_test, n_train).
def dtw(a: np.ndarray, b: np.ndarray, window: int) -> np.ndarray:
    """Dependent DTW costs [n_a, n_b] between series [n, C, L] of one length: the sum along the
    best warping path of the squared euclidean distance over the channels per step, |i - j| <=
    window (Sakoe-Chiba)."""
    block = max(1, MAX_PAIRS // len(b))
    if len(a) > block:
        return np.concatenate([dtw(a[k : k + block], b, window) for k in range(0, len(a), block)])
    length = a.shape[-1]
    if b.shape[-1] != length:
        raise ValueError("dtw: the series need one length (resample them first)")
    shape = (len(a), len(b))
    # rows of the cost matrix, column 0 the boundary (inf but for D[0, 0] = 0)
    prev = np.full((length + 1, *shape), np.inf)
    prev[0] = 0.0
    curr = np.full_like(prev, np.inf)
    for i in range(1, length + 1):
        curr[:] = np.inf
        ai = a[:, :, i - 1]  # [n_a, C]
        for j in range(max(1, i - window), min(length, i + window) + 1):
            cost = ((ai[:, None, :] - b[None, :, :, j - 1]) ** 2).sum(-1)
            best = np.minimum(np.minimum(prev[j - 1], prev[j]), curr[j - 1])
            np.add(cost, best, out=curr[j])
        prev, curr = curr, prev
        prev[0] = np.inf  # D[i, 0] = inf for i >= 1
    return prev[length]


def dtw_reference(a: np.ndarray, b: np.ndarray, window: int | None) -> float:
    """The plain O(L²) double loop for one pair [C, L] (window None: unconstrained)."""
    n, m = a.shape[-1], b.shape[-1]
    d = np.full((n + 1, m + 1), np.inf)
    d[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if window is not None and abs(i - j) > window:
                continue
            cost = float(((a[:, i - 1] - b[:, j - 1]) ** 2).sum())
            d[i, j] = cost + min(d[i - 1, j - 1], d[i - 1, j], d[i, j - 1])
    return float(d[n, m])


def window_of(length: int) -> int:
    return max(1, round(WINDOW * length))


def one_nn(distances: np.ndarray, y_train: np.ndarray, y_test: np.ndarray) -> float:
    return float((y_train[distances.argmin(axis=1)] == y_test).mean())


def baselines(name: str, data: dict[str, np.ndarray]) -> None:
    case = CASES[name]
    train = prepared(data["x"], case.layout)
    test = prepared(data["x_test"], case.layout)
    common = {"case": name, "train": len(train), "test": len(test),
              "shape": list(data["x"].shape[1:])}  # fmt: skip
    for method, distance in (
        ("1nn_ed", euclidean),
        ("1nn_dtw", lambda a, b: dtw(a, b, window_of(a.shape[-1]))),
    ):
        started = time.perf_counter()
        accuracy = one_nn(distance(test, train), data["y"], data["y_test"])
        seconds = time.perf_counter() - started
        say(f"{name}: {method} {accuracy:.3f} in {seconds:.1f} s")
        emit(method=method, accuracy=round(accuracy, 4), seconds=round(seconds, 2), **common)


# --- nntune -----------------------------------------------------------------------------------


def nntune_command() -> list[str]:
    cli = Path(sys.executable).with_name("nntune")
    return [str(cli)] if cli.exists() else [sys.executable, "-m", "nntune"]


def auto(name: str, path: Path, data: dict[str, np.ndarray], seed: int, budget: str,
         out: Path) -> None:  # fmt: skip
    folder = out / f"{name}-auto-{seed}"
    if folder.exists():  # this script's own earlier run of the same case and seed
        shutil.rmtree(folder)
    command = [*nntune_command(), "auto", str(path), "--budget", budget, "--seed", str(seed),
               "--out", str(folder), "--json"]  # fmt: skip
    say(f"{name}: {' '.join(command)}")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    line: dict[str, Any] = {
        "case": name, "method": "auto", "seed": seed, "accuracy": None,
        "seconds": round(seconds, 1), "train": len(data["y"]), "test": len(data["y_test"]),
        "shape": list(data["x"].shape[1:]), "budget": budget, "out": str(folder),
        "rc": done.returncode,
    }  # fmt: skip
    record_path = folder / "auto.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        final = record.get("final") or {}
        retrain_test = (record.get("retrain") or {}).get("test") or {}
        accuracy = (final.get("metrics") or {}).get("accuracy")
        if accuracy is None:
            accuracy = (retrain_test.get("accuracy") or {}).get("mean")
        line.update(accuracy=accuracy, final=final, retrain_test=retrain_test)
    if done.returncode != 0 or line["accuracy"] is None:
        line["error"] = (done.stderr or done.stdout).strip()[-2000:]
    say(f"{name}: auto seed {seed}: accuracy {line['accuracy']} in {seconds:.0f} s "
        f"(rc {done.returncode})")  # fmt: skip
    emit(**line)


def review_resnet(name: str, path: Path, data: dict[str, np.ndarray], seed: int, epochs: int,
                  out: Path) -> None:  # fmt: skip
    """The ResNet of the time-series review on the same split, trained its way (no budget):
    every training series, batches of min(N/10, 16), Adam at 1e-3 halved after 50 epochs
    without a lower training loss (down to 1e-4), the last epoch's model."""
    folder = out / f"{name}-resnet-{seed}"
    if folder.exists():
        shutil.rmtree(folder)
    config = {
        "name": f"{name}-resnet", "seed": seed,
        "data": {"dataset": str(path), "preprocess": ["znorm"], "val_split": 0.0},
        "model": {"arch": {"name": "resnet1d", "kernel_sizes": [8, 5, 3], "stem": False,
                           "downsample": False},
                  "hidden": [64, 128, 128], "activation": "relu", "norm": "batch"},
        "optimizer": {"name": "adam", "lr": 1.0e-3},
        "schedule": {"name": "plateau", "monitor": "train_loss", "factor": 0.5, "patience": 50,
                     "min_factor": 0.1},
        "train": {"epochs": epochs, "batch_size": max(1, min(len(data["y"]) // 10, 16))},
    }  # fmt: skip
    import nntune

    started = time.perf_counter()
    result = nntune.train(config, out=folder, progress=False)
    seconds = time.perf_counter() - started
    accuracy = result.test.get("accuracy")
    say(f"{name}: resnet_review seed {seed}: accuracy {accuracy} in {seconds:.0f} s")
    emit(case=name, method="resnet_review", seed=seed, epochs=epochs,
         accuracy=None if accuracy is None else round(float(accuracy), 4),
         seconds=round(seconds, 1), train=len(data["y"]), test=len(data["y_test"]),
         shape=list(data["x"].shape[1:]))  # fmt: skip


# --- self-test --------------------------------------------------------------------------------


def selftest() -> None:
    rng = np.random.default_rng(0)
    for channels, length, window in ((1, 12, 2), (3, 9, 1), (2, 10, 10)):
        a = rng.normal(size=(4, channels, length))
        b = rng.normal(size=(5, channels, length))
        fast = dtw(a, b, window)
        slow = np.array([[dtw_reference(p, q, window) for q in b] for p in a])
        assert np.allclose(fast, slow), (channels, length, window, fast, slow)
        if window >= length:  # the whole matrix: the unconstrained DTW
            free = np.array([[dtw_reference(p, q, None) for q in b] for p in a])
            assert np.allclose(fast, free)
        assert np.allclose(dtw(a, b, 0 + length), fast if window >= length else dtw(a, b, 99))
        assert np.allclose(np.diagonal(dtw(a, a, window)), 0.0)
        assert np.allclose(euclidean(a, b), ((a[:, None] - b[None]) ** 2).sum((-2, -1)))
        assert (fast <= euclidean(a, b) + 1e-9).all()  # the diagonal path is one of the paths
    old = MAX_PAIRS
    globals()["MAX_PAIRS"] = 7  # blocks of the test series give the same costs
    a, b = rng.normal(size=(9, 2, 8)), rng.normal(size=(3, 2, 8))
    blocked = dtw(a, b, 2)
    globals()["MAX_PAIRS"] = old
    assert np.allclose(blocked, dtw(a, b, 2))
    say("selftest: dtw matches the double loop")
    for name, case in CASES.items():
        data = make_case(name, 0)
        x, x_test = data["x"], data["x_test"]
        assert len(x) == len(data["y"]) == case.train and len(x_test) == case.test, name
        assert x.shape[1:] == x_test.shape[1:] and x.dtype == np.float32, name
        assert len(np.unique(data["y"])) == CLASSES, name
        counts = np.bincount(data["y"], minlength=CLASSES)
        assert counts.max() - counts.min() <= 1, (name, counts)
        series = prepared(x, case.layout)
        assert not np.isnan(series).any(), name
        raw = x.transpose(0, 2, 1) if case.layout == "NLC" else x
        real = ~np.isnan(raw)
        if name == "varlen":  # NaN only at the end, at least 60 % real
            assert (real[..., :-1] >= real[..., 1:]).all() and (~real).any(), name
            assert real.sum(-1).min() >= math.ceil(0.6 * raw.shape[-1]), name
        else:
            assert real.all(), name
        mean, std = np.nanmean(raw, -1), np.nanstd(raw, -1)
        if case.normalize:
            assert np.allclose(mean, 0.0, atol=1e-4) and np.allclose(std, 1.0, atol=1e-3), name
        else:
            assert np.abs(mean).max() > 1.0 and std.std() > 0.1, name
        say(f"selftest: {name} x {list(x.shape)} x_test {list(x_test.shape)}")
    emit(method="selftest", ok=True)


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, of CASES")
    parser.add_argument("--seeds", type=int, default=1, help="nntune auto runs per case")
    parser.add_argument("--budget", default="3m", help="nntune auto's --budget")
    parser.add_argument("--data-seed", type=int, default=0, help="the cases' generator seed")
    parser.add_argument("--baselines-only", action="store_true", help="skip nntune auto")
    parser.add_argument(
        "--resnet-epochs", type=int, default=0, help="also the review's ResNet, this many epochs"
    )
    parser.add_argument("--selftest", action="store_true", help="check the DTW and the cases")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.selftest:
        selftest()
        return
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    for name in names:
        path = write_case(name, args.data_seed, args.out / "data")
        with np.load(path) as archive:
            data = {k: archive[k] for k in archive.files}
        say(f"{name}: {path} x {list(data['x'].shape)} x_test {list(data['x_test'].shape)}")
        baselines(name, data)
        for seed in range(args.seeds if args.resnet_epochs else 0):
            review_resnet(name, path, data, seed, args.resnet_epochs, args.out)
        if not args.baselines_only:
            for seed in range(args.seeds):
                auto(name, path, data, seed, args.budget, args.out)


if __name__ == "__main__":
    main()
