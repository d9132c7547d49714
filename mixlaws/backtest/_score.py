"""Scoring law families on backtest folds: per-target predictions, errors and distances.

For every family (a name of :data:`mixlaws.fit.FAMILIES`) and fold, the estimator
``make_estimator(family, **settings)`` is fitted on the fold's training table and predicts
every target; per target we record

* ``observed``, ``predicted``: aggregate losses (the estimator's ``weights_``; the plain mean
  of the domains with implicit aggregation);
* ``rel_error = predicted / observed - 1`` and ``log_ratio = log(observed / predicted)``
  (the quantity the discrepancy model describes);
* the extrapolation distances of :func:`extrapolation_distance`, ``dN`` and ``dD`` (for a
  target whose run is in the training table, cut by the fold, ``dD`` is measured from that
  run's own last fitted checkpoint: the distance its curve was extrapolated), and
  ``hull``: the target mixture's total-variation distance to the hull of the fold's training
  mixtures (:func:`mixlaws.fit.mixture_extrapolation`; 0 for a mixture that was fitted).

Per (family, fold) the table row holds ``n``, the mean and max ``|rel_error|``, the bias (mean
signed ``rel_error``) and the RMSE of ``log_ratio``.  A family that raises a
:class:`~mixlaws.errors.MixlawsError` on a fold gets a row with the reason instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import MixlawsError
from ..fit import mixture_extrapolation
from ..runs import RunsTable
from ._folds import Fold

__all__ = ["extrapolation_distance", "fitted_scales", "scale_distance", "score_fold", "PREDICTION_COLUMNS"]

PREDICTION_COLUMNS = ("family", "fold", "part", "run", "params", "tokens", "observed",
                      "predicted", "rel_error", "log_ratio", "dN", "dD", "hull")
"""Columns of the long predictions table, in order."""


def extrapolation_distance(train: RunsTable, params: Any, tokens: Any) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    """Distances in natural-log units of targets ``(params, tokens)`` from a training table.

    .. math::

        dN = \\log(N / N_{max}), \\qquad dD = \\log(D / D_{ref}(N))

    where ``N_max`` is the largest fitted model size and ``D_ref(N)`` the largest fitted
    tokens among the runs at the fitted size nearest to ``N`` in ``log N`` (for a target
    larger than every fitted size: the largest fitted size, where the nested pipeline's
    step laws are extrapolated).  Positive values are extrapolation, negative interpolation.
    """
    return scale_distance(*fitted_scales(train), params, tokens)


def fitted_scales(train: RunsTable) -> tuple[np.ndarray, np.ndarray]:
    """The fitted model sizes (ascending) and the largest fitted tokens at each."""
    df = train.data
    sizes = np.unique(df["params"].to_numpy(float))
    dmax = df.groupby("params")["tokens"].max().reindex(sizes).to_numpy(float)
    return sizes, dmax


def scale_distance(sizes: Any, dmax: Any, params: Any, tokens: Any) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """:func:`extrapolation_distance` from :func:`fitted_scales` ``(sizes, dmax)``."""
    sizes, dmax = np.asarray(sizes, float), np.asarray(dmax, float)
    N = np.atleast_1d(np.asarray(params, float))
    D = np.atleast_1d(np.asarray(tokens, float))
    nearest = np.argmin(np.abs(np.log(N)[:, None] - np.log(sizes)[None, :])
                        - 1e-12 * np.arange(sizes.size)[None, :], axis=1)
    return np.log(N / sizes[-1]), np.log(D / dmax[nearest])


def _aggregate(estimator: Any, losses: np.ndarray) -> np.ndarray:
    w = getattr(estimator, "weights_", None)
    return losses.mean(1) if w is None else losses @ np.asarray(w, float)


def score_fold(family: str, fold: Fold, estimator: Any) -> pd.DataFrame:
    """Predictions of a *fitted* ``estimator`` for the targets of ``fold`` (long table rows)."""
    t = fold.targets
    train = fold.train
    assert train is not None
    mix_cols = train.mix_columns
    loss_cols = train.loss_columns
    fitted = train.data.groupby("run", sort=False)[mix_cols].first().to_numpy(float)
    run_end = train.data.groupby("run", sort=False)["tokens"].max()
    rows = []
    for (N, D), g in t.groupby(["params", "tokens"], sort=True):
        pred = estimator.predict(g[mix_cols].to_numpy(float), float(N), float(D))
        obs = _aggregate(estimator, g[loss_cols].to_numpy(float))
        p = np.asarray(pred["loss"], float)
        if not np.all(np.isfinite(p) & (p > 0)):
            raise MixlawsError(f"{family} predicts a non-finite or non-positive loss at "
                               f"params={N:.6g}, tokens={D:.6g}")
        dN, dD = extrapolation_distance(train, np.full(len(g), N), np.full(len(g), D))
        own = g["run"].map(run_end).to_numpy(float)     # NaN: the run is not in the fit
        dD = np.where(np.isnan(own), dD, np.log(D / own))
        hull = [e.hull_distance for e in
                mixture_extrapolation(fitted, g[mix_cols].to_numpy(float), train.sources)]
        rows.append(pd.DataFrame({
            "family": family, "fold": fold.name, "part": fold.part, "run": g["run"].to_numpy(),
            "params": float(N), "tokens": float(D), "observed": obs, "predicted": p,
            "rel_error": p / obs - 1.0, "log_ratio": np.log(obs / p), "dN": dN, "dD": dD,
            "hull": hull}))
    return pd.concat(rows, ignore_index=True)[list(PREDICTION_COLUMNS)]

