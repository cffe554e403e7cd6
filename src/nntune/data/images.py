"""Image folders: a directory of class subfolders (or of train/, val/, test/ splits holding
them), decoded once with Pillow, resized to one size and kept as uint8 tensors.

Layouts: ``photos/<class>/*.png``, the sorted class folder names being the classes; or
``photos/train/<class>/...`` with ``val/`` (or ``valid/``, ``validation/``) and ``test/``
beside it, used as the splits they are. Hidden files are ignored; every other file must be an
image Pillow reads: a file that is empty, not an image, truncated or too small is listed, and
stops the run (exit 2) unless ``data.image.on_error: skip``, which leaves it out and records it.

Each image is opened with its EXIF orientation applied, converted to RGB or gray (palette and
alpha images are composited on white, CMYK converted, 16-bit scaled to 8 bits), and resized by
``fit``: ``crop`` (scale to cover the size, cut the centre), ``squish`` (scale each side) or
``pad`` (scale to fit inside, pad with black). Decoding runs on every core, in worker processes
for large folders (small images spend most of their time in Python code that holds the GIL, so
threads do not scale on them), once: the result is cached under the nntune cache folder, keyed
by the files' paths, sizes and modification times and the image options, so a later run of an
unchanged folder reads the cache. A cache larger than a quarter of the memory is memory-mapped.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nntune.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
AUTO_MAX_SIDE = 64  # size: auto never goes above this (small enough to train on a CPU)
MIN_SIDE = 8  # an image whose shorter side is below this (or below the target's) is too small
SHOWN_BAD = 5  # bad files named in the error
PROCESS_MIN_FILES = 2000  # from this many files decoding runs in worker processes
CHUNK_FILES = 256  # files per task sent to a worker
IO_OVERLAP = 4  # worker processes per core (measured: docs/benchmarks.md#image-folders)
CACHE_VERSION = 1
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


@dataclass(frozen=True)
class ImageOptions:
    """``data.image`` resolved: the size, fit, channels and what to do with a bad file."""

    size: tuple[int, int] | None = None  # None: auto
    fit: str = "crop"
    channels: str = "auto"  # auto | rgb | gray
    on_error: str = "error"


@dataclass
class ImageFolder:
    """What a folder holds, decoded: uint8 arrays (N, C, H, W) and class names per split."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: list[str]
    size: tuple[int, int]
    channels: int
    fit: str
    skipped: list[dict[str, str]] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)
    files: int = 0
    from_cache: bool = False

    def facts(self) -> dict[str, Any]:
        """What a run records of the folder (summary.json, the checkpoint's meta)."""
        return {
            "size": list(self.size),
            "channels": self.channels,
            "fit": self.fit,
            "files": self.files,
            "skipped": len(self.skipped),
            "skipped_files": self.skipped[:100],
            "empty_classes": self.empty_classes,
            "from_cache": self.from_cache,
        }


def is_image_folder(path: str | Path) -> bool:
    return Path(path).is_dir()


