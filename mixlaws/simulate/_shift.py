"""Truths whose best mixture moves with model size: :func:`size_dependent_truth`.

The simulator's law (see :mod:`mixlaws.simulate`) has a mixture-dependent size term,

.. math::

    L_d(r, N, D) = c_d + k_d e^{t_d \\cdot r} + A_d e^{s\\, u_d \\cdot r} N^{-\\alpha} + B_d D^{-\\beta},

so with ``s > 0`` the term that dominates at small ``N`` (``u``) and the one that dominates at
large ``N`` (``t``) pull towards different mixtures: the best mixture at 20M is not the best at
1B.  :func:`size_dependent_truth` draws such truths and keeps only those whose optimum moves by
at least ``min_shift`` (L1 distance) between the smallest proxy scale and the target, so that a
benchmark on them cannot be won by reading the optimum off the small runs.  It adds no option to
:func:`~mixlaws.simulate.random_truth` and changes none of its outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import MixlawsError
from ._sweep import true_optimum
from ._truth import SweepTruth, random_truth

__all__ = ["optimum_shift", "size_dependent_truth"]


def optimum_shift(truth: SweepTruth, small: tuple[float, float], target: tuple[float, float],
                  *, weights=None) -> float:
    """L1 distance ``sum_j |r*_j(small) - r*_j(target)|`` between the true optima at two scales.

    ``small`` and ``target`` are ``(params, tokens)`` pairs; 0 means the same optimum, 2 disjoint.
    """
    a, _ = true_optimum(truth, *small, weights=weights)
    b, _ = true_optimum(truth, *target, weights=weights)
    return float(np.abs(a - b).sum())


def size_dependent_truth(sources: Sequence[str], domains: Sequence[str], *, seed: int = 0,
                         small: tuple[float, float] = (2e7, 4e8),
                         target: tuple[float, float] = (1e9, 2e10), mixture_scaling: float = 2.0,
                         min_shift: float = 0.3, noise: float = 0.003, run_noise: float = 0.002,
                         max_tries: int = 100) -> SweepTruth:
    """A :func:`random_truth` with ``mixture_scaling`` whose optimum moves with model size.

    Draws ``random_truth(sources, domains, seed=(seed, k), mixture_scaling=...)`` for
    ``k = 0, 1, ...`` and returns the first whose :func:`optimum_shift` between ``small`` and
    ``target`` is at least ``min_shift`` (deterministic in ``seed``).

    Raises
    ------
    MixlawsError
        When no draw in ``max_tries`` moves the optimum far enough (lower ``min_shift`` or raise
        ``mixture_scaling``).
    """
    if not mixture_scaling > 0:
        raise MixlawsError(f"size_dependent_truth needs mixture_scaling > 0, got {mixture_scaling}")
    best = 0.0
    for k in range(max_tries):
        truth = random_truth(sources, domains, seed=[int(seed), k], noise=noise,
                             run_noise=run_noise, mixture_scaling=mixture_scaling)
        shift = optimum_shift(truth, small, target)
        if shift >= min_shift:
            return truth
        best = max(best, shift)
    raise MixlawsError(f"no truth in {max_tries} draws moves the optimum by ≥ {min_shift} between "
                       f"{small} and {target} (largest {best:.3g}); lower min_shift or raise "
                       "mixture_scaling")
