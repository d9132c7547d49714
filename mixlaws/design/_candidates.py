"""What ``suggest`` may propose: purchasable runs, their cost, and the mixtures they try.

A *candidate* is one decision of the experimenter and consists of one or two runs:

``size``
    an existing mixture trained at a model size it lacks (a second size identifies its size law);
``continue``
    an existing run trained on from its last checkpoint to the proxy length (the intermediate
    checkpoints come free);
``new``
    a new mixture, either one run at one size or a *ladder* of runs at the two smallest sizes
    (what the nested family needs before a mixture enters its size stage);
``pool``
    one run of a finite pool of purchasable runs (:func:`pool_candidates`: runs already
    trained elsewhere, or the only configurations a team can afford), instead of the above.

Compute is counted as :math:`C = 6 N (D - D_0)` FLOPs for a run of ``N`` parameters trained
from ``D_0`` to ``D`` tokens (``D_0 = 0`` for a new run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ScaleError
from ..optimize import Constraints, feasible_points, linear_items

__all__ = ["FLOPS_PER_PARAM_TOKEN", "run_flops", "ProposedRun", "Candidate", "TableSummary",
           "summarise_table", "feasible_mask", "mixture_cloud", "tidy_mixtures", "farthest_points",
           "build_candidates", "pool_candidates"]

FLOPS_PER_PARAM_TOKEN = 6.0
"""Training FLOPs per parameter and token (forward + backward), ``C = 6 N D``."""

_RTOL = 1e-6


def run_flops(params: float, tokens: float, start_tokens: float = 0.0) -> float:
    """Training compute ``6 N (D - D_0)`` of a run from ``start_tokens`` to ``tokens``."""
    return FLOPS_PER_PARAM_TOKEN * float(params) * (float(tokens) - float(start_tokens))


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= _RTOL * max(abs(a), abs(b))


@dataclass(frozen=True, eq=False)
class ProposedRun:
    """One run to train: ``mixture`` at ``params`` from ``start_tokens`` to ``tokens``."""

    mixture: np.ndarray
    params: float
    tokens: float
    start_tokens: float = 0.0

    @property
    def flops(self) -> float:
        """``6 N (D - D_0)``."""
        return run_flops(self.params, self.tokens, self.start_tokens)


@dataclass(frozen=True, eq=False)
class Candidate:
    """A decision: ``kind`` in ``size``/``continue``/``new``, on mixture ``label``, of 1-2 runs."""

    kind: str
    label: str
    mixture: np.ndarray
    runs: tuple[ProposedRun, ...]
    note: str = ""
    points: tuple[int, ...] = field(default=())

    @property
    def flops(self) -> float:
        """Total compute of the candidate's runs."""
        return float(sum(r.flops for r in self.runs))


@dataclass(frozen=True, eq=False)
class TableSummary:
    """What the candidates are built from: one entry per run and per distinct mixture."""

    sources: tuple[str, ...]
    mixtures: np.ndarray
    labels: tuple[str, ...]
    run_ids: tuple[str, ...]
    run_mixture: np.ndarray
    run_params: np.ndarray
    run_tokens: np.ndarray

    def sizes_of(self, m: int) -> np.ndarray:
        """Distinct model sizes at which mixture ``m`` was trained."""
        return np.unique(self.run_params[self.run_mixture == m])

    @property
    def ratio(self) -> float:
        """Median tokens per parameter of the runs' last checkpoints."""
        return float(np.median(self.run_tokens / self.run_params))


def summarise_table(runs) -> TableSummary:
    """A :class:`TableSummary` of a :class:`~mixlaws.runs.RunsTable`."""
    per_run = runs.runs()
    mixtures, index = runs.mixtures()
    ids = per_run["run"].astype(str).tolist()
    labels = tuple(ids[int(np.flatnonzero(index == m)[0])] for m in range(len(mixtures)))
    return TableSummary(sources=tuple(runs.sources), mixtures=mixtures, labels=labels,
                        run_ids=tuple(ids), run_mixture=np.asarray(index, int),
                        run_params=per_run["params"].to_numpy(float),
                        run_tokens=per_run["max_tokens"].to_numpy(float))


def feasible_mask(constraints: Constraints, total_tokens: float | None, R: np.ndarray,
                  tol: float = 1e-9) -> np.ndarray:
    """Which rows of ``R (n, M)`` satisfy every linear constraint (and the simplex) to ``tol``."""
    R = np.atleast_2d(np.asarray(R, float))
    ok = np.all(R >= -tol, axis=1) & np.all(R <= 1 + tol, axis=1)
    for it in linear_items(constraints, total_tokens):
        v = R @ it.coef - it.rhs
        ok &= {"<=": v <= tol, ">=": v >= -tol, "==": np.abs(v) <= tol}[it.sense]
    return ok


