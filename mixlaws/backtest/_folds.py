"""Backtest folds: remove information from a runs table the way a real extrapolation does.

Each fold is a :class:`Fold`: a training :class:`~mixlaws.runs.RunsTable` (a subset of the
table's rows, never modified values) and the held-out *targets* — which runs, at which
``(params, tokens)``, with their observed per-domain losses.  Fold kinds (:data:`FOLDS`):

``largest-size``
    every model size but the largest is fitted; the largest size's runs are predicted at
    their last checkpoint (needs ≥ 3 sizes).
``truncate``
    every run keeps its checkpoints with ``tokens <= f x`` its last tokens (default
    ``f = 0.3``: a 100k-step run keeps its first 30k); every run's last checkpoint is
    predicted.  A run whose checkpoints start late (Ye et al.'s RedPajama runs: 10k..30k
    steps, none below ``0.3 x 30k``) is cut instead at its ``min_checkpoints``-th checkpoint
    after warm-up, as long as that is at most :data:`MAX_TRUNCATE` of its length: the fold
    still extrapolates every run by at least ``log 2`` in tokens, instead of being skipped.
``long-runs``
    only runs trained longer than their peers are cut: a run that extends beyond the median
    end ``D_med(N)`` of the runs at its model size is cut at ``D_med(N)``, and its last
    checkpoint is predicted (e.g. Ye et al.'s RedPajama table: most runs end at 30k steps, a
    few 70M/160M runs reach 100k).  A sweep whose runs at each size end together (the
    Chinchilla shape, tokens growing with size) has none: ``truncate`` covers it.
``both``
    the largest size held out and the remaining runs truncated at ``f``; the largest size is
    predicted at its end.
``mixtures``
    k-fold leave-mixtures-out: all runs of a mixture are held out together and predicted at
    their own last checkpoint.

A truncated run left with fewer than ``min_checkpoints`` checkpoints after warm-up
(:func:`mixlaws.runs.after_warmup`, relative to the kept end, as the estimators apply it)
stays out of the fit entirely.  A fold that cannot be built is returned with ``skipped``
set to the reason, not raised.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import MixlawsError
from ..runs import WARMUP, RunsTable, after_warmup

__all__ = ["Fold", "FOLDS", "DEFAULT_FOLDS", "MAX_TRUNCATE", "make_folds", "largest_size_fold",
           "truncate_fold", "long_runs_fold", "both_fold", "mixture_folds"]

FOLDS = ("largest-size", "truncate", "long-runs", "both", "mixtures")
"""Names of the fold kinds, in the order the tables list them."""

DEFAULT_FOLDS = ("largest-size", "truncate", "long-runs", "both", "mixtures")
"""The folds :func:`mixlaws.backtest.backtest` runs by default (a fold the table cannot
build, such as ``long-runs`` when the runs of each size end together, is skipped with its
reason)."""

MIN_FOLD_SIZES = 4
"""Model sizes a table needs for the ``largest-size`` and ``both`` folds: the fit keeps the
others, and a size exponent is identified only by ≥ 3 sizes (:func:`mixlaws.fit.fit_size_stage`;
the joint law needs 3 too)."""

MAX_TRUNCATE = 0.5
"""Largest fraction of a run's length that the ``truncate`` and ``both`` folds keep when
``f x`` its length leaves too few checkpoints to fit (see the module docstring)."""

_RTOL = 1e-9


@dataclass(frozen=True, eq=False)
class Fold:
    """One backtest fold.

    Attributes
    ----------
    name : fold kind (one of :data:`FOLDS`).
    part : index of the part within its kind (k-fold ``mixtures``: 0..k-1; else 0).
    train : the rows that may be fitted (None when skipped).
    targets : one row per held-out target: ``run, params, tokens, mix:<source>...,
        loss:<domain>...`` (observed losses at that checkpoint); empty when skipped.
    held_out : runs whose rows are (partly) absent from ``train`` because of the fold.
    skipped : reason the fold could not be built, or None.
    notes : what the fold left out and why (e.g. runs too short after truncation).
    """

    name: str
    part: int
    train: RunsTable | None
    targets: pd.DataFrame
    held_out: tuple[str, ...] = ()
    skipped: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``name`` or ``name:part`` for k-fold kinds."""
        return f"{self.name}:{self.part}" if self.name == "mixtures" else self.name


def _subset(runs: RunsTable, keep: np.ndarray) -> RunsTable:
    return dataclasses.replace(runs, data=runs.data[keep].reset_index(drop=True))


def _last(data: pd.DataFrame, run_ids: Sequence[str]) -> pd.DataFrame:
    cols = [c for c in data.columns if c != "step"]
    return (data[data["run"].isin(list(run_ids))].groupby("run", sort=False).tail(1)[cols]
            .reset_index(drop=True))


