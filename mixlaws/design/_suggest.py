"""Which small runs to train next: :func:`suggest_runs`.

Given a runs table, a target scale ``(N*, D*)`` and a compute budget, propose up to ``batch``
runs (new mixtures, existing mixtures at new sizes, continuations of existing runs) whose total
cost ``sum 6 N (D - D_0)`` stays within the budget and which are expected to reduce most the
regret of the mixture that would be chosen at the target, per FLOP
(:mod:`mixlaws.design._criterion`), under a perturbed-observation ensemble of refits of the
chosen law families (:mod:`mixlaws.design._ensemble`).

A table from which the target cannot be predicted yet (one run, one size, fewer mixtures than
the mixing law has parameters) gets a design rule instead of an error: space-filling mixtures at
the smallest size until the mixing law over ``M`` sources is identified (``M + 2`` mixtures),
then one trained mixture at each trainable size the table lacks until it has 3 (a size
exponent is identified only by runs at ≥ 3 sizes: :func:`mixlaws.fit.fit_size_stage`), then
a second size for the mixtures that have one, so that their (nested) size laws follow it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ConstraintError, InsufficientDataError, MixlawsError, ScaleError
from ..fit import NestedMixingLaw, family
from ..optimize import Constraints
from ..runs import RunsTable
from ..simulate import size_label
from ._candidates import (Candidate, ProposedRun, build_candidates, farthest_points,
                          feasible_mask, mixture_cloud, pool_candidates, run_flops,
                          summarise_table, tidy_mixtures)
from ._criterion import Fantasies, greedy_batch
from ._ensemble import Ensemble, fit_ensemble

__all__ = ["Suggestion", "suggest_runs", "PROPOSAL_COLUMNS"]

PROPOSAL_COLUMNS = ("params", "tokens", "flops", "value", "reason", "kind", "mixture",
                    "start_tokens")
"""Columns of the proposals table besides ``mix:<source>`` (which follow ``tokens``)."""


@dataclass(frozen=True, eq=False)
class Suggestion:
    """Proposed runs and what they are expected to do to the regret at the target.

    Attributes
    ----------
    sources : source names (the ``mix:`` columns of :attr:`proposals`).
    proposals : one row per run: ``params, tokens, mix:<source>..., flops, value, reason, kind,
        mixture, start_tokens``; ``value`` is the expected regret reduction per FLOP (nats/FLOP;
        0 under the design rule).
    regret_before, regret_after : expected regret (nats) of the target optimum now and after the
        proposed runs (fantasised); None when the target cannot be predicted yet.
    spread_before, spread_after : posterior mean L1 distance of the optimum from its mean.
    path : per pick, ``(cumulative FLOPs, expected regret, spread)``.
    budget, target, laws, noise, notes : the request and what the planner assumed.
    """

    sources: tuple[str, ...]
    proposals: pd.DataFrame
    regret_before: float | None
    regret_after: float | None
    spread_before: float | None
    spread_after: float | None
    path: tuple[tuple[float, float, float], ...]
    budget: float
    target: tuple[float, float]
    laws: tuple[str, ...]
    noise: float | None
    criterion: str
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (no NaN): proposals as records plus the regret before and after."""
        num = lambda x: None if x is None or not math.isfinite(float(x)) else float(x)  # noqa: E731
        rows = []
        for rec in self.proposals.to_dict("records"):
            rows.append({"params": float(rec["params"]), "tokens": float(rec["tokens"]),
                         "mixture": {s: float(rec[f"mix:{s}"]) for s in self.sources},
                         "flops": float(rec["flops"]), "value": float(rec["value"]),
                         "reason": rec["reason"], "kind": rec["kind"], "label": rec["mixture"],
                         "start_tokens": float(rec["start_tokens"])})
        return {"kind": "mixlaws.suggestion", "target": {"params": self.target[0],
                                                          "tokens": self.target[1]},
                "budget": self.budget, "flops": float(self.proposals["flops"].sum()),
                "criterion": self.criterion, "laws": list(self.laws), "noise": num(self.noise),
                "regret_before": num(self.regret_before), "regret_after": num(self.regret_after),
                "spread_before": num(self.spread_before), "spread_after": num(self.spread_after),
                "proposals": rows, "notes": list(self.notes)}


