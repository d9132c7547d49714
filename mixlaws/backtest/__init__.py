"""Backtests on the user's own sweep and the discrepancy model they calibrate.

:func:`backtest` removes information from a runs table the way the real extrapolation
removes it (:func:`make_folds`: largest size out, late checkpoints out, both, mixtures
out), scores every law family on what was removed (:func:`extrapolation_distance` says how
far each held-out target lies from the fitted data) and returns a :class:`BacktestResult`,
whose :meth:`~BacktestResult.discrepancy` is a :class:`Discrepancy`: a stated model of the
family's error ``log(L_obs / L_pred) ~ N(b u, s0^2 + s1^2 u^2)`` as a function
of the distance ``u``, which carries the errors measured at small distances to the target's.
"""
from __future__ import annotations
from ._folds import Fold, FOLDS, DEFAULT_FOLDS, make_folds, largest_size_fold, truncate_fold, long_runs_fold, both_fold, mixture_folds
from ._score import extrapolation_distance, score_fold, PREDICTION_COLUMNS
from ._discrepancy import Discrepancy, distance
from ._result import BacktestResult, TABLE_COLUMNS
from ._run import backtest, DEFAULT_FAMILIES

__all__ = [
    "backtest",
    "BacktestResult",
    "Discrepancy",
    "distance",
    "extrapolation_distance",
    "score_fold",
    "Fold",
    "FOLDS",
    "DEFAULT_FOLDS",
    "DEFAULT_FAMILIES",
    "PREDICTION_COLUMNS",
    "TABLE_COLUMNS",
    "make_folds",
    "largest_size_fold",
    "truncate_fold",
    "long_runs_fold",
    "both_fold",
    "mixture_folds",
]
