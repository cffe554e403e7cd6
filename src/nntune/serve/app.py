"""The HTTP API of ``nntune serve``: POST /predict, GET /health, GET /metrics (FastAPI).

Every error is JSON ``{"detail": "<what was expected>"}`` with a 4xx status for the client's
mistakes (400 body not JSON, 413 too many rows, 422 anything else about the inputs) and 500
for the server's own; no request can stop the server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from nntune.errors import ConfigError, NntuneError
from nntune.serve.batcher import MicroBatcher
from nntune.serve.metrics import CONTENT_TYPE, Metrics
from nntune.serve.model import InputError, ServedModel

log = logging.getLogger("nntune.serve")

Cell = StrictFloat | StrictInt | StrictStr | None
EXAMPLE = '{"inputs": [[0.5, 1.2, ...], ...]}'
TEXT_EXAMPLE = '{"inputs": ["a quietly moving film", ...]}'


class PredictRequest(BaseModel):
    """Raw feature rows, as in the training data (before preprocessing)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"inputs": [[5.1, 3.5, 1.4, 0.2]]}]})
    inputs: list[list[Cell]] = Field(
        description="rows of raw features; text only in the run's categorical columns, "
        "null only where its preprocessing imputes"
    )


class TextPredictRequest(BaseModel):
    """Texts, as in the run's text column (its own tokenizer reads them)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"inputs": ["a quietly moving film"]}]}
    )
    # checked by ServedModel.check_texts, whose message names what is expected
    inputs: list[Any] = Field(description="texts (strings), one per prediction")


class SeriesPredictRequest(BaseModel):
    """Series: each [C][L] (channels of one length; [L] with one channel), up to the run's
    longest; shorter ones are padded as in training."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"inputs": [[[0.5, 1.2, 0.7]]]}]})
    # checked by ServedModel.check_series, whose message names the shape this run reads
    inputs: list[Any] = Field(description="series, one per prediction: [C][L] numbers")


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(description="class names (or codes), or regression values")
    probabilities: list[list[float]] | None = Field(
        None, description="class probabilities per row (classification only)"
    )