def _top(sources: Sequence[str], r: np.ndarray, k: int = 3) -> str:
    order = np.argsort(-r)[:k]
    return ", ".join(f"{sources[j]} {r[j]:.2f}" for j in order if r[j] > 0.005)


def _check(summary, params, tokens, budget, sizes, ratio, batch) -> None:
    for name, v in (("--params", params), ("--tokens", tokens), ("--budget", budget)):
        if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v > 0):
            raise ScaleError(f"{name} must be a positive number, got {v!r}")
    if len(sizes) == 0 or np.any(~np.isfinite(sizes)) or np.any(sizes <= 0):
        raise ScaleError(f"--sizes must be positive model sizes (e.g. 20M,50M,100M); got "
                         f"{[float(s) for s in sizes]}")
    if not (math.isfinite(ratio) and ratio > 0):
        raise ScaleError(f"--tokens-per-param must be a positive number, got {ratio!r}")
    if not (isinstance(batch, (int, np.integer)) and batch >= 1):
        raise MixlawsError(f"--batch must be a positive integer, got {batch!r}")
    cheapest = min(run_flops(n, np.rint(ratio * n)) for n in sizes)
    ends = [run_flops(n, np.rint(ratio * n), d) for n, d in zip(summary.run_params, summary.run_tokens)
            if np.rint(ratio * n) > d * (1 + 1e-3)]
    cheapest = min([cheapest, *ends])
    if budget < cheapest:
        n = float(np.min(sizes))
        raise ScaleError(f"--budget {budget:.4g} FLOPs is below the cheapest run ({cheapest:.4g} "
                         f"FLOPs = 6 x {n:.4g} params x {np.rint(ratio * n):.4g} tokens); raise "
                         f"--budget, or add a smaller size to --sizes", budget=budget)


def _rows(sources, picks: list[tuple[ProposedRun, float, str, str, str]]) -> pd.DataFrame:
    cols: dict[str, list[Any]] = {"params": [], "tokens": []}
    cols.update({f"mix:{s}": [] for s in sources})
    cols.update({k: [] for k in PROPOSAL_COLUMNS[2:]})
    for run, value, reason, kind, label in picks:
        cols["params"].append(float(run.params))
        cols["tokens"].append(float(run.tokens))
        for j, s in enumerate(sources):
            cols[f"mix:{s}"].append(float(run.mixture[j]))
        cols["flops"].append(run.flops)
        cols["value"].append(float(value))
        cols["reason"].append(reason)
        cols["kind"].append(kind)
        cols["mixture"].append(label)
        cols["start_tokens"].append(float(run.start_tokens))
    return pd.DataFrame(cols)


