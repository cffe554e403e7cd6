"""Scaling: serving throughput with and without micro-batching (and data-parallel training).

Parts (one JSON line per figure):
- serve: the default recipe (examples/mnist1d.yaml, --epochs E, default 3: the model's size,
  not its accuracy, sets the cost) served by ``nntune serve`` three times: micro-batching
  with the defaults (--max-batch 64 --max-wait-ms 2), with --max-wait-ms 0 (a batch is what
  queued while the previous one ran), and off (--no-batching: one model call per request).
  For each concurrency level a client process (``python -m nntune.serve.loadtest``, standard
  library, one keep-alive connection per thread) sends --warmup untimed requests,
  then --requests timed ones of --rows-per-request raw MNIST-1D test rows each. Reported:
  requests/s, p50/p99 latency, the mean rows per model call (from /metrics), and that every
  request came back 200 with the prediction the Predictor gives in-process.
  Server and client share this machine's cores; the figures are loopback figures.
- ddp: the recipe at a global batch of 128 in 1 process (all cores; 1 thread) and in 2 DDP
  processes of 64 with 1 thread each (``nntune train --nproc 2``), back to back.
Usage: python bench/scale.py [--part serve|ddp|all] [--run RUN_DIR] [--epochs 3] [--ddp-epochs 5]
       [--requests 2000] [--concurrency 1,8,32] [--rows-per-request 1] [--warmup 200]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import nntune
from nntune.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples" / "mnist1d.yaml"
MODES = {
    "batching": [],  # the defaults: --max-batch 64 --max-wait-ms 2
    "batching_no_wait": ["--max-wait-ms", "0"],  # only what queued during the previous call
    "no_batching": ["--no-batching"],
}


def emit(line: dict[str, Any]) -> None:
    print(json.dumps({"bench": "scale", **line}), flush=True)


def start_server(run: Path, folder: Path, options: list[str]) -> tuple[subprocess.Popen, str]:
    """``nntune serve RUN --port 0 OPTIONS``; returns the process and its URL once /health
    answers."""
    out = folder / f"serve-{time.monotonic_ns()}.out"
    with out.open("w") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "nntune", "serve", str(run), "--port", "0", *options],
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", out.read_text())
        if found:
            try:
                with urllib.request.urlopen(found.group(1) + "/health", timeout=5) as answer:
                    if answer.status == 200:
                        return process, found.group(1)
            except OSError:
                pass
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}")
        time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not answer within 120 s")


def scrape(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def serve_part(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run = Path(args.run) if args.run else folder / "recipe"
        if not args.run:
            nntune.train(RECIPE, {"train.epochs": args.epochs}, out=run, progress=False)
        raw = load_dataset("mnist1d")
        rows = (raw.x_test if raw.x_test is not None else raw.x)[: args.rows]
        rows = [[float(v) for v in row] for row in rows.reshape(len(rows), -1)]
        expected = nntune.load_run(run).predict(rows)["predictions"]
        inputs = folder / "inputs.json"
        inputs.write_text(json.dumps({"inputs": rows, "predictions": expected}))
        levels = [int(c) for c in args.concurrency.split(",")]
        for mode, options in MODES.items():
            process, url = start_server(run, folder, options)
            try:
                for concurrency in levels:
                    calls = scrape(url, "nntune_model_batches_total")
                    answered = scrape(url, "nntune_batch_rows_sum")
                    client = subprocess.run(
                        [sys.executable, "-m", "nntune.serve.loadtest", "--url", url,
                         "--inputs", str(inputs), "--requests", str(args.requests),
                         "--concurrency", str(concurrency), "--warmup", str(args.warmup),
                         "--rows-per-request", str(args.rows_per_request)],
                        capture_output=True, text=True, timeout=600,
                    )  # fmt: skip
                    if not client.stdout.strip():
                        raise SystemExit(f"the load-test client failed: {client.stderr}")
                    result = json.loads(client.stdout)
                    calls = scrape(url, "nntune_model_batches_total") - calls
                    answered = scrape(url, "nntune_batch_rows_sum") - answered
                    emit(
                        {
                            "part": "serve",
                            "row": f"serve_{mode}",
                            "model": "mnist1d-resnet",
                            "concurrency": concurrency,
                            "requests": args.requests,
                            "rows_per_request": args.rows_per_request,
                            "ok": result["ok"],
                            "mismatched": result["mismatched"],
                            "errors": result["errors"],
                            "requests_per_second": result["requests_per_second"],
                            "p50_ms": result["latency_ms"]["p50"],
                            "p99_ms": result["latency_ms"]["p99"],
                            "mean_rows_per_model_call": round(answered / calls, 2)
                            if calls
                            else None,
                            "cpus": os.cpu_count(),
                        }
                    )
            finally:
                process.terminate()
                process.wait(30)


# --- DDP part ----------------------------------------------------------------------------
def _train_json(extra: list[str], out: Path) -> tuple[dict[str, Any], float]:
    command = [sys.executable, "-m", "nntune", "train", str(RECIPE), "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run([*command, *extra, "--json"], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"training failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout), wall


def ddp_part(args: argparse.Namespace) -> None:
    """The recipe for --ddp-epochs epochs at one global batch (128): 1 process with all cores,
    1 process with 1 thread, and 2 processes (torchrun, gloo) of batch 64 with 1 thread each,
    back to back. Reported: optimizer steps/s and samples/s over training time (the summary's
    seconds), the command's wall time (process start, data, evaluation included), and the
    final validation accuracy."""
    global_batch = 128
    setups = {
        "1 process, all cores": ["--set", f"train.batch_size={global_batch}"],
        "1 process, 1 thread": [
            "--set",
            f"train.batch_size={global_batch}",
            "--set",
            "train.threads=1",
        ],
        "2 processes (DDP, gloo), 1 thread each": [
            "--nproc",
            "2",
            "--set",
            f"train.batch_size={global_batch // 2}",
            "--set",
            "train.threads=1",
        ],
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        for name, extra in setups.items():
            summary, wall = _train_json(
                [*extra, "--set", f"train.epochs={args.ddp_epochs}"], Path(tmp) / str(len(name))
            )
            samples = summary["steps"] * summary["global_batch_size"] / summary["seconds"]
            base = base or samples
            emit(
                {
                    "part": "ddp",
                    "setup": name,
                    "world_size": summary["world_size"],
                    "global_batch": summary["global_batch_size"],
                    "epochs": summary["epochs_run"],
                    "steps_per_second": summary["steps_per_second"],
                    "samples_per_second": round(samples, 1),
                    "speedup_vs_first": round(samples / base, 3),
                    "train_seconds": summary["seconds"],
                    "wall_seconds": round(wall, 2),
                    "val_accuracy": summary["val"]["accuracy"],
                }
            )


# ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--part", choices=("serve", "ddp", "all"), default="all")
    parser.add_argument("--run", default=None, help="serve this run folder (default: train one)")
    parser.add_argument("--epochs", type=int, default=3, help="recipe epochs when training")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    parser.add_argument("--rows-per-request", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rows", type=int, default=500, help="distinct test rows sent")
    parser.add_argument("--ddp-epochs", type=int, default=5, help="recipe epochs, ddp part")
    args = parser.parse_args()
    if args.part in ("serve", "all"):
        serve_part(args)
    if args.part in ("ddp", "all"):
        ddp_part(args)


if __name__ == "__main__":
    main()