def create_app(
    run_dir: str | Path,
    checkpoint: str = "best",
    max_batch: int = 64,
    max_wait_ms: float = 2.0,
    batching: bool = True,
    max_rows: int = 1024,
    trust_code: bool = False,
    max_image_bytes: int = 10 << 20,
    max_text_chars: int = 100_000,
) -> FastAPI:
    """The app serving a run folder's model. The model is loaded here, so that a missing or
    corrupt run folder is a RunFolderError before any port is bound."""
    for option, value, least in (("--max-batch", max_batch, 1), ("--max-rows", max_rows, 1)):
        if value < least:
            raise ConfigError(f"{option} must be at least {least}, but got {value}")
    if not max_wait_ms >= 0:
        raise ConfigError(f"--max-wait-ms must be 0 or more, but got {max_wait_ms}")
    served = ServedModel.load(run_dir, checkpoint, trust_code)
    metrics = Metrics(served.name, served.version)
    batcher = MicroBatcher(
        served.predict,
        max_batch=max_batch,
        max_wait=max_wait_ms / 1000,
        batching=batching,
        on_batch=metrics.batch,
    )
    settings = {"enabled": batching, "max_batch": max_batch, "max_wait_ms": max_wait_ms}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="nntune serve",
        summary=f"{served.name} ({served.version}): predictions on raw feature rows",
        lifespan=lifespan,
        docs_url=None,  # the interactive docs fetch scripts from a CDN; /openapi.json stays
        redoc_url=None,
    )
    app.add_middleware(_CountRequests, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(error.errors(), served)
        return JSONResponse({"detail": message}, status_code=status)

    async def answer(check: Callable[[], list[Any]]) -> JSONResponse:
        """The micro-batched answer for the inputs ``check`` returns (or the error it raises)."""
        try:
            rows = check()
            result = await batcher.submit(rows)
        except InputError as err:
            return JSONResponse({"detail": err.message}, status_code=err.status)
        except NntuneError as err:  # e.g. DataError from the preprocessing
            return JSONResponse({"detail": str(err)}, status_code=422)
        except Exception as err:
            log.exception("prediction failed")
            return JSONResponse(
                {"detail": f"the model failed on this request: {type(err).__name__}: {err}"},
                status_code=500,
            )
        metrics.predicted(len(rows))
        return JSONResponse(result)

    if served.text is not None:

        @app.post("/predict", response_model=PredictResponse, response_model_exclude_none=True)
        async def predict_texts(body: TextPredictRequest) -> JSONResponse:
            """Predictions (and class probabilities) for texts, read by the run's tokenizer.
            Concurrent requests are micro-batched."""
            return await answer(lambda: served.check_texts(body.inputs, max_rows, max_text_chars))

    elif served.series is not None:

        @app.post("/predict", response_model=PredictResponse, response_model_exclude_none=True)
        async def predict_series(body: SeriesPredictRequest) -> JSONResponse:
            """Predictions (and class probabilities) for series, padded and normalized as the
            run's training data. Concurrent requests are micro-batched."""
            return await answer(lambda: served.check_series(body.inputs, max_rows))

    elif served.image is None:

        @app.post("/predict", response_model=PredictResponse, response_model_exclude_none=True)
        async def predict(body: PredictRequest) -> JSONResponse:
            """Predictions (and class probabilities) for raw feature rows; the run's fitted
            preprocessing is applied here. Concurrent requests are micro-batched."""
            return await answer(lambda: served.check(body.inputs, max_rows))

    else:

        @app.post("/predict", response_model=PredictResponse, response_model_exclude_none=True)
        async def predict_images(request: Request) -> JSONResponse:
            """Classes and probabilities for images: multipart form files in the field
            ``images`` (one or more), or JSON ``{"images": ["<base64>", ...]}``; each is
            decoded and resized as the run read its folder."""
            try:
                files = await image_files(request, max_rows, max_image_bytes)
            except InputError as err:
                return JSONResponse({"detail": err.message}, status_code=err.status)
            return await answer(lambda: served.check_images(files, max_rows, max_image_bytes))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and what is served: model name, version (the run id), task, classes."""
        return {
            **served.health(),
            "batching": settings,
            "max_rows": max_rows,
            "uptime_seconds": round(metrics.uptime(), 3),
            "counters": metrics.counters(),
        }

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        """Counters in the Prometheus text format."""
        info = {"task": served.task, "checkpoint": served.checkpoint}
        text = metrics.exposition(batcher.waiting_rows, info)
        return PlainTextResponse(text, media_type=CONTENT_TYPE)

    return app


IMAGE_EXAMPLE = (
    'multipart form files in the field "images" (curl -F images=@cat.jpg URL/predict), or '
    'JSON {"images": ["<base64 of an image file>", ...]}'
)


async def image_files(request: Request, max_rows: int, max_bytes: int) -> list[bytes]:
    """The image files of a /predict request to an image run, as bytes."""
    import base64
    import binascii

    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=max_rows + 1, max_part_size=max_bytes + 1)
        except Exception as err:  # starlette's parser errors: a malformed or too large form
            raise InputError(
                400, f"the form cannot be read ({err}); send {IMAGE_EXAMPLE}"
            ) from None
        parts = form.getlist("images")
        if not parts:
            raise InputError(422, f"the form has no field 'images'; send {IMAGE_EXAMPLE}")
        files = []
        for i, part in enumerate(parts):
            if isinstance(part, str):
                raise InputError(422, f"images[{i}] is text, not a file; send {IMAGE_EXAMPLE}")
            files.append(await part.read())
        return files
    try:
        body = await request.json()
    except ValueError:
        raise InputError(
            400, f"the body is neither a form nor JSON; send {IMAGE_EXAMPLE}"
        ) from None
    images = body.get("images") if isinstance(body, dict) else None
    if not isinstance(images, list):
        raise InputError(422, f"the body has no list 'images'; send {IMAGE_EXAMPLE}")
    decoded = []
    for i, text in enumerate(images):
        if not isinstance(text, str):
            raise InputError(422, f"images[{i}] must be a base64 string; send {IMAGE_EXAMPLE}")
        try:
            decoded.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise InputError(422, f"images[{i}] is not base64; send {IMAGE_EXAMPLE}") from None
    return decoded


def _validation_message(errors: Any, served: ServedModel) -> tuple[int, str]:
    """One readable sentence for pydantic's errors on a /predict body."""
    errors = list(errors)
    kinds = {e.get("type") for e in errors}
    example = TEXT_EXAMPLE if served.text is not None else EXAMPLE  # a text run takes strings
    if served.series is not None:
        example = served.series_example()
    if "json_invalid" in kinds:
        why = next(e.get("ctx", {}).get("error", "") for e in errors if e["type"] == "json_invalid")
        return 400, f"the body is not valid JSON ({why}); send {example}"
    first = errors[0] if errors else {}
    loc = [p for p in first.get("loc", ()) if p != "body"]
    if not loc or first.get("type") in ("model_attributes_type", "dict_type"):
        return 422, (
            f"the body must be a JSON object {example} (sent with Content-Type: application/json)"
        )
    if loc == ["inputs"]:
        if first.get("type") == "missing":
            return 422, f"the body has no 'inputs'; send {example}"
        if served.text is not None:
            return 422, f"inputs must be a list of texts (strings); send {example}"
        if served.series is not None:
            return 422, f"inputs must be a list of series ([C][L] numbers); send {example}"
        return 422, f"inputs must be a list of rows (lists of features); send {example}"
    if len(loc) == 2:  # inputs[i] is not a list
        return 422, (
            f"row {loc[1]} is not a list of features: {first.get('input')!r}; "
            "inputs must be a list of rows, e.g. [[0.5, 1.2], [0.1, 0.3]]"
        )
    value = first.get("input")
    shown = "true" if value is True else "false" if value is False else repr(value)
    row, column = loc[1], loc[2]
    categorical = isinstance(column, int) and column < len(served.columns)
    categorical = categorical and served.columns[column] in served.text_columns
    expected = "a category (text) or a number" if categorical else "a number"
    where = served.describe(column) if isinstance(column, int) else f"feature {column}"
    return 422, f"row {row}, {where} must be {expected}; got {shown}"


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _CountRequests:
    """ASGI middleware: every answered HTTP request is counted by endpoint and status, and
    /predict's latency is recorded."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.metrics.request(scope["path"], status, time.perf_counter() - start)