def _cold_start(summary, sizes, ratio, budget, batch, C, tokens, rng, params,
                n_sizes: int = 3) -> tuple[list, list[str]]:
    """Design rule when the target cannot be predicted: space-filling, then second sizes."""
    M = len(summary.sources)
    need = M + 2
    picks: list[tuple[ProposedRun, float, str, str, str]] = []
    notes = ["the target cannot be predicted from this table yet: proposing by design rule "
             "(space-filling mixtures, then second sizes), not by the criterion"]
    left, n_left = float(budget), int(batch)
    tok = lambda n: float(np.rint(ratio * n))  # noqa: E731

    def add(run: ProposedRun, reason: str, kind: str, label: str) -> bool:
        nonlocal left, n_left
        if n_left < 1 or run.flops > left * (1 + 1e-12):
            return False
        picks.append((run, 0.0, reason, kind, label))
        left -= run.flops
        n_left -= 1
        return True

    feas = feasible_mask(C, tokens, summary.mixtures)
    existing = summary.mixtures
    cloud = mixture_cloud(C, tokens, 2000, rng)
    s0 = float(sizes[0])
    # mixtures and the sizes they have (existing ones first, in table order)
    mixes: list[tuple[np.ndarray, str, list[float], str]] = [
        (summary.mixtures[m], summary.labels[m], list(summary.sizes_of(m)), "size")
        for m in range(len(existing)) if feas[m]]
    n_new = 0
    if len(existing) < need:
        for i in farthest_points(cloud, existing, need - len(existing)):
            n_new += 1
            label = f"new-{n_new}"
            if add(ProposedRun(cloud[i], s0, tok(s0)),
                   f"space-filling mixture {label} ({_top(summary.sources, cloud[i])}) at "
                   f"{size_label(s0)}: the mixing law over {M} sources needs ≥ {need} mixtures, "
                   f"the table has {len(existing)}", "new", label):
                mixes.append((cloud[i], label, [s0], "new"))
    if len(sizes) < 2:
        notes.append(f"only one trainable size ({size_label(s0)}): the size law cannot be "
                     f"identified and the target N*={params:.4g} cannot be predicted; add sizes")
    else:
        order = farthest_points(np.array([m[0] for m in mixes]), np.empty((0, M)), len(mixes)) \
            if mixes else []
        order += [i for i in range(len(mixes)) if i not in order]
        have_sizes = [float(n) for n in np.unique(summary.run_params)] + \
            ([s0] if any(m[3] == "new" for m in mixes) else [])
        missing = [float(n) for n in sizes if not any(abs(n - h) <= 1e-6 * n for h in have_sizes)]
        for n, i in zip(missing[:max(0, n_sizes - len(set(have_sizes)))], order):
            r, label, have, kind = mixes[i]
            if add(ProposedRun(r, n, tok(n)),
                   f"mixture {label} at {size_label(n)}: the size exponent needs runs at "
                   f"≥ {n_sizes} model sizes, the table has {len(set(have_sizes))}", kind, label):
                have.append(n)
        for i in order:
            r, label, have, kind = mixes[i]
            if len(have) != 1:
                continue
            second = [float(n) for n in sizes if not any(abs(n - h) <= 1e-6 * n for h in have)]
            if second and add(ProposedRun(r, second[0], tok(second[0])),
                              f"second size for mixture {label}: identifies its size law "
                              f"({size_label(have[0])} -> {size_label(second[0])})", kind, label):
                continue
    for i in farthest_points(cloud, np.vstack([existing, *[m[0][None] for m in mixes]]), n_left):
        n_new += 1
        label = f"new-{n_new}"
        add(ProposedRun(cloud[i], s0, tok(s0)),
            f"space-filling mixture {label} ({_top(summary.sources, cloud[i])}) at "
            f"{size_label(s0)}: more mixtures constrain the mixing law", "new", label)
    return picks, notes


def _reason(c: Candidate, sources, existing: np.ndarray, regret: float) -> str:
    tail = f"; expected target regret -> {regret:.3g}"
    sizes = " and ".join(size_label(r.params) for r in c.runs)
    if c.kind == "size":
        have = int(c.note)
        if have == 1:
            return f"second size for mixture {c.label}: identifies its size law ({sizes}){tail}"
        return (f"size {sizes} for mixture {c.label} (trained at {have} sizes): pins its "
                f"extrapolation to the target{tail}")
    if c.kind == "pool":
        return f"pool run {c.label}: {_top(sources, c.mixture)} at {sizes}{tail}"
    if c.kind == "continue":
        r = c.runs[0]
        return (f"continue run {c.label} from {r.start_tokens:.4g} to {r.tokens:.4g} tokens: its "
                f"step law nearer the target tokens (checkpoints on the way come free){tail}")
    d = float(np.abs(existing - c.mixture).sum(1).min()) if len(existing) else 2.0
    where = (f"near the target optimum's posterior mass ({_top(sources, c.mixture)})"
             if c.note == "focus" else
             f"exploring an unsampled region ({_top(sources, c.mixture)}; L1 {d:.2f} from the "
             f"nearest trained mixture)")
    ladder = " (two sizes: enters the size law)" if len(c.runs) == 2 else ""
    return f"new mixture {c.label} at {sizes}{ladder}, {where}{tail}"


