"""The warm-up rule, defined once: which checkpoints of a run the laws are fitted to.

Checkpoints with training progress below ``warmup`` times the run's last
progress are dropped (Choshen et al. 2025, "A Hitchhiker's Guide to Scaling
Law Estimation": with the first ~10 % of a run kept, extrapolation errors
exceed 15 %).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["WARMUP", "after_warmup", "drop_warmup"]

WARMUP = 0.1
"""Default fraction of a run's last tokens below which checkpoints are warm-up."""


def after_warmup(tokens: np.ndarray, warmup: float = WARMUP, last: float | None = None) -> np.ndarray:
    """Boolean mask of the checkpoints of one run (``tokens`` ascending) kept after warm-up.

    ``last`` is the run's last progress (default ``tokens[-1]``).
    """
    tokens = np.asarray(tokens, float)
    end = tokens[-1] if last is None else float(last)
    return tokens >= warmup * end


def drop_warmup(data: pd.DataFrame, warmup: float = WARMUP) -> pd.DataFrame:
    """Rows of a runs table (column ``run``, ``tokens``) kept after each run's warm-up."""
    last = data.groupby("run", sort=False)["tokens"].transform("max")
    return data[data["tokens"] >= warmup * last]
