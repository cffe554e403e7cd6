"""Diagnosis and repair of training runs: probes, detectors, remedies, the LR range test."""

# the function is the package's face (``from nntune.doctor import doctor``); it stands where the
# submodule's name would, which ``from nntune.doctor.doctor import ...`` still imports
from nntune.doctor.doctor import doctor

__all__ = ["doctor"]