def suggest_runs(runs: RunsTable, params: float, tokens: float, budget: float, *,
                 sizes: Sequence[float] | None = None, tokens_per_param: float | None = None,
                 batch: int = 8, constraints: Constraints | None = None,
                 laws: Sequence[str] = ("nested",), settings: Mapping[str, Any] | None = None,
                 n_members: int = 16, n_draws: int = 8, n_new: int = 24, n_mixtures: int = 1500,
                 pool: pd.DataFrame | None = None, seed: int = 0) -> Suggestion:
    """Propose up to ``batch`` runs within ``budget`` FLOPs that best teach the target optimum.

    Parameters
    ----------
    runs : the runs table so far.
    params, tokens : target scale ``N*, D*``.
    budget : total FLOPs of the proposals, ``sum 6 N (D - D_0) <= budget``.
    sizes : trainable model sizes (default: the table's).
    tokens_per_param : proxy training length (default: the table's median tokens/params).
    batch : maximum number of runs proposed.
    constraints : mixtures proposed satisfy them (availability judged at ``tokens``).
    laws : law families of the ensemble (names in :data:`mixlaws.fit.FAMILIES`); members of
        several families add structural uncertainty.
    settings : estimator settings passed to every family that accepts them (``val_weights``...).
    n_members : ensemble members per family; n_draws : fantasised outcomes per member;
    n_new : new mixtures considered; n_mixtures : feasible mixtures the optimum is sought among.
    pool : a finite pool of purchasable runs (DataFrame: ``params, tokens, mix:<source>``,
        optional ``run``); proposals are then pool rows only (:func:`pool_candidates`), and a
        table that cannot predict the target yet is an error (the design rule proposes runs
        off the pool).
    seed : all randomness (perturbations, mixtures, fantasies).
    """
    summary = summarise_table(runs)
    sources = summary.sources
    sizes_ = np.unique(np.asarray(summary.run_params if sizes is None else sizes, float))
    ratio = summary.ratio if tokens_per_param is None else float(tokens_per_param)
    _check(summary, params, tokens, budget, sizes_, ratio, batch)
    for name in laws:
        family(name)  # unknown family: a clear error before any fitting
    C = Constraints.none(sources) if constraints is None else constraints
    if tuple(C.sources) != tuple(sources):
        raise ConstraintError(f"{C.path}: constraints were resolved for sources {list(C.sources)}, "
                              f"not the table's {list(sources)}; reload them", path=C.path)
    rng = np.random.default_rng([seed, 0x5A6])
    target = (float(params), float(tokens))
    notes: list[str] = []
    if runs.progress != "tokens":
        notes.append("the table counts progress in steps: flops = 6 x params x steps is in "
                     "'parameter-steps', and --budget must be in the same unit")
    ens, ens_notes = fit_ensemble(runs, target, laws=laws, n_members=n_members,
                                  settings=settings, seed=seed)
    notes += ens_notes
    if ens is None or len(ens.members) < 2:
        if pool is not None:
            raise InsufficientDataError(
                "the target cannot be predicted from this table yet, and proposals from a pool "
                "are ranked by the law: train the design rule's runs first (suggest without a "
                f"pool); {'; '.join(ens_notes)}")
        picks, cold = _cold_start(summary, sizes_, ratio, budget, batch, C, tokens, rng, params)
        return Suggestion(sources, _rows(sources, picks), None, None, None, None, (), float(budget),
                          target, tuple(laws), None, "design rule", tuple(notes + cold))
    return _plan(ens, summary, sizes_, ratio, budget, batch, C, target, laws, n_draws, n_new,
                 n_mixtures, rng, notes, pool)


