"""The server's counters, and their Prometheus text exposition (format 0.0.4) for /metrics.

Written by hand: a few counters and two histograms do not need a client library.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter

ENDPOINTS = ("/predict", "/health", "/metrics")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    """Cumulative buckets, a sum and a count, as Prometheus histograms are."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {running}')
        out.append(f"{name}_sum{{{labels}}} {self.sum:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters of one server: requests by endpoint and status, rows predicted, model calls
    and their sizes, /predict latency."""

    def __init__(self, model: str, version: str) -> None:
        self.labels = f'model="{_escape(model)}",version="{_escape(version)}"'
        self.started = time.monotonic()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.rows = 0
        self.batches = 0
        self.batch_rows = Histogram(BATCH_BUCKETS)
        self.latency = Histogram(LATENCY_BUCKETS)
        self._lock = threading.Lock()

    def request(self, path: str, status: int, seconds: float) -> None:
        endpoint = path if path in ENDPOINTS else "other"
        with self._lock:
            self.requests[(endpoint, status)] += 1
            if endpoint == "/predict":
                self.latency.observe(seconds)

    def batch(self, rows: int) -> None:
        """One model call on ``rows`` rows."""
        with self._lock:
            self.batches += 1
            self.batch_rows.observe(rows)

    def predicted(self, rows: int) -> None:
        """A request's ``rows`` answered."""
        with self._lock:
            self.rows += rows

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": sum(self.requests.values()),
                "predict_requests": sum(
                    n for (endpoint, _), n in self.requests.items() if endpoint == "/predict"
                ),
                "rows_predicted": self.rows,
                "model_batches": self.batches,
            }

    def exposition(self, waiting_rows: int = 0, info: dict[str, str] | None = None) -> str:
        """The Prometheus text format of every counter."""
        labels = self.labels
        extra = "".join(f',{k}="{_escape(v)}"' for k, v in (info or {}).items())
        with self._lock:
            lines = [
                "# HELP nntune_model_info The served model; the value is always 1.",
                "# TYPE nntune_model_info gauge",
                f"nntune_model_info{{{labels}{extra}}} 1",
                "# HELP nntune_requests_total HTTP requests answered, by endpoint and status.",
                "# TYPE nntune_requests_total counter",
                *(
                    f'nntune_requests_total{{{labels},endpoint="{e}",status="{s}"}} {n}'
                    for (e, s), n in sorted(self.requests.items())
                ),
                "# HELP nntune_rows_predicted_total Input rows answered with a prediction.",
                "# TYPE nntune_rows_predicted_total counter",
                f"nntune_rows_predicted_total{{{labels}}} {self.rows}",
                "# HELP nntune_model_batches_total Model calls (micro-batches).",
                "# TYPE nntune_model_batches_total counter",
                f"nntune_model_batches_total{{{labels}}} {self.batches}",
                "# HELP nntune_batch_rows Rows per model call.",
                "# TYPE nntune_batch_rows histogram",
                *self.batch_rows.lines("nntune_batch_rows", labels),
                "# HELP nntune_predict_latency_seconds Time to answer POST /predict "
                "(checks, queueing, model).",
                "# TYPE nntune_predict_latency_seconds histogram",
                *self.latency.lines("nntune_predict_latency_seconds", labels),
                "# HELP nntune_waiting_rows Rows queued for the next model call.",
                "# TYPE nntune_waiting_rows gauge",
                f"nntune_waiting_rows{{{labels}}} {waiting_rows}",
                "# HELP nntune_uptime_seconds Seconds since the server started.",
                "# TYPE nntune_uptime_seconds gauge",
                f"nntune_uptime_seconds{{{labels}}} {self.uptime():.3f}",
            ]
        return "\n".join(lines) + "\n"
