"""Cross-validation of the nested laws on held-out runs.

* :func:`holdout_largest_size` fits on every size but the largest and
  predicts the largest size's runs at their last checkpoint — the
  extrapolation the tool exists for, checked where the answer is known.
* :func:`leave_mixtures_out` holds out whole mixtures (all their runs) in
  ``k`` folds and predicts each held-out run at its own size and last checkpoint.

Both return a :class:`pandas.DataFrame` with one row per held-out run:
``run, params, tokens, observed, predicted, rel_error`` (aggregate loss, with
the model's aggregation) and ``observed:<domain>`` / ``predicted:<domain>``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import pandas as pd

from ._nested import NestedMixingLaw
from ..runs import RunsTable

__all__ = ["holdout_largest_size", "leave_mixtures_out", "summarise_errors"]


def _subset(runs: RunsTable, keep: np.ndarray) -> RunsTable:
    return dataclasses.replace(runs, data=runs.data[keep].reset_index(drop=True))


def _predict_runs(model: NestedMixingLaw, runs: RunsTable, run_ids: list[str]) -> pd.DataFrame:
    df = runs.data
    mix_cols = [f"mix:{s}" for s in runs.sources]
    loss_cols = [f"loss:{d}" for d in runs.domains]
    last = df[df["run"].isin(run_ids)].groupby("run", sort=False).tail(1)
    rows = []
    for (N, D), g in last.groupby(["params", "tokens"], sort=False):
        pred = model.predict(g[mix_cols].to_numpy(float), N, D)
        obs = g[loss_cols].to_numpy(float)
        w = model.weights_ if model.weights_ is not None else np.full(obs.shape[1], 1 / obs.shape[1])
        for i, run in enumerate(g["run"]):
            row: dict[str, Any] = {"run": run, "params": N, "tokens": D,
                                   "observed": float(obs[i] @ w),
                                   "predicted": float(pred["loss"][i])}
            row.update({f"observed:{d}": float(v) for d, v in zip(runs.domains, obs[i])})
            row.update({f"predicted:{d}": float(v) for d, v in zip(runs.domains, pred["domains"][i])})
            rows.append(row)
    out = pd.DataFrame(rows)
    out["rel_error"] = out["predicted"] / out["observed"] - 1.0
    return out


def holdout_largest_size(runs: RunsTable, make_model: Callable[[], NestedMixingLaw]
                         ) -> tuple[NestedMixingLaw, pd.DataFrame]:
    """Fit on all sizes but the largest; predict the largest size's runs.

    Parameters
    ----------
    runs : the full runs table.
    make_model : returns a fresh, unfitted :class:`NestedMixingLaw`.

    Returns
    -------
    (fitted model, per-run predictions)
    """
    sizes = np.unique(runs.data["params"])
    if sizes.size < 3:
        raise ValueError("holding out the largest size needs ≥ 3 model sizes")
    largest = sizes[-1]
    train = _subset(runs, (runs.data["params"] < largest).to_numpy())
    model = make_model().fit(train)
    held = runs.data.loc[runs.data["params"] == largest, "run"].unique().tolist()
    return model, _predict_runs(model, runs, held)


def leave_mixtures_out(runs: RunsTable, make_model: Callable[[], NestedMixingLaw], *,
                       n_folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """k-fold cross-validation over mixtures (all runs of a mixture held out together)."""
    mix_cols = [f"mix:{s}" for s in runs.sources]
    first = runs.data.groupby("run", sort=False).head(1)
    _, mix_id = np.unique(first[mix_cols].to_numpy(float), axis=0, return_inverse=True)
    mix_id = np.ravel(mix_id)
    run_mix = dict(zip(first["run"], mix_id))
    n_mix = int(mix_id.max()) + 1
    folds = np.random.default_rng(seed).permutation(n_mix) % n_folds
    parts = []
    for k in range(n_folds):
        held_mix = set(np.flatnonzero(folds == k).tolist())
        held_runs = [r for r, m in run_mix.items() if m in held_mix]
        keep = ~runs.data["run"].isin(held_runs).to_numpy()
        model = make_model().fit(_subset(runs, keep))
        parts.append(_predict_runs(model, runs, held_runs).assign(fold=k))
    return pd.concat(parts, ignore_index=True)


def summarise_errors(pred: pd.DataFrame) -> dict[str, float]:
    """Mean and max absolute relative error of the aggregate, and their count."""
    e = np.abs(pred["rel_error"].to_numpy())
    return {"n": int(e.size), "mean_abs_rel_error": float(e.mean()),
            "max_abs_rel_error": float(e.max())}
