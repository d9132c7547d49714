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
from typing import Any, Mapping, Sequence

import pandas as pd

from .._threads import thread_map
from ..errors import MixlawsError
from ..fit import family as get_family
from ..fit import make_estimator
from ..progress import progress
from ..runs import WARMUP, RunsTable
from ._folds import DEFAULT_FOLDS, Fold, make_folds
from ._result import BacktestResult
from ._score import PREDICTION_COLUMNS, score_fold

__all__ = ["backtest", "DEFAULT_FAMILIES"]

DEFAULT_FAMILIES = ("nested", "nested-tied", "joint")
"""Families :func:`backtest` scores by default."""


def backtest(runs: RunsTable, families: Sequence[str] = DEFAULT_FAMILIES,
             folds: Sequence[str] = DEFAULT_FOLDS, *, truncate: float = 0.3,
             n_mixture_folds: int = 5, seed: int = 0, settings: Mapping[str, Any] | None = None,
             reuse_step: bool = True, level: float = 0.9,
             priors: Mapping[str, float] | None = None,
             fitted: Mapping[str, Any] | None = None,
             n_threads: int | None = None) -> BacktestResult:
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
    n_threads : folds fitted at once, in threads (default: one per core, ``$MIXLAWS_THREADS``
        at most, one on an accelerator; see :func:`mixlaws._threads.workers`); the result
        does not depend on it.

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
    fitted = dict(fitted or {})
    reusable = {n: reuse_step and hasattr(get_family(n).estimator, "without_runs")
                for n in families}
    prefit_warnings: dict[str, list[str]] = {}
    needs = any(f.skipped is None and f.name in ("mixtures", "largest-size") for f in fold_list)
    # the full fits the reusing folds start from, before the folds (in threads, as they are)
    prefit = [n for n in families if reusable[n] and needs and fitted.get(n) is None]
    for name, (est, caught) in zip(prefit, thread_map(
            lambda n: _fit_or_error(n, runs, est_settings), prefit, record=True, xla=True)):
        if isinstance(est, MixlawsError):
            reusable[name] = False          # each fold then fits (and reports) on its own
        else:
            fitted[name], prefit_warnings[name] = est, [str(w.message) for w in caught]
    for name in families:
        if (reusable[name] and getattr(fitted.get(name), "tie_beta", None) == "all"
                and any(f.name == "mixtures" and f.skipped is None for f in fold_list)):
            notes.append(f"{name}: mixture folds reuse the step laws fitted on the full "
                         f"table; its shared step exponent includes the held-out runs' "
                         f"checkpoints")
    jobs = [(name, fold) for name in families for fold in fold_list]
    with progress("backtest", total=len(jobs)) as bar:
        def one(job: tuple[str, Fold]) -> tuple[dict[str, Any], pd.DataFrame | None]:
            name, fold = job
            row = {"family": name, "fold": fold.name, "part": fold.part, "status": "ok",
                   "reason": None, "seconds": 0.0, "n_warnings": 0, "warning": None}
            pred = None
            if fold.skipped is not None:
                row.update(status="skipped", reason=fold.skipped)
                bar.advance()
                return row, pred
            t0 = time.perf_counter()
            try:
                est = _fold_estimator(name, fold, fitted.get(name), reusable[name], est_settings)
                pred = score_fold(name, fold, est)
            except MixlawsError as exc:
                row.update(status="failed", reason=str(exc))
            row["seconds"] = time.perf_counter() - t0
            bar.advance()
            return row, pred

        # one thread per core: the fits spend their time in compiled XLA programs, which
        # release the GIL (RedPajama's 8 fold fits: 1.5x on 2 cores); results in job order
        done = thread_map(one, jobs, n_threads=n_threads, record=True, xla=True)
    preds, status = [], []
    for (name, fold), ((row, pred), recorded) in zip(jobs, done):
        caught = [str(w.message) for w in recorded]
        if (reusable[name] and fold.name in ("mixtures", "largest-size")
                and fold.skipped is None and name in prefit_warnings):
            caught = prefit_warnings.pop(name) + caught    # the full fit's, once
        row.update(n_warnings=len(caught), warning=caught[0] if caught else None)
        status.append(row)
        if pred is not None:
            preds.append(pred)
    predictions = (pd.concat(preds, ignore_index=True) if preds
                   else pd.DataFrame(columns=list(PREDICTION_COLUMNS)))
    record = {"families": families, "folds": list(dict.fromkeys(folds)), "truncate": truncate,
              "n_mixture_folds": n_mixture_folds, "seed": seed, "reuse_step": reuse_step,
              "estimator": est_settings, "runs": runs.path}
    return BacktestResult(predictions, pd.DataFrame(status), settings=record, level=level,
                          priors=priors, notes=notes)


def _fit_or_error(name: str, runs: RunsTable, settings: Mapping[str, Any]) -> Any:
    """``make_estimator(name, **settings)`` fitted on ``runs``, or the error that stopped it."""
    try:
        return make_estimator(name, **dict(settings)).fit(runs)
    except MixlawsError as exc:
        return exc


def _fold_estimator(name: str, fold: Fold, full: Any, reusable: bool,
                    settings: Mapping[str, Any]) -> Any:
    """The estimator that predicts ``fold``'s targets: the full fit without the held-out runs
    where the family can forget runs (the ``mixtures`` parts; ``largest-size`` with per-run step
    laws), else a fit on the fold's training table."""
    per_run = getattr(full, "tie_beta", None) in ("run", "none")
    if reusable and full is not None and (fold.name == "mixtures"
                                          or (fold.name == "largest-size" and per_run)):
        # cold mixing stages: the full fit's has seen the held-out runs
        return full.without_runs(fold.held_out, warm=False)
    return make_estimator(name, **dict(settings)).fit(fold.train)
