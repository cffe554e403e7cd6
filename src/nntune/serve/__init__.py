"""Serving a trained run folder over HTTP (``nntune serve``), with FastAPI and uvicorn.

- :func:`create_app`: the FastAPI app of a run folder: ``POST /predict`` on raw feature rows
  (the run's fitted preprocessing applied), ``GET /health``, ``GET /metrics`` (Prometheus).
- :func:`serve`: that app on a port (127.0.0.1 unless told otherwise), until interrupted.
- :class:`MicroBatcher`: concurrent requests' rows predicted in one model call.
- ``python -m nntune.serve.loadtest``: a load-test client (requests/s, latency percentiles).
"""

from nntune.serve.app import create_app
from nntune.serve.batcher import MicroBatcher
from nntune.serve.server import serve

__all__ = ["MicroBatcher", "create_app", "serve"]