# --- finding the files ------------------------------------------------------------------------


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_files(folder: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """``{class: files}`` of a folder of class subfolders, and files lying outside them."""
    classes: dict[str, list[Path]] = {}
    stray = []
    for entry in sorted(folder.iterdir()):
        if not _visible(entry):
            continue
        if entry.is_dir():
            classes[entry.name] = sorted(p for p in entry.rglob("*") if p.is_file() and _visible(p))
        else:
            stray.append(entry)
    return classes, stray


def find_splits(folder: Path) -> dict[str, dict[str, list[Path]]]:
    """``{split: {class: files}}``: one "pool" split, or the train/val/test splits given."""
    if not folder.is_dir():
        raise DataError(f"data.dataset: '{folder}' is not a folder")
    subfolders = {p.name.lower(): p for p in folder.iterdir() if p.is_dir() and _visible(p)}
    given = {SPLIT_NAMES[name]: path for name, path in subfolders.items() if name in SPLIT_NAMES}
    if "train" in given:
        splits = {}
        for split, path in given.items():
            classes, stray = _class_files(path)
            _no_stray(stray, path)
            splits[split] = classes
        return splits
    classes, stray = _class_files(folder)
    _no_stray(stray, folder)
    if not classes:
        raise DataError(
            f"data.dataset: '{folder}' holds no class subfolders; an image folder holds one "
            "folder per class (cats/, dogs/...), or train/ (val/, test/) folders holding them"
        )
    return {"pool": classes}


def _no_stray(stray: list[Path], folder: Path) -> None:
    images = [p for p in stray if p.suffix.lower() in IMAGE_SUFFIXES]
    if images:
        raise DataError(
            f"data.dataset: '{folder}' holds image files outside class folders "
            f"({images[0].name}...); put each image in the folder of its class"
        )


# --- decoding one image -------------------------------------------------------------------------


class BadImage(Exception):
    """A file that cannot be used as an image (the message says why)."""


def open_image(source: Path | bytes | Any) -> Any:
    """A PIL image of a path, bytes or a PIL image, its EXIF orientation applied; BadImage
    when it is empty, not an image or corrupt."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, Image.Image):
        image = source
    else:
        if isinstance(source, Path) and source.stat().st_size == 0:
            raise BadImage("empty file")
        if isinstance(source, (bytes, bytearray)) and len(source) == 0:
            raise BadImage("empty data")
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        try:
            image = Image.open(handle)
            image.load()  # decode now: a truncated file fails here
        except UnidentifiedImageError:
            raise BadImage("not an image Pillow can read") from None
        except (OSError, SyntaxError, ValueError) as err:
            raise BadImage(f"truncated or corrupt ({err})") from None
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block: the pixels are still fine
        return image


def is_gray(image: Any) -> bool:
    return image.mode in GRAY_MODES


def to_mode(image: Any, channels: str) -> Any:
    """``image`` as 8-bit RGB or L: transparency on white, CMYK converted, 16 bits scaled."""
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I") else max(float(values.max()), 1.0)
        image = Image.fromarray(np.clip(values / top * 255.0, 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("L" if channels == "gray" else "RGB")


def fit_image(image: Any, size: tuple[int, int], fit: str) -> Any:
    """``image`` resized to ``size`` (h, w) by ``fit``: crop, squish or pad."""
    from PIL import Image

    h, w = size
    resample = Image.Resampling.BILINEAR
    if fit == "squish":
        return image.resize((w, h), resample)
    scale = (max if fit == "crop" else min)(w / image.width, h / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resized = image.resize(inner, resample)
    if fit == "crop":
        left, top = (inner[0] - w) // 2, (inner[1] - h) // 2
        return resized.crop((left, top, left + w, top + h))
    canvas = Image.new(resized.mode, (w, h))
    canvas.paste(resized, ((w - inner[0]) // 2, (h - inner[1]) // 2))
    return canvas


def image_array(source: Any, size: tuple[int, int], fit: str, channels: str) -> np.ndarray:
    """One image, decoded and resized: uint8 (C, H, W). BadImage when it cannot be used."""
    image = open_image(source)
    if min(image.size) < min(MIN_SIDE, *size):
        raise BadImage(f"too small ({image.width}×{image.height})")
    array = np.asarray(fit_image(to_mode(image, channels), size, fit), dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy()


# --- the folder -------------------------------------------------------------------------------


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def _scan(path: Path) -> tuple[tuple[int, int], str] | str:
    """(size (h, w), mode) of a file from its header, or why it is no image."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path) as image:
            width, height = image.size
            return (height, width), image.mode
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except (OSError, SyntaxError, ValueError) as err:
        return f"truncated or corrupt ({err})"


def _scan_chunk(paths: list[Path]) -> list[tuple[tuple[int, int], str] | str]:
    return [_scan(path) for path in paths]


def _decode_chunk(
    job: tuple[list[Path], tuple[int, int], str, str],
) -> list[np.ndarray | str]:
    """The images of a chunk of files, or for each file that cannot be used, why."""
    paths, size, fit, channels = job
    out: list[np.ndarray | str] = []
    for path in paths:
        try:
            out.append(image_array(path, size, fit, channels))
        except BadImage as err:
            out.append(str(err))
    return out


def _pool(n_files: int) -> Executor:
    """Worker processes for a large folder on several cores, else threads. Processes are forked
    (as torch's DataLoader workers are): they run Pillow and numpy only, and start in
    milliseconds where a spawned one would import torch again."""
    workers = _workers()
    fork = "fork" in multiprocessing.get_all_start_methods()
    if workers > 1 and fork and n_files >= PROCESS_MIN_FILES:
        # more processes than cores: a folder not yet in the OS's file cache is read from disk,
        # and while some workers wait for their files the others decode
        processes = min(IO_OVERLAP * workers, 32)
        return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"))
    return ThreadPoolExecutor(workers)


def _map_chunks(
    pool: Executor, fn: Callable[[Any], list[Any]], items: Sequence[Any], extra: tuple[Any, ...]
) -> list[Any]:
    """``fn`` over chunks of ``items`` (each job ``(chunk, *extra)``, or the chunk alone),
    results flattened back in order."""
    chunks = [list(items[i : i + CHUNK_FILES]) for i in range(0, len(items), CHUNK_FILES)]
    jobs = [(chunk, *extra) if extra else chunk for chunk in chunks]
    return [result for results in pool.map(fn, jobs) for result in results]


def read_image_folder(folder: str | Path, options: ImageOptions) -> ImageFolder:
    """Decode (or read from the cache) every image of ``folder``; errors name the bad files."""
    root = Path(folder).expanduser().resolve()
    splits = find_splits(root)
    entries = [
        (split, name, path)
        for split, classes in splits.items()
        for name, files in classes.items()
        for path in files
    ]
    all_classes = sorted({name for classes in splits.values() for name in classes})
    empty = sorted(
        {name for classes in splits.values() for name, files in classes.items() if not files}
    )
    if not entries:
        raise DataError(f"data.dataset: '{root}' holds no image files in its class folders")
    stats = [
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for *_, p in entries
    ]
    key = _cache_key(stats, options)
    cached = _read_cache(key)
    if cached is not None:
        return cached
    paths = [p for *_, p in entries]
    with _pool(len(paths)) as pool:
        channels, size = options.channels, options.size
        if channels == "auto" or size is None:
            # the headers say the modes and sizes the automatic choices are made from
            scanned = _map_chunks(pool, _scan_chunk, paths, ())
            headers = [s for s in scanned if not isinstance(s, str)]
            if channels == "auto":
                gray = headers and all(m in GRAY_MODES for _, m in headers)
                channels = "gray" if gray else "rgb"
            size = size or _auto_size([s for s, _ in headers])
        decoded = _map_chunks(pool, _decode_chunk, paths, (size, options.fit, channels))
    problems = [
        {"path": str(entries[i][2]), "reason": d}
        for i, d in enumerate(decoded)
        if isinstance(d, str)
    ]
    if problems and options.on_error != "skip":
        shown = "; ".join(f"{p['path']} ({p['reason']})" for p in problems[:SHOWN_BAD])
        more = f" and {len(problems) - SHOWN_BAD} more" if len(problems) > SHOWN_BAD else ""
        raise DataError(
            f"data.dataset '{root}': {len(problems)} of {len(entries)} files cannot be used as "
            f"images: {shown}{more}; remove them, or set data.image.on_error: skip to train "
            "without them (the run records which)"
        )
    good = [i for i, d in enumerate(decoded) if not isinstance(d, str)]
    if not good:
        raise DataError(f"data.dataset '{root}': none of its {len(entries)} files is an image")
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split in splits:
        chosen = [i for i in good if entries[i][0] == split]
        xs = [decoded[i] for i in chosen]
        shape = (0, 1 if channels == "gray" else 3, *size)
        parts[split] = (
            np.stack(xs) if xs else np.zeros(shape, dtype=np.uint8),
            np.array([entries[i][1] for i in chosen], dtype=object),
        )
    first = "pool" if "pool" in parts else "train"
    result = ImageFolder(
        x=parts[first][0],
        y=parts[first][1],
        x_val=parts["val"][0] if "val" in parts else None,
        y_val=parts["val"][1] if "val" in parts else None,
        x_test=parts["test"][0] if "test" in parts else None,
        y_test=parts["test"][1] if "test" in parts else None,
        classes=all_classes,
        size=size,
        channels=1 if channels == "gray" else 3,
        fit=options.fit,
        skipped=problems,
        empty_classes=empty,
        files=len(entries),
    )
    _write_cache(key, result)
    return result


def _auto_size(sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """A square side: the median shorter side of the images, at most AUTO_MAX_SIDE."""
    if not sizes:
        return (AUTO_MAX_SIDE, AUTO_MAX_SIDE)
    side = int(statistics.median(min(h, w) for h, w in sizes))
    side = max(1, min(side, AUTO_MAX_SIDE))
    return (side, side)


# --- the cache ----------------------------------------------------------------------------------


def _cache_key(stats: list[tuple[str, int, int]], options: ImageOptions) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_VERSION, stats, options.__dict__], default=str).encode())
    return digest.hexdigest()[:24]


