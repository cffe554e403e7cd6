"""The served model: a run folder's Predictor plus the checks a request's rows must pass."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nntune.data.preprocess import Impute, LabelEncode, OneHot
from nntune.errors import ConfigError, DataError
from nntune.train import Predictor, load_run

CHECKPOINTS = ("best", "last")


@dataclass
class InputError(Exception):
    """A request the model cannot answer: the HTTP status and a message saying what was
    expected."""

    status: int
    message: str

    def __str__(self) -> str:
        return self.message


def _check_count(count: int, max_rows: int, what: str, when_empty: str) -> None:
    """A request holds 1 to max_rows inputs (``what``: rows, texts, images)."""
    if count == 0:
        raise InputError(422, when_empty)
    if count > max_rows:
        raise InputError(
            413,
            f"{count} {what} in one request; at most {max_rows} are allowed "
            "(split the request, or start the server with a larger --max-rows)",
        )


class ServedModel:
    """What a request needs: the run's Predictor, its name and version (the run folder's name),
    and the shape and types of the raw rows it reads."""

    def __init__(self, predictor: Predictor, folder: Path, checkpoint: str) -> None:
        self.predictor = predictor
        self.checkpoint = checkpoint
        self.version = folder.resolve().name  # the run id
        config = predictor.meta.get("config") or {}
        self.name: str = config.get("name") or self.version
        self.task = predictor.task
        self.classes = predictor.class_names
        self.image: dict[str, Any] | None = predictor.meta.get("image")  # an image run
        self.text: dict[str, Any] | None = predictor.meta.get("text")  # a text run
        self.series: dict[str, Any] | None = predictor.meta.get("series")  # a series run
        pipeline = predictor.pipeline
        self.columns: list[str] = list(pipeline.input_columns) if pipeline else []
        raw_shape = pipeline.raw_shape if pipeline and pipeline.raw_shape else None
        self.width = len(self.columns) or math.prod(raw_shape or predictor.sample_shape)
        # raw columns that may hold text (an encoder reads them) or be missing (imputed)
        self.text_columns: set[str] = set()
        self.nullable_columns: set[str] = set()
        for _, step in pipeline.steps if pipeline else []:
            columns = set(getattr(step, "columns_", []))
            if isinstance(step, (OneHot, LabelEncode)):
                self.text_columns |= columns
            if isinstance(step, Impute) and step.options.strategy != "drop":
                self.nullable_columns |= columns

    @classmethod
    def load(
        cls, run_dir: str | Path, checkpoint: str = "best", trust_code: bool = False
    ) -> ServedModel:
        """Load a run folder; RunFolderError when it is missing or unusable."""
        if checkpoint not in CHECKPOINTS:
            raise ConfigError(
                f"--checkpoint '{checkpoint}' is not a checkpoint; allowed: "
                f"{', '.join(CHECKPOINTS)}"
            )
        folder = Path(run_dir)
        predictor = load_run(folder, checkpoint, trust_code)
        used = checkpoint
        if not (folder / "checkpoints" / f"{checkpoint}.pt").exists():
            used = "last"  # load_run falls back to last.pt when a run has no best.pt
        return cls(predictor, folder, used)

    def describe(self, column: int) -> str:
        name = self.columns[column] if column < len(self.columns) else None
        if name and name != f"x{column}":  # x0, x1, ...: columns of an unnamed array
            return f"feature {column} ('{name}')"
        return f"feature {column}"

    def check(self, inputs: list[list[Any]], max_rows: int) -> list[list[Any]]:
        """The rows of a request, checked (count, width, a number or, for categorical
        columns, text in every cell) and ready for :meth:`predict`; InputError otherwise.
        Rows and features are counted from 0, as in the JSON list."""
        _check_count(
            len(inputs), max_rows, "rows",
            f"inputs is empty; send 1 to {max_rows} rows of {self.width} features",
        )  # fmt: skip
        for i, row in enumerate(inputs):
            if len(row) != self.width:
                raise InputError(
                    422,
                    f"each row must have {self.width} features{self._column_hint()}; "
                    f"row {i} has {len(row)}",
                )
        rows = inputs
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                if isinstance(value, str):
                    if self.columns and self.columns[j] in self.text_columns:
                        continue
                    raise InputError(
                        422, f"row {i}, {self.describe(j)} must be a number; got {value!r}"
                    )
                if value is None:
                    if self.columns and self.columns[j] in self.nullable_columns:
                        continue
                    raise InputError(
                        422,
                        f"row {i}, {self.describe(j)} is null; this model needs a value there "
                        "(its preprocessing fills in missing values of other columns only)",
                    )
                if not math.isfinite(value):
                    raise InputError(
                        422, f"row {i}, {self.describe(j)} must be a finite number; got {value}"
                    )
        return rows

    def check_texts(self, inputs: list[Any], max_rows: int, max_chars: int) -> list[Any]:
        """The texts of a request, checked (count, strings, length); InputError otherwise."""
        example = '{"inputs": ["a quietly moving film"]}'
        _check_count(
            len(inputs), max_rows, "texts",
            f"inputs is empty; send 1 to {max_rows} texts, e.g. {example}",
        )  # fmt: skip
        for i, text in enumerate(inputs):
            if not isinstance(text, str):
                raise InputError(
                    422, f"inputs[{i}] is {type(text).__name__}, not a text; send {example}"
                )
            if len(text) > max_chars:
                raise InputError(
                    413, f"inputs[{i}] has {len(text):,} characters; at most {max_chars:,}"
                )
        return inputs

    def check_series(self, inputs: list[Any], max_rows: int) -> list[Any]:
        """The series of a request ([C][L] each, or [L] with one channel; shorter ones are
        padded), checked; InputError names the sample and the shape this run reads."""
        from nntune.data.series import series_samples

        assert self.series is not None
        _check_count(
            len(inputs), max_rows, "series",
            f"inputs is empty; send 1 to {max_rows} series, e.g. {self.series_example()}",
        )  # fmt: skip
        try:
            return list(series_samples(inputs, self.series))
        except DataError as err:
            raise InputError(422, f"{err}; send e.g. {self.series_example()}") from None

    def series_example(self) -> str:
        assert self.series is not None
        channel = "[0.5, 1.2, ...]"
        sample = channel if int(self.series["channels"]) == 1 else f"[{channel}, ...]"
        return f'{{"inputs": [{sample}, ...]}}'

    def check_images(self, files: list[bytes], max_rows: int, max_bytes: int) -> list[Any]:
        """The images of a request (bytes of image files), decoded and resized as the run read
        its folder; InputError names the image that is too large or no image."""
        from nntune.data.images import BadImage, image_array

        assert self.image is not None
        _check_count(len(files), max_rows, "images", f"no images; send 1 to {max_rows} image files")
        size = (int(self.image["size"][0]), int(self.image["size"][1]))
        channels = "gray" if int(self.image["channels"]) == 1 else "rgb"
        decoded = []
        for i, data in enumerate(files):
            if len(data) > max_bytes:
                raise InputError(
                    413,
                    f"image {i} is {len(data):,} bytes; at most {max_bytes:,} are allowed per "
                    "image (start the server with a larger --max-image-bytes)",
                )
            try:
                decoded.append(image_array(data, size, str(self.image["fit"]), channels))
            except BadImage as err:
                raise InputError(
                    422, f"image {i}: {err}; send image files (PNG, JPEG, ...)"
                ) from None
        return decoded

    def _column_hint(self) -> str:
        named = [c for i, c in enumerate(self.columns) if c != f"x{i}"]
        if not named:
            return ""
        shown = ", ".join(named[:12]) + (", ..." if len(named) > 12 else "")
        return f" ({shown})"

    def predict(self, rows: list[list[Any]]) -> dict[str, list[Any]]:
        """The contract's answer for checked rows: predictions, and class probabilities for
        classification."""
        if self.image is not None or self.series is not None:  # check_images, check_series
            return self.predictor.predict(np.stack(rows))
        if self.text is not None:  # strings (check_texts)
            return self.predictor.predict(list(rows))
        plain = all(isinstance(v, (int, float)) for row in rows for v in row)
        if plain:
            array = np.asarray(rows, dtype=np.float64)
        else:  # text or missing cells: columns find their own types again (Predictor.features)
            array = np.array(
                [[math.nan if v is None else v for v in row] for row in rows], dtype=object
            )
        return self.predictor.predict(array)

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "model": self.name,
            "version": self.version,
            "task": self.task,
            "classes": self.classes,
            "checkpoint": self.checkpoint,
            "features": self.width,
            "columns": self.columns if self._column_hint() else None,
            "categorical_columns": sorted(self.text_columns) or None,
            **(
                {
                    "inputs": "images",
                    "image_size": self.image["size"],
                    "image_channels": self.image["channels"],
                }
                if self.image
                else {}
            ),
            **({"inputs": "texts", "text_columns": self.text["columns"]} if self.text else {}),
            **(
                {
                    "inputs": "series",
                    "channels": self.series["channels"],
                    "max_length": self.series["input_length"],
                }
                if self.series
                else {}
            ),
        }
