"""Image folders on Fashion-MNIST: loading, the recipe's accuracy, and speed against an .npz and
a hand-written loop. One JSON line per figure.

Fashion-MNIST ships as Debian's ``dataset-fashion-mnist`` (IDX files under
/usr/share/datasets/fashion-mnist/); this script writes it out once as a PNG image folder
(train/<class>/*.png: 60,000 files, test/<class>/*.png: 10,000), which is what the recipe
``examples/fashion_mnist.yaml`` reads (``examples/data/fashion_mnist/``), as a user would.

    python bench/images.py [--folder examples/data/fashion_mnist] [--limit N] [--only folder]
        [--epochs E] [--skip-recipe]

``--only folder`` writes the folder and stops (``--limit N``: the first N images of each split,
for tests). The figures: the first read of the folder (decode + cache) and a second read (from
the cache), in seconds, each in a fresh process; the recipe's test accuracy and training
seconds; steps/s of one epoch from the folder against the same images from an .npz, and
nntune's steps/s against a plain PyTorch loop with the same model, data, batch order and
augmentation (ratios, measured back to back in one process).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IDX = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle_boot")  # fmt: skip
DEFAULT_FOLDER = ROOT / "examples" / "data" / "fashion_mnist"
RECIPE = ROOT / "examples" / "fashion_mnist.yaml"


def read_idx(name: str) -> np.ndarray:
    path = IDX / f"{name}-ubyte.gz"
    if not path.exists():
        raise SystemExit(
            f"{path} not found: install Debian's dataset-fashion-mnist "
            "(apt-get install dataset-fashion-mnist)"
        )
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_folder(folder: Path, limit: int | None = None) -> dict[str, int]:
    """The PNG image folder (train/, test/), written once (a marker file says it is whole)."""
    from PIL import Image

    marker = folder / ".complete"
    counts: dict[str, int] = {}
    if marker.exists() and json.loads(marker.read_text()).get("limit") == limit:
        return json.loads(marker.read_text())["counts"]
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(f"{prefix}-images-idx3")[:limit]
        labels = read_idx(f"{prefix}-labels-idx1")[:limit]
        for name in CLASSES:
            (folder / split / name).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            Image.fromarray(image, "L").save(folder / split / CLASSES[label] / f"{i:05d}.png")
        counts[split] = len(labels)
    marker.write_text(json.dumps({"limit": limit, "counts": counts}))
    return counts


def emit(**line: object) -> None:
    print(json.dumps({"bench": "images", **line}), flush=True)


def timed_read(folder: Path, cache: Path) -> float:
    """Seconds to read the folder in a fresh process with the given cache folder."""
    code = (
        "import time; from nntune.data.images import read_image_folder, ImageOptions; "
        f"t = time.perf_counter(); read_image_folder({str(folder)!r}, ImageOptions()); "
        "print(time.perf_counter() - t)"
    )
    env = {**os.environ, "NNTUNE_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True)  # fmt: skip
    return float(done.stdout.strip().splitlines()[-1])


def loading(folder: Path) -> None:
    with tempfile.TemporaryDirectory() as cache:
        first = timed_read(folder, Path(cache))
        second = timed_read(folder, Path(cache))
    emit(figure="first read (decode + cache), s", value=round(first, 2), goal="<= 60")
    emit(figure="second read (from the cache), s", value=round(second, 2), goal="<= 5")


def recipe(folder: Path, epochs: int | None) -> None:
    import nntune

    overrides = [f"data.dataset={folder}/"] + ([f"train.epochs={epochs}"] if epochs else [])
    with tempfile.TemporaryDirectory() as out:
        result = nntune.train(RECIPE, overrides, out=Path(out) / "run", progress=False)
    summary = result.summary
    emit(figure="recipe test accuracy", value=summary["test"]["accuracy"], goal=">= 0.930",
         training_seconds=summary["seconds"], epochs=summary["epochs_run"],
         steps_per_second=summary["steps_per_second"])  # fmt: skip


def speed(folder: Path, steps: int = 150) -> None:
    """steps/s: nntune from the folder, nntune from an .npz of the same images, and a plain
    loop, on the recipe's model, augmentation, precision and memory format, three rounds
    alternated (the best of each)."""
    import torch

    import nntune
    from nntune.data.images import ImageOptions, read_image_folder
    from nntune.train.build import build_parts, check_components, resolve_for_data
    from nntune.train.engine import autocast

    images = read_image_folder(folder, ImageOptions())
    x, labels = np.asarray(images.x), np.asarray(images.y)
    codes = np.unique(labels, return_inverse=True)[1]
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "fashion.npz"
        np.savez(npz, x=x.astype(np.float32) / 255.0, y=codes)
        base = ["train.epochs=1", "data.val_split=0", "data.test_split=0.5",
                f"data.limit={steps * 128}"]  # fmt: skip

        def nntune_rate(dataset: str, extra: list[str]) -> float:
            result = nntune.Trainer(RECIPE, [f"data.dataset={dataset}", *base, *extra],
                                    write=False).fit()  # fmt: skip
            return float(result.summary["steps_per_second"])

        def plain_rate() -> float:
            config = nntune.load_config(RECIPE, [f"data.dataset={folder}/", *base])
            trainer = nntune.Trainer(config, write=False)
            bundle, _ = trainer._bundle(check_components(config))
            resolved = resolve_for_data(check_components(config), bundle)
            parts = build_parts(resolved, bundle, torch.device("cpu"))
            model, optimizer = parts.model, parts.optimizer
            channels_last = config.train.channels_last
            gen = torch.Generator().manual_seed(0)
            order = torch.randperm(len(bundle.x_train), generator=gen)
            start = time.perf_counter()
            n = 0
            for i in range(0, len(order) - 127, 128):
                idx = order[i : i + 128]
                xb = bundle.x_train[idx].float().div_(255.0)
                batch = nntune.data.Batch(xb, bundle.y_train[idx])
                for augmentation in parts.augment:
                    batch = augmentation(batch, gen)
                xb = (
                    batch.x.contiguous(memory_format=torch.channels_last)
                    if channels_last
                    else batch.x
                )
                with autocast(torch.device("cpu"), config.train.precision):
                    out = model(xb)
                    loss = parts.loss(out, batch.y)
                    if batch.y_mix is not None:
                        loss = batch.lam * loss + (1 - batch.lam) * parts.loss(out, batch.y_mix)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                n += 1
            return n / (time.perf_counter() - start)

        rounds = {"folder": [], "npz": [], "plain": []}
        for _ in range(3):
            rounds["folder"].append(nntune_rate(f"{folder}/", []))
            npz_sets = ["data.preprocess=[]", "model.input_shape=[1,28,28]"]
            rounds["npz"].append(nntune_rate(str(npz), npz_sets))
            rounds["plain"].append(plain_rate())
    best = {k: max(v) for k, v in rounds.items()}
    emit(figure="steps/s from the folder over the same data from an .npz",
         value=round(best["folder"] / best["npz"], 3), goal=">= 0.95", rates=best)  # fmt: skip
    emit(figure="nntune steps/s over a plain PyTorch loop (folder)",
         value=round(best["folder"] / best["plain"], 3), goal=">= 0.95", rates=best)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--only", choices=["folder"], default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--skip-recipe", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    counts = write_folder(args.folder, args.limit)
    emit(figure="folder written", value=counts, seconds=round(time.perf_counter() - started, 1))
    if args.only == "folder":
        return
    loading(args.folder)
    speed(args.folder)
    if not args.skip_recipe:
        recipe(args.folder, args.epochs)


if __name__ == "__main__":
    main()