def _cache_folder() -> Path:
    from nntune.data.datasets import cache_dir

    return cache_dir() / "images"


def _read_cache(key: str) -> ImageFolder | None:
    folder = _cache_folder() / key
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        arrays: dict[str, np.ndarray | None] = {}
        for part in ("x", "x_val", "x_test"):
            path = folder / f"{part}.npy"
            if not path.exists():
                arrays[part] = None
                continue
            mmap = path.stat().st_size > _memory_bytes() // 4
            arrays[part] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        labels = {k: np.array(v, dtype=object) if v is not None else None
                  for k, v in meta["labels"].items()}  # fmt: skip
    except (OSError, ValueError, KeyError):
        return None  # a broken cache is rebuilt
    x = arrays["x"]
    if x is None:
        return None
    return ImageFolder(
        x=x,
        y=labels["y"],  # type: ignore[arg-type]
        x_val=arrays["x_val"],
        y_val=labels["y_val"],
        x_test=arrays["x_test"],
        y_test=labels["y_test"],
        classes=meta["classes"],
        size=tuple(meta["size"]),
        channels=meta["channels"],
        fit=meta["fit"],
        skipped=meta["skipped"],
        empty_classes=meta["empty_classes"],
        files=meta["files"],
        from_cache=True,
    )


def _write_cache(key: str, folder_data: ImageFolder) -> None:
    folder = _cache_folder() / key
    temporary = folder.with_name(f".{key}.{os.getpid()}.tmp")
    try:
        temporary.mkdir(parents=True, exist_ok=True)
        for part in ("x", "x_val", "x_test"):
            array = getattr(folder_data, part)
            if array is not None:
                np.save(temporary / f"{part}.npy", array, allow_pickle=False)
        labels = {
            name: (None if value is None else [str(v) for v in value])
            for name, value in (
                ("y", folder_data.y),
                ("y_val", folder_data.y_val),
                ("y_test", folder_data.y_test),
            )
        }
        meta = {
            "labels": labels,
            "classes": folder_data.classes,
            "size": list(folder_data.size),
            "channels": folder_data.channels,
            "fit": folder_data.fit,
            "skipped": folder_data.skipped,
            "empty_classes": folder_data.empty_classes,
            "files": folder_data.files,
        }
        (temporary / "meta.json").write_text(json.dumps(meta))
        if folder.exists():  # another run wrote it meanwhile
            return
        temporary.rename(folder)
    except OSError:
        return  # no cache: the next run decodes again
    finally:
        if temporary.exists():
            import shutil

            shutil.rmtree(temporary, ignore_errors=True)