def mixture_cloud(constraints: Constraints, total_tokens: float | None, n: int,
                  rng: np.random.Generator) -> np.ndarray:
    """``n`` feasible mixtures covering the constrained simplex, interior and faces.

    Up to 32 :func:`~mixlaws.optimize.feasible_points` (a central point and points towards LP
    vertices), sparse Dirichlet draws (concentration 0.2-1, a random subset of sources set to 0)
    kept when feasible, and random convex combinations of the former (feasible by convexity) to
    make up the number.  Entries are tidied by :func:`tidy_mixtures`.
    """
    M = len(constraints.sources)
    if M == 1:
        return np.ones((n, 1))
    base = feasible_points(constraints, total_tokens, min(32, max(n, 2)), rng)
    draws = []
    for _ in range(n):
        r = rng.dirichlet(np.full(M, rng.uniform(0.2, 1.0)))
        if M >= 3 and rng.uniform() < 0.5:
            r[rng.choice(M, size=int(rng.integers(1, M - 1)), replace=False)] = 0.0
            r = r / r.sum() if r.sum() > 0 else np.full(M, 1.0 / M)
        draws.append(r)
    D = np.asarray(draws)
    D = D[feasible_mask(constraints, total_tokens, D)][: max(n - len(base), 0) // 2]
    out = np.vstack([base, D]) if len(D) else base
    k = n - len(out)
    if k > 0:
        W = rng.dirichlet(np.full(len(base), 0.3), size=k)
        out = np.vstack([out, W @ base])
    return tidy_mixtures(out[:n], constraints, total_tokens)


def tidy_mixtures(R: np.ndarray, constraints: Constraints, total_tokens: float | None,
                  floor: float = 1e-6) -> np.ndarray:
    """Proportions below ``floor`` set to 0 and the row rescaled to sum 1, where that stays feasible.

    LP vertices come back with entries like ``6e-13``; a training config should read ``0``.
    Rows whose tidied version would break a constraint are kept as they are.
    """
    R = np.array(R, dtype=float)
    T = np.where(R < floor, 0.0, R)
    T = T / T.sum(1, keepdims=True)
    ok = feasible_mask(constraints, total_tokens, T)
    R[ok] = T[ok]
    return R


def farthest_points(pool: np.ndarray, existing: np.ndarray, k: int) -> list[int]:
    """Greedy maximin: indices of ``k`` rows of ``pool`` farthest (L1) from ``existing`` and each other."""
    if k <= 0 or len(pool) == 0:
        return []
    d = (np.full(len(pool), 2.0) if len(existing) == 0 else
         np.abs(pool[:, None, :] - existing[None, :, :]).sum(-1).min(1))
    chosen: list[int] = []
    for _ in range(min(k, len(pool))):
        i = int(np.argmax(d))
        if d[i] <= 1e-9:
            break
        chosen.append(i)
        d = np.minimum(d, np.abs(pool - pool[i]).sum(-1))
    return chosen


def build_candidates(summary: TableSummary, sizes: np.ndarray, ratio: float,
                     new_mixtures: np.ndarray, new_notes: list[str], *, ladder: bool,
                     constraints: Constraints, total_tokens: float | None) -> list[Candidate]:
    """All candidates: existing feasible mixtures at missing sizes, continuations, new mixtures.

    ``sizes`` are the trainable model sizes (ascending), ``ratio`` the proxy tokens per
    parameter; a new run at size ``N`` is trained to ``round(ratio N)`` tokens.  Each new
    mixture gets one single-run candidate per size and, when ``ladder`` and there are ≥ 2 sizes,
    a two-run candidate at the two smallest sizes.
    """
    if np.any(~(np.asarray(sizes) > 0)) or not ratio > 0:
        raise ScaleError(f"sizes and tokens per parameter must be positive; got {list(sizes)}, {ratio}")
    tok = lambda n: float(np.rint(ratio * n))  # noqa: E731
    out: list[Candidate] = []
    feas = feasible_mask(constraints, total_tokens, summary.mixtures)
    for m, r in enumerate(summary.mixtures):
        if not feas[m]:
            continue
        have = summary.sizes_of(m)
        for n in sizes:
            if not any(_same(n, h) for h in have):
                out.append(Candidate("size", summary.labels[m], r,
                                     (ProposedRun(r, float(n), tok(n)),), note=f"{len(have)}"))
    for i, run in enumerate(summary.run_ids):
        n, d = summary.run_params[i], summary.run_tokens[i]
        m = summary.run_mixture[i]
        if feas[m] and tok(n) > d * (1 + 1e-3):
            out.append(Candidate("continue", run, summary.mixtures[m],
                                 (ProposedRun(summary.mixtures[m], float(n), tok(n), float(d)),)))
    for i, r in enumerate(new_mixtures):
        label = f"new-{i + 1}"
        for n in sizes:
            out.append(Candidate("new", label, r, (ProposedRun(r, float(n), tok(n)),),
                                 note=new_notes[i]))
        if ladder and len(sizes) >= 2:
            out.append(Candidate("new", label, r, tuple(ProposedRun(r, float(n), tok(n))
                                                        for n in sizes[:2]), note=new_notes[i]))
    return out


def pool_candidates(pool, sources, constraints: Constraints,
                    total_tokens: float | None) -> list[Candidate]:
    """One single-run ``pool`` candidate per feasible row of ``pool``.

    ``pool`` is a DataFrame with ``params``, ``tokens`` and ``mix:<source>`` for every source
    (optional ``run``: the label; default ``pool-<row>``), one row per purchasable run trained
    from scratch to ``tokens``.
    """
    need = ["params", "tokens", *[f"mix:{s}" for s in sources]]
    missing = [c for c in need if c not in pool.columns]
    if missing:
        raise ScaleError(f"the pool of runs lacks column(s) {', '.join(missing)} (needs params, "
                         f"tokens and mix:<source> for the table's sources)")
    R = pool[need[2:]].to_numpy(float)
    N, D = pool["params"].to_numpy(float), pool["tokens"].to_numpy(float)
    if np.any(~np.isfinite(R)) or np.any(R < 0) or np.any(~(N > 0)) or np.any(~(D > 0)):
        raise ScaleError("the pool of runs needs positive params and tokens and mixtures of "
                         "non-negative shares")
    R = R / R.sum(1, keepdims=True)
    labels = (pool["run"].astype(str).tolist() if "run" in pool.columns
              else [f"pool-{i}" for i in range(len(pool))])
    ok = feasible_mask(constraints, total_tokens, R)
    return [Candidate("pool", labels[i], R[i], (ProposedRun(R[i], float(N[i]), float(D[i])),),
                      note="pool") for i in range(len(pool)) if ok[i]]