def _skip(name: str, reason: str, part: int = 0) -> Fold:
    return Fold(name=name, part=part, train=None, targets=pd.DataFrame(), skipped=reason)


def _cut(runs: RunsTable, data: pd.DataFrame, cutoff: pd.Series, warmup: float,
         min_checkpoints: int) -> tuple[pd.DataFrame, list[str]]:
    """Rows of ``data`` with tokens <= the run's cutoff (NaN: uncut); runs left too short drop."""
    cut = data["run"].map(cutoff).to_numpy(float)
    tok = data["tokens"].to_numpy(float)
    keep = np.isnan(cut) | (tok <= cut * (1 + _RTOL))
    kept = data[keep]
    groups = {run: g["tokens"].to_numpy(float) for run, g in kept.groupby("run", sort=False)}
    cut_runs = [r for r in pd.unique(data["run"]) if r in cutoff.index and not np.isnan(cutoff[r])]
    short = [r for r in cut_runs
             if r not in groups or int(after_warmup(groups[r], warmup).sum()) < min_checkpoints]
    return kept[~kept["run"].isin(short)], short


def _truncated_fold(name: str, runs: RunsTable, data: pd.DataFrame, cutoff: pd.Series,
                    targets: pd.DataFrame, warmup: float, min_checkpoints: int,
                    extra: tuple[str, ...] = ()) -> Fold:
    kept, short = _cut(runs, data, cutoff, warmup, min_checkpoints)
    notes = list(extra)
    if short:
        notes.append(f"{len(short)} run(s) have fewer than {min_checkpoints} checkpoints after "
                     f"warm-up once truncated and stay out of the fit (e.g. {short[0]})")
    if kept.empty:
        return _skip(name, "no run keeps enough checkpoints after truncation; "
                           "use a larger truncation fraction")
    if targets.empty:
        return _skip(name, "truncation removes no run's last checkpoint")
    train = dataclasses.replace(runs, data=kept.reset_index(drop=True))
    held = tuple(sorted(set(cutoff.dropna().index) | set(targets["run"])))
    return Fold(name=name, part=0, train=train, targets=targets, held_out=held, notes=tuple(notes))


def largest_size_fold(runs: RunsTable) -> Fold:
    """Fit every size but the largest; predict the largest size's runs at their last checkpoint."""
    sizes = runs.sizes()
    if sizes.size < MIN_FOLD_SIZES:
        return _skip("largest-size", f"needs runs at ≥ {MIN_FOLD_SIZES} model sizes (3 to fit a "
                                     f"size law); the table has {sizes.size}")
    df = runs.data
    big = (df["params"] == sizes[-1]).to_numpy()
    held = tuple(pd.unique(df.loc[big, "run"]))
    return Fold(name="largest-size", part=0, train=_subset(runs, ~big), targets=_last(df, held),
                held_out=held)


def _cutoffs(data: pd.DataFrame, fraction: float, warmup: float,
             min_checkpoints: int) -> pd.Series:
    """Per run, where the ``truncate``/``both`` folds cut it: ``fraction x`` its last tokens,
    or, when that keeps fewer than ``min_checkpoints`` after warm-up, its first checkpoint
    that keeps them, if that lies at most :data:`MAX_TRUNCATE` of the way (else the plain
    cut, which leaves the run out of the fit)."""
    out = {}
    for run, g in data.groupby("run", sort=False):
        tok = np.sort(g["tokens"].to_numpy(float))
        cut = fraction * tok[-1]
        kept = tok[tok <= cut * (1 + _RTOL)]
        if kept.size == 0 or int(after_warmup(kept, warmup).sum()) < min_checkpoints:
            for c in tok[tok <= MAX_TRUNCATE * tok[-1] * (1 + _RTOL)]:
                k = tok[tok <= c]
                if int(after_warmup(k, warmup).sum()) >= min_checkpoints:
                    cut = float(c)
                    break
        out[run] = cut
    return pd.Series(out, dtype=float)


def truncate_fold(runs: RunsTable, fraction: float = 0.3, *, warmup: float = WARMUP,
                  min_checkpoints: int = 3) -> Fold:
    """Cut every run to ``tokens <= fraction x`` its last tokens (later, up to
    :data:`MAX_TRUNCATE`, where that leaves too few checkpoints); predict every run's end."""
    _check_fraction(fraction)
    df = runs.data
    end = df.groupby("run", sort=False)["tokens"].max()
    cutoff = _cutoffs(df, fraction, warmup, min_checkpoints)
    return _truncated_fold("truncate", runs, df, cutoff, _last(df, list(end.index)), warmup,
                           min_checkpoints)


