"""Micro-batching: the rows of concurrent requests go through the model in one call.

A model call on 32 rows costs little more than one on a single row, so under concurrent load
the server answers more requests per second when it waits a moment (``max_wait``) for more
requests to arrive and predicts them together. Requests are checked one by one before they
are queued, so a batch holds valid rows only; should a batch still fail, each of its requests
is predicted alone and only the one at fault fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

Rows = list[list[Any]]
Result = dict[str, list[Any]]
Predict = Callable[[Rows], Result]


@dataclass
class _Request:
    rows: Rows
    future: asyncio.Future[Result]
    arrived: float  # event-loop time at submit


class MicroBatcher:
    """Queues requests and predicts them in batches of up to ``max_batch`` rows, waiting at
    most ``max_wait`` seconds after the first queued request for others to join it.

    One batch runs at a time, in a worker thread: the model call blocks, and meanwhile the
    event loop keeps accepting the requests that fill the next batch. A request is never
    split (one with more than ``max_batch`` rows is a batch of its own). With
    ``batching=False`` every request is one model call: the baseline micro-batching is
    measured against. ``on_batch(rows)`` is called on the event loop after each model call.
    """

    def __init__(
        self,
        predict: Predict,
        max_batch: int = 64,
        max_wait: float = 0.002,
        batching: bool = True,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, but got {max_batch}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be 0 or more seconds, but got {max_wait}")
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.batching = batching
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Request] | None = None
        self._held: _Request | None = None  # came in after its batch was full: next batch
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._waiting = 0
        self._running: list[_Request] = []  # the batch in the model now

    @property
    def waiting_rows(self) -> int:
        """Rows queued and not yet in a model call."""
        return self._waiting

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        # one thread: torch parallelizes a batch itself, and batches then never compete
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nntune-model")
        self._worker = asyncio.create_task(self._run(), name="nntune-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        pending = [*self._running, *([self._held] if self._held is not None else [])]
        while self._queue is not None and not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for request in pending:
            if not request.future.done():
                request.future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._worker = self._queue = self._executor = self._held = None
        self._waiting = 0
        self._running = []

    async def submit(self, rows: Rows) -> Result:
        """The model's answer for ``rows`` (checked already), once its batch has run."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        loop = asyncio.get_running_loop()
        request = _Request(rows, loop.create_future(), loop.time())
        self._queue.put_nowait(request)
        self._waiting += len(rows)
        return await request.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            collected = await self._collect(loop)
            self._waiting -= sum(len(r.rows) for r in collected)
            batch = [r for r in collected if not r.future.done()]
            if not batch:  # every caller went away (client disconnects cancel the future)
                continue
            self._running = batch
            try:
                outcomes, calls = await loop.run_in_executor(self._executor, self._predict, batch)
                for size in calls:
                    if self.on_batch is not None:
                        self.on_batch(size)
            except Exception as err:  # a bug of ours: fail this batch, keep serving
                outcomes = [err] * len(batch)
            self._running = []  # (kept when cancelled: stop() fails those requests)
            for request, outcome in zip(batch, outcomes, strict=True):
                if request.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    request.future.set_exception(outcome)
                else:
                    request.future.set_result(outcome)

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> list[_Request]:
        """The next batch: the first waiting request, then whatever joins it before its
        deadline (``max_wait`` after it arrived) while the rows fit in ``max_batch``."""
        assert self._queue is not None
        first = self._held if self._held is not None else await self._queue.get()
        self._held = None
        batch, rows = [first], len(first.rows)
        if not self.batching:
            return batch
        deadline = first.arrived + self.max_wait
        while rows < self.max_batch:
            try:
                # requests that queued up during the previous model call join at once
                request = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    request = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            if rows + len(request.rows) > self.max_batch:
                self._held = request
                break
            batch.append(request)
            rows += len(request.rows)
        return batch

    def _predict(self, batch: list[_Request]) -> tuple[list[Result | Exception], list[int]]:
        """Runs in the worker thread: (each request's result or error, rows per model call)."""
        rows = [row for request in batch for row in request.rows]
        try:
            result = self.predict(rows)
        except Exception as err:
            if len(batch) == 1:
                return [err], [len(rows)]
            # one bad request must not fail the others: predict each alone
            outcomes: list[Result | Exception] = []
            for request in batch:
                try:
                    outcomes.append(self.predict(request.rows))
                except Exception as alone:
                    outcomes.append(alone)
            return outcomes, [len(rows)] + [len(r.rows) for r in batch]
        return _split(result, [len(r.rows) for r in batch]), [len(rows)]


def _split(result: Result, sizes: list[int]) -> list[Result | Exception]:
    """A batch's answer cut back into the answers of its requests (every value is a list with
    one item per row)."""
    parts: list[Result | Exception] = []
    start = 0
    for size in sizes:
        parts.append({key: values[start : start + size] for key, values in result.items()})
        start += size
    return parts
