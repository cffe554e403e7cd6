"""Diagnostics that never train: the gradient check (and, later, detectors that read a History
and probe statistics and return Findings)."""

from nntune.diagnose.gradcheck import GradcheckReport, TensorCheck, gradcheck

__all__ = ["GradcheckReport", "TensorCheck", "gradcheck"]