def long_runs_fold(runs: RunsTable, *, warmup: float = WARMUP, min_checkpoints: int = 3) -> Fold:
    """Cut each run that ends beyond the median end of the runs at its model size at that
    median; predict their ends."""
    df = runs.data
    ends = df.groupby("run", sort=False)[["params", "tokens"]].max()
    median = ends.groupby("params")["tokens"].transform("median")
    long_ = median[ends["tokens"] > median * (1 + _RTOL)]
    if long_.empty:
        return _skip("long-runs", "no run extends beyond the median end of the runs at its "
                                  "model size (the runs of each size end together)")
    at = ", ".join(f"{m:.6g}" for m in sorted(set(long_.to_numpy(float))))
    note = (f"{len(long_)} run(s) ending beyond the median end of their size's runs are cut "
            f"there ({at} {runs.progress})",)
    return _truncated_fold("long-runs", runs, df, long_.astype(float),
                           _last(df, list(long_.index)), warmup, min_checkpoints, note)


def both_fold(runs: RunsTable, fraction: float = 0.3, *, warmup: float = WARMUP,
              min_checkpoints: int = 3) -> Fold:
    """Hold out the largest size and truncate the rest at ``fraction``; predict the largest size."""
    _check_fraction(fraction)
    sizes = runs.sizes()
    if sizes.size < MIN_FOLD_SIZES:
        return _skip("both", f"needs runs at ≥ {MIN_FOLD_SIZES} model sizes (3 to fit a size "
                             f"law); the table has {sizes.size}")
    df = runs.data
    big = df["params"] == sizes[-1]
    rest = df[~big]
    targets = _last(df, list(pd.unique(df.loc[big, "run"])))
    fold = _truncated_fold("both", runs, rest, _cutoffs(rest, fraction, warmup, min_checkpoints),
                           targets, warmup, min_checkpoints)
    if fold.skipped is None:
        fold = dataclasses.replace(fold, held_out=tuple(sorted(set(fold.held_out)
                                                               | set(targets["run"]))))
    return fold


def mixture_folds(runs: RunsTable, n_folds: int = 5, *, seed: int = 0) -> list[Fold]:
    """k-fold leave-mixtures-out: all runs of a mixture held out together, predicted at their end.

    Mixtures are assigned to ``min(n_folds, n_mixtures)`` folds by a seeded permutation.
    """
    if int(n_folds) < 2:
        raise MixlawsError(f"n_mixture_folds must be ≥ 2, not {n_folds}")
    mixtures, index = runs.mixtures()
    if len(mixtures) < 3:
        return [_skip("mixtures", f"needs ≥ 3 distinct mixtures; the table has {len(mixtures)}")]
    k = min(int(n_folds), len(mixtures))
    assign = np.random.default_rng(seed).permutation(len(mixtures)) % k
    run_ids = runs.runs()["run"].to_numpy()
    df = runs.data
    out = []
    for part in range(k):
        held = tuple(run_ids[assign[index] == part])
        drop = df["run"].isin(held).to_numpy()
        out.append(Fold(name="mixtures", part=part, train=_subset(runs, ~drop),
                        targets=_last(df, held), held_out=held))
    return out


def _check_fraction(fraction: float) -> None:
    if not (np.isfinite(fraction) and 0.0 < fraction < 1.0):
        raise MixlawsError(f"truncation fraction must be in (0, 1), not {fraction}; e.g. 0.3 keeps "
                           "each run's checkpoints up to 30 % of its last tokens")


def make_folds(runs: RunsTable, folds: Sequence[str] = DEFAULT_FOLDS, *, truncate: float = 0.3,
               n_mixture_folds: int = 5, seed: int = 0, warmup: float = WARMUP,
               min_checkpoints: int = 3) -> list[Fold]:
    """Build the named folds of ``runs`` (see the module docstring), in :data:`FOLDS` order.

    Raises
    ------
    MixlawsError
        An unknown fold name, a truncation fraction outside (0, 1), ``n_mixture_folds < 2``.
    """
    names = list(dict.fromkeys(folds))
    unknown = [f for f in names if f not in FOLDS]
    if unknown or not names:
        raise MixlawsError(f"unknown backtest fold {unknown[0]!r}; known: {', '.join(FOLDS)}"
                           if unknown else f"no backtest fold given; known: {', '.join(FOLDS)}",
                           fold=unknown[0] if unknown else None)
    opts = {"warmup": warmup, "min_checkpoints": min_checkpoints}
    out: list[Fold] = []
    for name in FOLDS:
        if name not in names:
            continue
        if name == "largest-size":
            out.append(largest_size_fold(runs))
        elif name == "truncate":
            out.append(truncate_fold(runs, truncate, **opts))
        elif name == "long-runs":
            out.append(long_runs_fold(runs, **opts))
        elif name == "both":
            out.append(both_fold(runs, truncate, **opts))
        else:
            out.extend(mixture_folds(runs, n_mixture_folds, seed=seed))
    return out
