"""The backtest entry point: every family on every fold, scored, in one :class:`BacktestResult`.

Cost: each (family, fold) is one fit on the fold's training table, except where a fold
holds out whole runs and leaves the others untouched -- the k ``mixtures`` parts and, for
per-run step laws, ``largest-size`` -- in families whose estimator offers ``without_runs``
(the nested families): their step laws are fitted once on the full table and each such fold
forgets its held-out runs, so only the size and mixing stages are refitted, from their own
starts (``without_runs(warm=False)``): started from the full fit's mixing stage, which had seen the
held-out runs, the leave-mixtures-out predictions moved by up to 0.43 % (RedPajama) and 0.29 % (Ye
et al.'s 5-group table), and their mean error was 2-4 % (relative) smaller. For ``nested``
(``tie_beta="run"``) this equals refitting (each run's step law depends on its own
checkpoints only); for ``nested-tied`` the shared step exponent still includes the held-out
runs' checkpoints (one number fitted to every run), which the result's notes state for the
``mixtures`` parts, and ``largest-size`` is refitted (the held-out size would inform the
exponent that extrapolates to it).  Pass ``reuse_step=False`` to refit every part.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Mapping, Sequence

import pandas as pd

from ..errors import MixlawsError
from ..fit import family as get_family
from ..progress import progress
from ..runs import WARMUP, RunsTable
from ._folds import DEFAULT_FOLDS, make_folds
from ._result import BacktestResult
from ._score import PREDICTION_COLUMNS, fit_family, score_fold

__all__ = ["backtest", "DEFAULT_FAMILIES"]

DEFAULT_FAMILIES = ("nested", "nested-tied", "joint")
"""Families :func:`backtest` scores by default."""


def backtest(runs: RunsTable, families: Sequence[str] = DEFAULT_FAMILIES,
             folds: Sequence[str] = DEFAULT_FOLDS, *, truncate: float = 0.3,
             n_mixture_folds: int = 5, seed: int = 0, settings: Mapping[str, Any] | None = None,
             reuse_step: bool = True, level: float = 0.9,
             priors: Mapping[str, float] | None = None,
             fitted: Mapping[str, Any] | None = None) -> BacktestResult:
    """Backtest law families on a runs table.

    Parameters
    ----------
    runs : the user's sweep.
    families : names of :data:`mixlaws.fit.FAMILIES`.
    folds : fold kinds of :data:`mixlaws.backtest.FOLDS` (see :func:`make_folds`).
    truncate : fraction ``f`` of the ``truncate`` and ``both`` folds.
    n_mixture_folds : ``k`` of the leave-mixtures-out folds.
    seed : assignment of mixtures to folds, and the estimators' ``seed`` unless
        ``settings`` gives one.
    settings : estimator settings for every family (e.g. ``val_weights``, ``warmup``).
    reuse_step : refit only the size and mixing stages on ``mixtures`` parts where the
        family allows (see the module docstring).
    level : interval level of the leave-one-fold-out coverage in the table.
    priors : :class:`~mixlaws.backtest.Discrepancy` prior settings.
    fitted : ``{family: estimator}`` already fitted on the whole of ``runs`` with ``settings``
        (the ``mixtures`` parts reuse them instead of refitting).

    Returns
    -------
    BacktestResult

    Raises
    ------
    MixlawsError
        Unknown family or fold, bad truncation fraction, or no fold left to score.
    """
    families = list(dict.fromkeys(families))
    if not families:
        raise MixlawsError("no law family given to backtest")
    for name in families:
        get_family(name)  # unknown names raise, listing the known ones
    if not 0.0 < level < 1.0:
        raise MixlawsError(f"level must be in (0, 1), not {level}")
    est_settings = {"seed": seed, **dict(settings or {})}
    fold_list = make_folds(runs, folds, truncate=truncate, n_mixture_folds=n_mixture_folds,
                           seed=seed, warmup=float(est_settings.get("warmup", WARMUP)),
                           min_checkpoints=int(est_settings.get("min_checkpoints", 3)))
    usable = [f for f in fold_list if f.skipped is None]
    if not usable:
        reasons = "; ".join(f"{f.label}: {f.skipped}" for f in fold_list)
        raise MixlawsError(f"{runs.path}: no backtest fold can be built ({reasons})")
    notes = [f"{f.label}: {n}" for f in fold_list for n in f.notes]
    preds, status = [], []
    with progress("backtest", total=len(families) * len(fold_list)) as bar:
        for name in families:
            full: Any = (fitted or {}).get(name)
            noted = False
            reusable = hasattr(get_family(name).estimator, "without_runs")
            for fold in fold_list:
                row = {"family": name, "fold": fold.name, "part": fold.part, "status": "ok",
                       "reason": None, "seconds": 0.0, "n_warnings": 0, "warning": None}
                if fold.skipped is not None:
                    row.update(status="skipped", reason=fold.skipped)
                    status.append(row)
                    bar.advance()
                    continue
                t0 = time.perf_counter()
                caught: list[str] = []
                try:
                    reuse = reuse_step and reusable and fold.name in ("mixtures", "largest-size")
                    if reuse and full is None:
                        full, caught = fit_family(name, runs, est_settings)
                    per_run = getattr(full, "tie_beta", None) in ("run", "none")
                    if reuse and (fold.name == "mixtures" or per_run):
                        if (not noted and fold.name == "mixtures"
                                and getattr(full, "tie_beta", None) == "all"):
                            noted = True
                            notes.append(f"{name}: mixture folds reuse the step laws fitted on "
                                         f"the full table; its shared step exponent includes "
                                         f"the held-out runs' checkpoints")
                        # cold mixing stages: the full fit's has seen the held-out runs
                        est = full.without_runs(fold.held_out, warm=False)
                    else:
                        est, caught = fit_family(name, fold.train, est_settings)
                    with warnings.catch_warnings(record=True) as more:
                        warnings.simplefilter("always")
                        preds.append(score_fold(name, fold, est))
                    caught = caught + [str(w.message) for w in more]
                except MixlawsError as exc:
                    row.update(status="failed", reason=str(exc))
                row.update(seconds=time.perf_counter() - t0, n_warnings=len(caught),
                           warning=caught[0] if caught else None)
                status.append(row)
                bar.advance()
    predictions = (pd.concat(preds, ignore_index=True) if preds
                   else pd.DataFrame(columns=list(PREDICTION_COLUMNS)))
    record = {"families": families, "folds": list(dict.fromkeys(folds)), "truncate": truncate,
              "n_mixture_folds": n_mixture_folds, "seed": seed, "reuse_step": reuse_step,
              "estimator": est_settings, "runs": runs.path}
    return BacktestResult(predictions, pd.DataFrame(status), settings=record, level=level,
                          priors=priors, notes=notes)
