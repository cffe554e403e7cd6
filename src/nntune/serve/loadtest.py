"""A load-test client for ``nntune serve`` (standard library only): N requests to POST /predict
from C concurrent keep-alive connections; prints one JSON object with the counts by status,
requests per second and latency percentiles.

    python -m nntune.serve.loadtest --url http://127.0.0.1:8000 --inputs rows.json \\
        --requests 2000 --concurrency 8 [--rows-per-request 1] [--warmup 100]

``rows.json`` holds ``{"inputs": [[...], ...]}`` and optionally ``"predictions"`` (one per
row): then every answer is checked against them and mismatches are counted. Request ``i``
sends the rows after those of request ``i - 1``, wrapping around.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def _same(answer: Any, expected: Any) -> bool:
    if isinstance(answer, float) and isinstance(expected, (int, float)):
        return math.isclose(answer, expected, rel_tol=1e-4, abs_tol=1e-5)
    return bool(answer == expected)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def run(
    url: str,
    inputs: list[list[Any]],
    requests: int,
    concurrency: int,
    rows_per_request: int = 1,
    expected: list[Any] | None = None,
    warmup: int = 0,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Send ``warmup`` requests (not counted), then ``requests`` timed ones; count what came
    back (see the module's doc)."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    n = len(inputs)
    bodies = []
    for i in range(warmup + requests):
        first = (i * rows_per_request) % n
        picked = [(first + k) % n for k in range(rows_per_request)]
        bodies.append((json.dumps({"inputs": [inputs[p] for p in picked]}).encode(), picked))
    if warmup:
        _send(address, bodies[:warmup], concurrency, None, timeout)
    done = _send(address, bodies[warmup:], concurrency, expected, timeout)
    latencies = sorted(done["latencies"])
    ok, seconds = done["status"].get("200", 0), done["seconds"]
    return {
        "requests": requests,
        "concurrency": concurrency,
        "rows_per_request": rows_per_request,
        "ok": ok,
        "status": done["status"],
        "errors": len(done["errors"]),
        "error_examples": done["errors"][:3],
        "mismatched": done["mismatched"] if expected is not None else None,
        "seconds": round(seconds, 3),
        "requests_per_second": round(ok / seconds, 1) if seconds > 0 else None,
        "latency_ms": {
            "p50": round(1000 * percentile(latencies, 50), 3),
            "p90": round(1000 * percentile(latencies, 90), 3),
            "p99": round(1000 * percentile(latencies, 99), 3),
            "max": round(1000 * latencies[-1], 3) if latencies else None,
        },
    }


def _send(
    address: tuple[str, int],
    bodies: list[tuple[bytes, list[int]]],
    concurrency: int,
    expected: list[Any] | None,
    timeout: float,
) -> dict[str, Any]:
    """``bodies`` POSTed from ``concurrency`` threads, one keep-alive connection each."""
    counter = itertools.count()
    lock = threading.Lock()
    status: dict[str, int] = {}
    latencies: list[float] = []
    errors: list[str] = []
    mismatched = 0
    go = threading.Barrier(concurrency + 1)

    def worker() -> None:
        nonlocal mismatched
        connection = http.client.HTTPConnection(*address, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        go.wait()
        while (i := next(counter)) < len(bodies):
            body, picked = bodies[i]
            start = time.perf_counter()
            try:
                connection.request("POST", "/predict", body, headers)
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as err:  # a lost request: counted
                connection.close()
                connection = http.client.HTTPConnection(*address, timeout=timeout)
                with lock:
                    errors.append(f"request {i}: {type(err).__name__}: {err}")
                continue
            seconds = time.perf_counter() - start
            wrong = False
            if expected is not None and response.status == 200:
                answer = json.loads(data)["predictions"]
                wrong = len(answer) != len(picked) or not all(
                    _same(a, expected[p]) for a, p in zip(answer, picked, strict=False)
                )
            with lock:
                status[str(response.status)] = status.get(str(response.status), 0) + 1
                latencies.append(seconds)
                mismatched += wrong
        connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    go.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return {
        "status": status,
        "latencies": latencies,
        "errors": errors,
        "mismatched": mismatched,
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8000")
    parser.add_argument("--inputs", required=True, type=Path, help="JSON file with 'inputs'")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows-per-request", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=0, help="requests sent first, not counted")
    args = parser.parse_args(argv)
    data = json.loads(args.inputs.read_text())
    if not data.get("inputs"):
        parser.error(f"{args.inputs} has no 'inputs' rows")
    for name in ("requests", "concurrency", "rows_per_request"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    result = run(
        args.url,
        data["inputs"],
        args.requests,
        args.concurrency,
        rows_per_request=args.rows_per_request,
        expected=data.get("predictions"),
        warmup=args.warmup,
    )
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["ok"] == args.requests and not result["mismatched"] else 1)


if __name__ == "__main__":
    main()