def _plan(ens: Ensemble, summary, sizes, ratio, budget, batch, C, target, laws, n_draws, n_new,
          n_mixtures, rng, notes, pool=None) -> Suggestion:
    sources = summary.sources
    N, D = target
    feas = feasible_mask(C, D, summary.mixtures)
    cloud = np.vstack([mixture_cloud(C, D, n_mixtures, rng), summary.mixtures[feas]])
    F = ens.predict_target(cloud, N, D)
    best = F.argmin(1)
    # refine around each member's optimum: convex combinations stay feasible
    lam = rng.uniform(0.02, 0.3, (len(best), 8))[..., None]
    other = cloud[rng.integers(0, len(cloud), (len(best), 8))]
    extra = tidy_mixtures(((1 - lam) * cloud[best][:, None, :] + lam * other).reshape(-1, len(sources)),
                          C, D)
    cloud = np.vstack([cloud, extra])
    F = np.hstack([F, ens.predict_target(extra, N, D)])
    ok = np.all(np.isfinite(F) & (F > 0), axis=0)
    cloud, F = cloud[ok], F[:, ok]
    reg = F - F.min(1, keepdims=True)
    optima = cloud[F.argmin(1)]
    # new mixtures: the members' optima (deduplicated) and space-filling points
    focus: list[np.ndarray] = []
    for r in optima:
        if all(np.abs(r - q).sum() > 0.05 for q in focus) and \
                (len(summary.mixtures) == 0 or np.abs(summary.mixtures - r).sum(1).min() > 0.05):
            focus.append(r)
    focus = focus[: n_new // 2]
    taken = np.vstack([summary.mixtures, *[f[None] for f in focus]])
    fill = [cloud[i] for i in farthest_points(cloud, taken, n_new - len(focus))]
    new = np.array(focus + fill).reshape(-1, len(sources))
    new_notes = ["focus"] * len(focus) + ["explore"] * len(fill)
    ladder_only = all(family(n).estimator is NestedMixingLaw for n in laws)
    cands = build_candidates(summary, sizes, ratio, new, new_notes, ladder=True,
                             constraints=C, total_tokens=D) if pool is None else \
        [c for c in pool_candidates(pool, sources, C, D) if c.label not in set(summary.run_ids)]
    if ladder_only and len(sizes) >= 2 and pool is None:
        cands = [c for c in cands if c.kind != "new" or len(c.runs) == 2]
    index: dict[tuple, int] = {}
    pts: list[tuple[np.ndarray, float, float]] = []
    with_points = []
    for c in cands:
        ids = []
        for r in c.runs:
            key = (tuple(np.round(r.mixture, 12)), r.params, r.tokens)
            if key not in index:
                index[key] = len(pts)
                pts.append((r.mixture, r.params, r.tokens))
            ids.append(index[key])
        with_points.append(Candidate(c.kind, c.label, c.mixture, c.runs, c.note, tuple(ids)))
    Y = ens.predict(pts)
    good = np.all(np.isfinite(Y) & (Y > 0), axis=0)
    cands = [c for c in with_points if all(good[p] for p in c.points)]
    fant = Fantasies.draw(np.where(good, Y, 1.0), ens.noise, n_draws, rng)
    terms = [fant.term(c.points) for c in cands]
    flops = np.array([c.flops for c in cands])
    sd = np.log(np.where(good, Y, 1.0)).std(0)
    steps, before, spread0 = greedy_batch(
        terms, flops, [c.points for c in cands], reg, optima, budget=budget, max_runs=batch,
        n_runs=np.array([len(c.runs) for c in cands]),
        spread=np.array([sd[list(c.points)].sum() for c in cands]))
    picks, path, spent = [], [], 0.0
    for st in steps:
        c = cands[st.index]
        reason = _reason(c, sources, summary.mixtures, st.regret)
        if st.value <= 0:
            reason += (" (the ensemble agrees on the optimum, so no run is expected to lower the "
                       "regret: picked where the members disagree most per FLOP)")
        for r in c.runs:
            picks.append((r, st.value, reason, c.kind, c.label))
        spent += c.flops
        path.append((spent, st.regret, st.spread))
    after = steps[-1].regret if steps else before
    spread1 = steps[-1].spread if steps else spread0
    notes.append(f"{len(cands)} candidates, {len(ens.members)} ensemble members x {n_draws} "
                 f"fantasies, optimum sought among {len(cloud)} feasible mixtures")
    return Suggestion(sources, _rows(sources, picks), before, after, spread0, spread1, tuple(path),
                      float(budget), target, tuple(laws), ens.noise,
                      "expected regret reduction per FLOP (importance-reweighted ensemble)",
                      tuple(notes))
