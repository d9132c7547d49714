"""Out-of-family truths: a learning-rate schedule that bends every run's loss curve near its end.

With a cosine schedule the loss drops faster as the learning rate anneals (Tissue et al.
2024): a run's loss is not one power law in ``D`` but bends down near the end of *its own*
schedule.  :func:`anneal_sweep` imposes this on a simulated sweep: for run ``k`` with last
tokens ``T_k`` and checkpoint progress ``phi = D / T_k``,

.. math::

    L'_d = L_d \\, (1 - a\\, h(\\phi)), \\qquad h(\\phi) = \\left(\\frac{1 - \\cos \\pi\\phi}{2}\\right)^2,

so ``h(0) = 0``, ``h(1) = 1``: every run ends ``a`` (relative) below the power law through its
early checkpoints, and checkpoints early in a run barely move.  None of the registered law
families contains this curve; it is what backtests and the discrepancy model are validated on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import MixlawsError

__all__ = ["anneal_sweep", "anneal_factor"]


def anneal_factor(progress: np.ndarray, amplitude: float) -> np.ndarray:
    """``1 - a h(phi)`` with ``h(phi) = ((1 - cos(pi phi)) / 2)^2`` for progress ``phi`` in [0, 1]."""
    phi = np.clip(np.asarray(progress, float), 0.0, 1.0)
    return 1.0 - amplitude * ((1.0 - np.cos(np.pi * phi)) / 2.0) ** 2


def anneal_sweep(frame: pd.DataFrame, amplitude: float) -> pd.DataFrame:
    """A copy of a sweep (``simulate_sweep`` layout) whose ``loss:`` columns bend near each run's end.

    ``amplitude`` ``a`` in [0, 0.5): the relative drop at a run's last checkpoint.  The input
    frame is not modified.
    """
    if not (np.isfinite(amplitude) and 0.0 <= amplitude < 0.5):
        raise MixlawsError(f"anneal amplitude must be in [0, 0.5), not {amplitude}")
    out = frame.copy()
    last = out.groupby("run", sort=False)["tokens"].transform("max").to_numpy(float)
    f = anneal_factor(out["tokens"].to_numpy(float) / last, amplitude)
    cols = [c for c in out.columns if c.startswith("loss:")]
    out[cols] = out[cols].to_numpy(float) * f[:, None]
    return out
