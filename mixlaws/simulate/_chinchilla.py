"""Final-loss tables shaped like Chinchilla's, drawn from a known ``L(N, D)``.

Epoch AI's refit (Besiroglu et al. 2024, "Chinchilla Scaling: A replication
attempt") of Hoffmann et al. (2022)'s 240 published (N, D, loss) points:

.. math:: L(N, D) = E + A N^{-\\alpha} + B D^{-\\beta},
          \\quad E = 1.817,\\ A = 482,\\ B = 2085,\\ \\alpha = 0.348,\\ \\beta = 0.366

(:data:`CHINCHILLA`).  We do not have those 240 points; :func:`chinchilla_table`
simulates a table of the same shape (IsoFLOP profiles, N from 44M to 16B, D from
~5e9 to ~5e11, one final checkpoint per run, one training source) with
multiplicative noise, in the runs-table layout, so that fits can be checked
against the generating law.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["CHINCHILLA", "chinchilla_loss", "chinchilla_table"]

CHINCHILLA = {"E": 1.817, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
"""Besiroglu et al. (2024)'s refit of Chinchilla's law (their Table 1)."""


def chinchilla_loss(N: np.ndarray, D: np.ndarray, law: dict[str, float] = CHINCHILLA) -> np.ndarray:
    """``E + A N^-alpha + B D^-beta`` for the parameters ``law`` (default :data:`CHINCHILLA`)."""
    N, D = np.asarray(N, float), np.asarray(D, float)
    return law["E"] + law["A"] * N ** -law["alpha"] + law["B"] * D ** -law["beta"]


def chinchilla_table(n_points: int = 240, *, noise: float = 0.01, n_budgets: int = 8,
                     n_min: float = 44e6, n_max: float = 16e9, d_min: float = 5e9,
                     d_max: float = 5e11, law: dict[str, float] = CHINCHILLA,
                     source: str = "web", domain: str = "web", seed: int = 0) -> pd.DataFrame:
    """A final-loss-only runs table from ``law`` on IsoFLOP profiles.

    ``n_budgets`` compute budgets ``C = 6 N D`` log-spaced so that each profile meets the
    box ``[n_min, n_max] x [d_min, d_max]``; on each, ``n_points / n_budgets`` model sizes
    log-uniformly spaced over the part of the profile inside the box, ``D = C / (6 N)``.
    Losses are ``L(N, D) exp(noise z)``, ``z ~ N(0, 1)``.  Columns ``run, params, tokens,
    mix:<source>`` (= 1) ``, loss:<domain>``; one row per run.
    """
    rng = np.random.default_rng([seed, 0xC41])
    per = int(np.ceil(n_points / n_budgets))
    budgets = np.geomspace(6 * n_min * d_min * 3, 6 * n_max * d_max / 3, n_budgets)
    N, D = [], []
    for C in budgets:
        lo = max(n_min, C / (6 * d_max))
        hi = min(n_max, C / (6 * d_min))
        n = np.geomspace(lo, hi, per)
        N.append(n)
        D.append(C / (6 * n))
    N, D = np.concatenate(N)[:n_points], np.concatenate(D)[:n_points]
    y = chinchilla_loss(N, D, law) * np.exp(noise * rng.standard_normal(N.size))
    return pd.DataFrame({"run": [f"run-{i:03d}" for i in range(N.size)],
                         "params": np.rint(N), "tokens": np.rint(D),
                         f"mix:{source}": 1.0, f"loss:{domain}": y})
