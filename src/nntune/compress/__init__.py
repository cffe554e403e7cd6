"""Shrinking and shipping a trained model: pruning, quantization, export.

- :func:`compress_run` (``nntune compress``): prune, fine-tune and quantize, with a
  before/after table; the result is a run folder of its own.
- :func:`export_run` (``nntune export``): ONNX or TorchScript, verified against nntune's own
  predictions on the test split.
"""

from nntune.compress.compress import compress_run
from nntune.compress.export import FORMATS, export_run

__all__ = ["FORMATS", "compress_run", "export_run"]