def _memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


# --- images to predict ------------------------------------------------------------------------


def image_inputs(items: Any, facts: dict[str, Any]) -> np.ndarray:
    """Images to predict on, as an image run reads them: uint8 (N, C, H, W). ``items``: one
    image or a list of them, each a file path, bytes of an image file, a PIL image, or an array
    (H, W), (H, W, C) or (C, H, W); they are decoded and resized as the run's folder was
    (``facts``: the checkpoint's image facts). DataError names an input that is no image."""
    from PIL import Image

    size = (int(facts["size"][0]), int(facts["size"][1]))
    channels = "gray" if int(facts["channels"]) == 1 else "rgb"
    if isinstance(items, (str, Path, bytes, bytearray, Image.Image)):
        items = [items]
    elif isinstance(items, np.ndarray) and items.ndim in (2, 3):
        items = [items]  # one image as an array (a batch of them is (N, C, H, W))
    arrays = []
    for i, item in enumerate(items):
        try:
            arrays.append(_one_input(item, size, facts, channels))
        except BadImage as err:
            raise DataError(f"input {i}: {err}") from None
    if not arrays:
        raise DataError("no images given")
    return np.stack(arrays)


def _one_input(
    item: Any, size: tuple[int, int], facts: dict[str, Any], channels: str
) -> np.ndarray:
    from PIL import Image

    fit = str(facts["fit"])
    if isinstance(item, (str, Path)):
        path = Path(item)
        if not path.is_file():
            raise BadImage(f"'{path}' is not a file")
        return image_array(path, size, fit, channels)
    if isinstance(item, (bytes, bytearray, Image.Image)):
        return image_array(item, size, fit, channels)
    array = np.asarray(item)
    if array.shape == (int(facts["channels"]), *size) and array.dtype == np.uint8:
        return array  # already read as the run reads images
    if array.dtype != np.uint8:  # floats in 0..1 (or 0..255)
        if array.size and float(np.nanmax(array)) <= 1.0:
            array = array * 255.0
        array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)  # (C, H, W) → (H, W, C)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise BadImage(f"an array of shape {array.shape} is no image")
    return image_array(Image.fromarray(array), size, fit, channels)
