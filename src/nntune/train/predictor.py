"""Load a run folder and predict on raw inputs with the run's own fitted preprocessing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nntune.config import Config, validate_config
from nntune.data import Pipeline
from nntune.data.pipeline import frame_to_array, to_frame
from nntune.errors import DataError, RunFolderError
from nntune.losses import LOSSES, Loss, build_loss
from nntune.models import build_model, image_model
from nntune.models.quantize import quantized_like
from nntune.train.build import text_vocab
from nntune.train.callbacks.checkpoints import model_weights
from nntune.train.checkpoint import load_checkpoint
from nntune.train.code import trusted_meta
from nntune.train.evaluate import outputs_for_metrics, predict_outputs
from nntune.train.rundir import existing_run_dir


class Predictor:
    """A trained model plus everything needed to read raw inputs and explain its outputs."""

    def __init__(
        self, model: nn.Module, loss: Loss, pipeline: Pipeline | None, meta: dict[str, Any]
    ) -> None:
        self.model = model.eval()
        self.loss = loss
        self.pipeline = pipeline
        self.meta = meta
        self.task: str = meta["task"]
        self.class_names: list[str] | None = meta.get("class_names")
        self.sample_shape = tuple(meta["sample_shape"])
        self._tokenizer: Any = None  # a text run's, from meta["text"] on first use

    def features(self, raw: pd.DataFrame | np.ndarray | list[Any]) -> torch.Tensor:
        """Raw inputs (rows of features as in the training data; for an image run: paths,
        bytes, PIL images or arrays) → model inputs."""
        image = self.meta.get("image")
        if image:
            from nntune.data.images import image_inputs

            return torch.from_numpy(image_inputs(raw, image))
        if self.meta.get("text"):
            return self.token_ids(raw)
        if self.meta.get("series"):
            from nntune.data.series import series_inputs

            return torch.from_numpy(series_inputs(raw, self.meta["series"]))
        if isinstance(raw, pd.DataFrame):
            frame = raw
            if self.pipeline is not None and self.pipeline.input_columns:
                missing = [c for c in self.pipeline.input_columns if c not in frame.columns]
                if missing:
                    raise DataError(f"inputs lack the feature column(s) {missing}")
                frame = frame[self.pipeline.input_columns]
        else:
            array = np.asarray(raw)
            if array.ndim == 1:
                array = array.reshape(1, -1)
            width = int(np.prod(self.pipeline.raw_shape)) if self.pipeline else None
            if width is not None and int(np.prod(array.shape[1:])) != width:
                raise DataError(
                    f"inputs have {int(np.prod(array.shape[1:]))} features per row; "
                    f"the model was trained on {width}"
                )
            frame, _ = to_frame(array)
            if self.pipeline is not None and self.pipeline.input_columns:
                frame.columns = pd.Index(self.pipeline.input_columns)
            # rows given as mixed lists/object arrays: numbers become numeric columns again
            frame = frame.infer_objects()
        rows = len(frame)
        if self.pipeline is not None:
            frame = self.pipeline.transform(frame.reset_index(drop=True))
        if len(frame) != rows:
            raise DataError(
                "some input rows have missing values, which this run's impute step drops; "
                "fill them before predicting"
            )
        values = frame_to_array(frame, "input", "prediction inputs")
        return torch.from_numpy(values).reshape(rows, *self.sample_shape)

    def token_ids(self, raw: pd.DataFrame | np.ndarray | list[Any] | str) -> torch.Tensor:
        """Texts (strings, or a table with the run's text columns) → the run's token ids."""
        from nntune.data.text import Tokenizer, as_texts, joined_texts

        text = self.meta["text"]
        if isinstance(raw, pd.DataFrame):
            texts = joined_texts(raw, text["columns"], "the inputs")
        else:
            texts = as_texts(raw)
        if self._tokenizer is None:  # built once: its vocabulary can be large
            self._tokenizer = Tokenizer.from_state(text["tokenizer"])
        return torch.from_numpy(self._tokenizer.encode(texts)[0])

    @torch.no_grad()
    def predict(self, raw: pd.DataFrame | np.ndarray | list[Any]) -> dict[str, Any]:
        """``{"predictions": [...], "probabilities": [[...]]}`` (probabilities for
        classification only; predictions are class names when the run has them)."""
        # a quantized model (nntune compress) may have no float parameters: it runs on the CPU
        device = next((p.device for p in self.model.parameters()), torch.device("cpu"))
        outputs = predict_outputs(self.model, self.features(raw).to(device))
        readable = outputs_for_metrics(self.loss, self.task, outputs).cpu()
        if self.task != "classification":
            values = readable.numpy()
            flat = values[:, 0] if values.shape[1] == 1 else values
            return {"predictions": flat.tolist()}
        codes = readable.argmax(dim=1).tolist()
        names = self.class_names
        return {
            "predictions": [names[c] for c in codes] if names else codes,
            "probabilities": readable.numpy().tolist(),
        }


def load_run(run_dir: str | Path, checkpoint: str = "best", trust_code: bool = False) -> Predictor:
    """The model of a run folder (``best`` or ``last`` checkpoint), ready to predict. A run
    that names user code (``models.py:Net``) is loaded only with ``trust_code``, from the
    folder's own copies of that code."""
    folder = existing_run_dir(Path(run_dir))
    path = folder / "checkpoints" / f"{checkpoint}.pt"
    if not path.exists() and checkpoint == "best":
        path = folder / "checkpoints" / "last.pt"
    payload = load_checkpoint(path)
    meta = payload.get("meta") or {}
    if "config" in meta:
        meta = trusted_meta(meta, folder, trust_code)
    if meta.get("custom_model"):
        raise RunFolderError(
            f"'{folder}' was trained with your own model class {meta['custom_model']}; rebuild "
            f"it and load the weights: torch.load('{path}', weights_only=True)['model']"
        )
    try:
        config: Config = validate_config(meta["config"])
        pipeline = Pipeline.from_state(meta["pipeline"]) if meta.get("pipeline") else None
        entry = LOSSES.get(config.loss.name, key="loss")
        loss = build_loss(
            entry.name,
            entry.parse_options(config.loss.options, "loss"),
            meta["task"],
            None,
            meta["n_outputs"],
        )
        model = build_model(
            config.model,
            tuple(meta["sample_shape"]),
            loss.n_outputs(meta["n_outputs"]),
            meta["task"],
            vocab=text_vocab(meta.get("text")),
            series=meta.get("series") is not None,
        )
        model = image_model(model, meta.get("image"))
        quantized = (meta.get("compression") or {}).get("quantize")
        if quantized:
            # a folder written by nntune compress: the int8 structure is rebuilt, then loaded
            sample = torch.zeros(2, *meta["sample_shape"])
            model = quantized_like(model, quantized, sample)
        model.load_state_dict(model_weights(payload))
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        raise RunFolderError(f"'{path}' does not hold a usable model: {err}") from None
    return Predictor(model, loss, pipeline, meta)
