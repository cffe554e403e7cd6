"""Diagnosis and repair of training runs: probes, detectors, remedies, the LR range test."""
