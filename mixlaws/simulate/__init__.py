"""Ground-truth sweeps for tests, fixtures and benchmarks (``python -m mixlaws.simulate``).
"""
from __future__ import annotations
from ._truth import SweepTruth, random_truth, domain_weights
from ._shift import optimum_shift, size_dependent_truth
from ._sweep import (sample_mixtures, round_mixtures, size_label, simulate_sweep, project_to_simplex, true_optimum, write_fixtures, main, BASELINE, FIXTURE_DOMAINS, FIXTURE_SOURCES)

__all__ = [
    "SweepTruth",
    "random_truth",
    "domain_weights",
    "sample_mixtures",
    "round_mixtures",
    "size_label",
    "simulate_sweep",
    "project_to_simplex",
    "true_optimum",
    "write_fixtures",
    "main",
    "BASELINE",
    "FIXTURE_DOMAINS",
    "FIXTURE_SOURCES",
    "optimum_shift",
    "size_dependent_truth",
]
