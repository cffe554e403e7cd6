"""``nntune serve RUN_DIR``."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer

from nntune.cli._app import app, stderr, trust_code_option


@app.command("serve")
def serve_command(
    run_dir: Path = typer.Argument(..., help="run folder", metavar="RUN_DIR", show_default=False),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="address to listen on (0.0.0.0: every interface)"
    ),
    port: int = typer.Option(8000, "--port", help="port to listen on (0: a free one)"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best | last"),
    max_batch: int = typer.Option(
        64, "--max-batch", help="micro-batching: most rows in one model call"
    ),
    max_wait_ms: float = typer.Option(
        2.0, "--max-wait-ms", help="micro-batching: most ms a request waits for others to join"
    ),
    batching: bool = typer.Option(
        True, "--batching/--no-batching", help="micro-batch concurrent requests"
    ),
    max_rows: int = typer.Option(1024, "--max-rows", help="most rows in one request (else 413)"),
    max_image_bytes: int = typer.Option(
        10 << 20, "--max-image-bytes", help="image runs: most bytes of one image (else 413)"
    ),
    max_text_chars: int = typer.Option(
        100_000, "--max-text-chars", help="text runs: most characters of one text (else 413)"
    ),
    trust_code: bool = trust_code_option(),
) -> None:
    """Serve a run's model over HTTP: POST /predict on raw feature rows (the run's fitted
    preprocessing is applied), GET /health, GET /metrics (Prometheus). Runs until Ctrl-C.

    POST /predict {"inputs": [[feature, ...], ...]} answers {"predictions": [...],
    "probabilities": [[...], ...]} (probabilities for classification only). Concurrent
    requests are micro-batched: their rows go through the model together, up to --max-batch
    rows or --max-wait-ms after the first.
    """
    from nntune.serve import serve

    def listening(url: str) -> None:
        print(
            f"serving {run_dir} on {url} (POST /predict, GET /health, GET /metrics); Ctrl-C stops",
            flush=True,
        )
        if not _is_loopback(host):
            stderr.print(
                f"warning: --host {host} makes the model reachable from other machines; "
                "the server has no authentication",
                markup=False,
            )

    serve(
        run_dir,
        host,
        port,
        checkpoint=checkpoint,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        batching=batching,
        max_rows=max_rows,
        on_listening=listening,
        trust_code=trust_code,
        max_image_bytes=max_image_bytes,
        max_text_chars=max_text_chars,
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
