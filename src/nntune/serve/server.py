"""``serve``: a run folder's model on an HTTP port, with uvicorn."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from nntune.errors import ConfigError
from nntune.serve.app import create_app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one); ConfigError naming the option
    when the port is taken or the address is not this machine's."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, but got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as err:
        raise ConfigError(f"--host '{host}' is not a usable address: {err.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ports in TIME_WAIT
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"--port {port}: {host}:{port} is already in use; stop what listens there or "
                "pick another port (--port 0 takes a free one)"
            ) from None
        if err.errno == errno.EACCES:
            raise ConfigError(
                f"--port {port}: not allowed to listen on {host}:{port} (ports below 1024 "
                "need privileges); pick a port of 1024 or more"
            ) from None
        raise ConfigError(f"--host {host} --port {port}: cannot listen there: {err}") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    run_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    checkpoint: str = "best",
    max_batch: int = 64,
    max_wait_ms: float = 2.0,
    batching: bool = True,
    max_rows: int = 1024,
    on_listening: Callable[[str], None] | None = None,
    trust_code: bool = False,
    max_image_bytes: int = 10 << 20,
    max_text_chars: int = 100_000,
) -> None:
    """Serve the ``checkpoint`` of a run folder on ``host:port`` until interrupted.

    The model is loaded first (a missing or corrupt folder is a RunFolderError before
    anything listens), then the port is bound (ConfigError if taken), then
    ``on_listening(url)`` is called and uvicorn serves until SIGINT/SIGTERM.
    """
    app = create_app(
        run_dir,
        checkpoint=checkpoint,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        batching=batching,
        max_rows=max_rows,
        trust_code=trust_code,
        max_image_bytes=max_image_bytes,
        max_text_chars=max_text_chars,
    )
    sock = bind(host, port)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    if on_listening is not None:
        on_listening(url_of(sock))  # connections wait in the socket's backlog meanwhile
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
