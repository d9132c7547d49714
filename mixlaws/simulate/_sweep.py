"""Ground-truth sweeps of small training runs drawn from known laws.

For validation domain ``d``, mixture ``r`` on the simplex, model size ``N`` and
training tokens ``D`` the truth is

.. math::

    L_d(r, N, D) = c_d + k_d \\exp(t_d \\cdot r) + A_d(r) N^{-\\alpha} + B_d D^{-\\beta},
    \\qquad A_d(r) = A_d \\exp(s\\, u_d \\cdot r),

with ``sum_j t_dj = 0`` (gauge), ``sum_j u_dj = 0`` and ``c_d, k_d, A_d, B_d > 0``.
With ``s = 0`` (``mixture_scaling``) each slice is exactly one of the laws of
Ye et al. (2024): the mixing law at fixed ``(N, D)`` (``c = c_d + A_d N^-a + B_d D^-b``),
the step law in ``D`` and the size law in ``N``; with ``s > 0`` the nesting is
only approximately right. Observed losses carry multiplicative noise
``L (1 + run_noise z_run + noise z_ckpt)``, ``z ~ N(0, 1)``, where ``z_run`` is
shared by the checkpoints of one run (seed noise, one per run and domain).

Used by the test suite (recovery, coverage), the benchmarks and the fixtures
written by ``python -m mixlaws.simulate --out fixtures/``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from ._truth import SweepTruth, domain_weights, random_truth
from ..errors import ConvergenceWarning, InfeasibleConstraintsError, MixlawsError, MixtureError, ScaleError

__all__ = ["sample_mixtures", "round_mixtures", "size_label", "simulate_sweep",
           "project_to_simplex", "true_optimum", "write_fixtures", "main", "BASELINE",
           "FIXTURE_DOMAINS", "FIXTURE_SOURCES"]


def sample_mixtures(n: int, n_sources: int, *, seed: int = 0,
                    include_uniform: bool = True) -> np.ndarray:
    """Mixtures like a real sweep: Dirichlet draws of varying concentration, some sparse.

    Each row draws a concentration ``a ~ logU(0.3, 3)`` and ``r ~ Dirichlet(a 1_M)``; with
    probability 1/3 (when ``M >= 3``) a random set of ``1 .. M-2`` sources is set to exactly 0
    and the row renormalised. The first row is uniform when ``include_uniform``.
    Returns an array of shape ``(n, n_sources)``, unrounded.
    """
    if n < 0 or n_sources < 1:
        raise MixtureError(f"need n >= 0 mixtures of n_sources >= 1; got n={n}, n_sources={n_sources}")
    rng = np.random.default_rng(seed)
    out = np.empty((n, n_sources))
    for i in range(n):
        conc = math.exp(rng.uniform(math.log(0.3), math.log(3.0)))
        row = rng.dirichlet(np.full(n_sources, conc)) if n_sources > 1 else np.ones(1)
        if n_sources >= 3 and rng.uniform() < 1.0 / 3.0:
            dropped = rng.choice(n_sources, size=int(rng.integers(1, n_sources - 1)), replace=False)
            row[dropped] = 0.0
        row = np.maximum(row, 0.0)
        out[i] = row / row.sum() if row.sum() > 0 else np.full(n_sources, 1.0 / n_sources)
    if include_uniform and n > 0:
        out[0] = 1.0 / n_sources
    return out


def _sums(row: np.ndarray) -> tuple[bool, bool, bool]:
    """Whether the left-to-right, numpy (pairwise) and exact (``math.fsum``) sums of ``row`` are 1.0."""
    seq = 0.0
    for x in row.tolist():
        seq += x
    return seq == 1.0, float(np.sum(row)) == 1.0, math.fsum(row.tolist()) == 1.0


#: what a rounded row must satisfy, best first: all three sums; left-to-right (pandas, ``sum``)
#: with numpy's; with the exact one; left-to-right alone
_LEVELS = ((True, True, True), (True, True, False), (True, False, True), (True, False, False))


def round_mixtures(r: Any, decimals: int = 6) -> np.ndarray:
    """Round proportions to ``decimals`` and fix each row to sum to exactly 1 in float.

    The largest entry takes ``1 - sum(others)`` (rounded); if needed one of the largest
    entries is then moved by a few ulps until the left-to-right sum (``sum()``,
    pandas' row sums) gives exactly ``1.0`` and, whenever a move allows it, numpy's pairwise
    ``np.sum`` and the correctly rounded ``math.fsum`` too (these can disagree by an ulp).
    """
    r = np.array(r, dtype=np.float64, ndmin=2)
    if np.any(~np.isfinite(r)) or np.any(r < 0) or np.any(r.sum(axis=1) <= 0):
        raise MixtureError("mixtures must be finite, non-negative and not all zero")
    out = np.round(r / r.sum(axis=1, keepdims=True), decimals)
    for row in out:
        j = int(np.argmax(row))
        row[j] = 0.0
        row[j] = round(1.0 - math.fsum(row.tolist()), decimals)
        if not all(_sums(row)) and not _nudge(row):
            raise MixtureError(f"cannot round mixture {row.tolist()} to sum to exactly 1")  # pragma: no cover
    return out


def _nudge(row: np.ndarray) -> bool:
    """Move one entry (of the 6 largest and the last 3 positive) by up to 32 steps (its ulp, else
    2**-53); the move reaching the best of ``_LEVELS`` wins."""
    base = row.copy()
    best: tuple[int, int, float] | None = None  # (level index, entry, value)
    largest = np.argsort(-base, kind="stable")[:6].tolist()
    for j in dict.fromkeys([*largest, *np.flatnonzero(base > 0)[::-1][:3].tolist()]):
        if base[j] <= 0:
            continue
        for unit in dict.fromkeys((math.ulp(base[j]), max(math.ulp(base[j]), 2.0**-53))):
            for a in (s * sign for s in range(1, 33) for sign in (1, -1)):
                row[j] = base[j] + a * unit
                sums = _sums(row)
                level = next((i for i, need in enumerate(_LEVELS)
                              if all(ok or not n for ok, n in zip(sums, need))), None)
                if level is not None and (best is None or level < best[0]):
                    best = (level, j, float(row[j]))
                    if level == 0:
                        return True
            row[j] = base[j]
    if best is not None:
        row[best[1]] = best[2]
    return best is not None


def size_label(n: float) -> str:
    """Short label of a model size: ``2e7 -> '20M'``, ``1e9 -> '1B'``, ``1.5e8 -> '150M'``."""
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:g}{suffix}"
    return f"{n:g}"


def simulate_sweep(truth: SweepTruth, *, n_mixtures: int = 16,
                   sizes: Sequence[float] = (2e7, 5e7, 1e8, 2e8), tokens_per_param: float = 20.0,
                   checkpoints: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
                   mixtures: Any = None, seed: int = 0) -> pd.DataFrame:
    """Simulate a sweep in the runs-table layout (DESIGN.md section 2).

    Every mixture is trained at every size ``N``; the final tokens are ``tokens_per_param * N``
    and checkpoint ``f`` is at ``D = round(f * tokens_per_param * N)`` tokens,
    ``step = round(D / 2**20)``. Run ids are ``"<size_label(N)>-<i>"``. Mixtures
    (``sample_mixtures(n_mixtures, M, seed=seed)`` unless given, shape ``(n, M)``) are
    rounded by :func:`round_mixtures`. Observed losses are
    ``L_d(r, N, D) (1 + run_noise z_run + noise z_ckpt)`` with ``z_run`` per (run, domain).

    Returns
    -------
    DataFrame
        Columns ``run, params, tokens, step, mix:<source>..., loss:<domain>...``; rows ordered
        by size, mixture, checkpoint.
    """
    m = truth.n_sources
    if mixtures is None:
        mixtures = sample_mixtures(n_mixtures, m, seed=seed)
    mix = np.array(mixtures, dtype=np.float64, ndmin=2)
    if mix.ndim != 2 or mix.shape[1] != m or mix.shape[0] < 1:
        raise MixtureError(f"mixtures must have shape (n >= 1, {m}) for sources {list(truth.sources)}; "
                           f"got {mix.shape}")
    bad = np.flatnonzero(np.any(~np.isfinite(mix) | (mix < 0), axis=1) | (np.abs(mix.sum(axis=1) - 1) > 1e-6))
    if bad.size:
        raise MixtureError(f"mixture {int(bad[0])} is not on the simplex: {mix[bad[0]].tolist()}; "
                           "proportions must be >= 0 and sum to 1", index=int(bad[0]))
    mix = round_mixtures(mix)
    sizes_ = np.asarray(sizes, dtype=np.float64)
    fracs = np.asarray(checkpoints, dtype=np.float64)
    labels = [size_label(s) for s in sizes_]
    if sizes_.size < 1 or np.any(~(sizes_ > 0)) or len(set(labels)) < len(labels):
        raise ScaleError(f"sizes must be positive with distinct labels; got {list(sizes)}")
    if not tokens_per_param > 0 or fracs.size < 1 or np.any(~(fracs > 0)) or np.any(fracs > 1) \
            or np.any(np.diff(fracs) <= 0):
        raise ScaleError("need tokens_per_param > 0 and increasing checkpoint fractions in (0, 1]; "
                         f"got {tokens_per_param}, {list(checkpoints)}")
    n_size, n_mix, n_ck, n_dom = sizes_.size, mix.shape[0], fracs.size, truth.n_domains
    params = np.rint(sizes_).astype(np.int64)
    tokens = np.rint(fracs[None, :] * tokens_per_param * params[:, None]).astype(np.int64)
    if np.any(tokens < 1) or np.any(np.diff(tokens, axis=1) <= 0):
        raise ScaleError("checkpoints fall on the same or zero token counts; use larger "
                         "tokens_per_param or fewer checkpoints")
    rng = np.random.default_rng([seed, 0x5EED])
    z_run = rng.standard_normal((n_size, n_mix, 1, n_dom))
    z_ck = rng.standard_normal((n_size, n_mix, n_ck, n_dom))
    shape = (n_size, n_mix, n_ck)
    p_all = np.broadcast_to(params[:, None, None], shape).reshape(-1)
    d_all = np.broadcast_to(tokens[:, None, :], shape).reshape(-1)
    r_all = np.broadcast_to(mix[None, :, None, :], (*shape, m)).reshape(-1, m)
    clean = truth.loss(r_all, p_all, d_all)
    factor = (1.0 + truth.run_noise * z_run + truth.noise * z_ck).reshape(-1, n_dom)
    table: dict[str, Any] = {
        "run": [f"{labels[a]}-{b}" for a in range(n_size) for b in range(n_mix) for _ in range(n_ck)],
        "params": p_all, "tokens": d_all,
        "step": np.rint(d_all / 2.0**20).astype(np.int64)}
    table.update({f"mix:{s}": r_all[:, j] for j, s in enumerate(truth.sources)})
    table.update({f"loss:{d}": (clean * factor)[:, i] for i, d in enumerate(truth.domains)})
    return pd.DataFrame(table)


def _bounds(truth: SweepTruth, bounds: Any) -> tuple[np.ndarray, np.ndarray]:
    m = truth.n_sources
    if bounds is None:
        return np.zeros(m), np.ones(m)
    if isinstance(bounds, Mapping):
        unknown = sorted(set(bounds) - set(truth.sources))
        if unknown:
            raise MixtureError(f"bounds name unknown sources {unknown}; known: {list(truth.sources)}")
        bounds = [bounds.get(s, (0.0, 1.0)) for s in truth.sources]
    b = np.asarray(bounds, dtype=np.float64)
    if b.shape != (m, 2) or np.any(~np.isfinite(b)) or np.any(b[:, 0] > b[:, 1]):
        raise MixtureError(f"bounds must be {m} (lo, hi) pairs with lo <= hi, one per source "
                           f"{list(truth.sources)}")
    lo, hi = np.clip(b[:, 0], 0.0, 1.0), np.clip(b[:, 1], 0.0, 1.0)
    if lo.sum() > 1.0 + 1e-12 or hi.sum() < 1.0 - 1e-12:
        side = "lower" if lo.sum() > 1.0 else "upper"
        raise InfeasibleConstraintsError(
            f"the {side} bounds of all sources sum to {(lo if side == 'lower' else hi).sum():.6g}, "
            "so no mixture sums to 1; relax them", conflict=[f"{side} bounds"])
    return lo, hi


def project_to_simplex(x: Any, lo: Any = None, hi: Any = None) -> np.ndarray:
    """Euclidean projection onto ``{r : lo <= r <= hi, sum r = 1}``.

    ``r = clip(x - tau, lo, hi)`` with the scalar ``tau`` found by bisection so that the
    entries sum to 1 (assumes ``sum lo <= 1 <= sum hi``; defaults ``lo = 0``, ``hi = 1``).
    """
    x = np.asarray(x, dtype=np.float64)
    lo = np.zeros_like(x) if lo is None else np.asarray(lo, dtype=np.float64)
    hi = np.ones_like(x) if hi is None else np.asarray(hi, dtype=np.float64)
    a, b = float(np.min(x - hi)) - 1.0, float(np.max(x - lo)) + 1.0
    for _ in range(200):
        mid = 0.5 * (a + b)
        if np.clip(x - mid, lo, hi).sum() > 1.0:
            a = mid
        else:
            b = mid
        if b - a <= 1e-17 * max(1.0, abs(mid)):
            break
    r = np.clip(x - 0.5 * (a + b), lo, hi)
    free = np.flatnonzero((r > lo) & (r < hi))
    if free.size:  # put the last rounding residue on the largest free entry
        j = free[np.argmax(r[free])]
        r[j] = np.clip(r[j] + (1.0 - r.sum()), lo[j], hi[j])
    return r


def true_optimum(truth: SweepTruth, params: float, tokens: float, *, weights: Any = None,
                 bounds: Any = None, seed: int = 0, n_starts: int = 16) -> tuple[np.ndarray, float]:
    """Mixture minimising the noiseless aggregate loss at ``(params, tokens)``.

    Minimises ``f(r) = sum_d w_d [k_d e^{t_d.r} + A_d N^-alpha e^{s u_d.r}]`` (the rest of the
    loss does not depend on ``r``) over ``{lo <= r <= hi, sum r = 1}`` by SLSQP with the exact
    gradient ``df/dr_j = sum_d w_d [k_d t_dj e^{t_d.r} + s A_d N^-alpha u_dj e^{s u_d.r}]``
    from the uniform mixture and ``n_starts - 1`` Dirichlet starts (``seed``), keeping the best.
    ``f`` is convex, so all starts agree up to tolerance. ``bounds``: ``(lo, hi)`` per source,
    as a sequence or a mapping ``source -> (lo, hi)``.

    Returns
    -------
    r : ndarray, shape (M,)
        The optimal mixture (feasible to rounding).
    loss : float
        ``truth.aggregate(r, params, tokens, weights)``.
    """
    w = domain_weights(truth, weights)
    lo, hi = _bounds(truth, bounds)
    n, d = float(params), float(tokens)
    if not (math.isfinite(n) and math.isfinite(d) and n > 0 and d > 0):
        raise ScaleError(f"params and tokens must be positive and finite; got {params}, {tokens}")
    a = truth.A * n ** (-truth.alpha)
    wk, wa, s = w * truth.k, w * a, truth.mixture_scaling

    def fun(r: np.ndarray) -> tuple[float, np.ndarray]:
        e1, e2 = wk * np.exp(truth.t @ r), wa * np.exp(s * (truth.u @ r))
        return float(e1.sum() + e2.sum()), e1 @ truth.t + s * (e2 @ truth.u)

    rng = np.random.default_rng(seed)
    starts = [np.full(truth.n_sources, 1.0 / truth.n_sources)]
    starts += list(rng.dirichlet(np.ones(truth.n_sources), size=max(n_starts - 1, 0)))
    best: tuple[float, np.ndarray, bool] | None = None
    for x0 in starts:
        res = minimize(fun, project_to_simplex(x0, lo, hi), jac=True, method="SLSQP",
                       bounds=list(zip(lo, hi)), options={"ftol": 1e-15, "maxiter": 1000},
                       constraints=[{"type": "eq", "fun": lambda r: np.sum(r) - 1.0,
                                     "jac": lambda r: np.ones_like(r)}])
        r = project_to_simplex(res.x, lo, hi)
        value = fun(r)[0]
        if best is None or value < best[0]:
            best = (value, r, bool(res.success))
    assert best is not None
    if not best[2]:
        warnings.warn("true_optimum: SLSQP did not report convergence at the best start",
                      ConvergenceWarning, stacklevel=2)
    return best[1], float(truth.aggregate(best[1], params, tokens, w))


FIXTURE_SOURCES = ("web", "code", "books", "papers", "wiki")
FIXTURE_DOMAINS = ("web", "code", "prose", "science")
BASELINE = "web=0.6,code=0.1,books=0.1,papers=0.1,wiki=0.1"
#: target scale at which the fixtures' true optimum is recorded (1B params, 20 tokens/param)
FIXTURE_TARGET = (1e9, 2e10)


def _truth_file(truth: SweepTruth, generation: dict[str, Any], mixtures: np.ndarray) -> str:
    n, d = FIXTURE_TARGET
    r_opt, l_opt = true_optimum(truth, n, d)
    base = mixtures[0]
    data = truth.to_dict()
    data["generation"] = {**generation, "target": {
        "params": n, "tokens": d,
        "optimum": {s: round(float(x), 9) for s, x in zip(truth.sources, r_opt)},
        "optimum_loss": round(l_opt, 9),
        "first_mixture_loss": round(float(truth.aggregate(base, n, d)), 9)}}
    return json.dumps(data, indent=2) + "\n"


def _readme(truth: SweepTruth, command: str) -> str:
    rows = "\n".join(
        f"| {d} | {truth.c[i]:.4f} | {truth.k[i]:.4f} | {truth.A[i]:.1f} | {truth.B[i]:.1f} | "
        + " ".join(f"{x:+.3f}" for x in truth.t[i]) + " |" for i, d in enumerate(truth.domains))
    return f"""# Test fixtures (simulated; regenerate, do not edit)

Regenerate all files byte for byte with

    {command}

(`tests/test_simulate.py` checks this). Every loss is drawn from a known law (`mixlaws.simulate`):

    L_d(r, N, D) = c_d + k_d exp(t_d . r) + A_d exp(s u_d . r) N^-alpha + B_d D^-beta

per validation domain d (`loss:<d>`), mixture r (`mix:<source>`), model size N (`params`) and
training tokens D (`tokens`); `step = round(tokens / 2**20)`. Observed losses are
`L (1 + run_noise z_run + noise z_ckpt)` with z_run shared by the checkpoints of a run.

| file | content |
|---|---|
| `sweep.csv` | 16 mixtures (first the baseline, second uniform) x sizes 20M, 50M, 100M, 200M x 10 checkpoints (10 %..100 % of 20 tokens/param); run ids `<size>-<i>` |
| `sweep_truth.json` | `SweepTruth.to_dict()` of the law behind `sweep.csv`, plus `generation`: the arguments and the true optimum at N=1e9, D=2e10 (uniform domain weights) |
| `single_scale.csv` | RegMix-like: 64 mixtures, 1M params, one checkpoint at 1e9 tokens |
| `single_scale_truth.json` | the same law (same seed), with its generation arguments |
| `baseline.txt` | the default (baseline) mixture, `source=proportion,...` |

True parameters (sources {", ".join(truth.sources)}; t_d < 0 means the source helps domain d;
rows of t sum to 0): alpha = {truth.alpha:.4f}, beta = {truth.beta:.4f}, s = {truth.mixture_scaling:g},
noise = {truth.noise:g}, run_noise = {truth.run_noise:g}.

| domain | c | k | A | B | t ({" ".join(truth.sources)}) |
|---|---|---|---|---|---|
{rows}
"""


def write_fixtures(out: str | Path, *, seed: int = 0, noise: float = 0.003, run_noise: float = 0.002,
                   mixture_scaling: float = 0.0, command: str | None = None) -> list[Path]:
    """Write the bundled fixture files (see ``fixtures/README.md``) into ``out``; return their paths.

    ``command`` is the regeneration command quoted in the README (defaults to the CLI call
    that reproduces these arguments with ``--out fixtures/``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if command is None:
        command = "python -m mixlaws.simulate --out fixtures/" + "".join(
            f" --{flag} {value!r}" for flag, value, default in
            (("seed", seed, 0), ("noise", noise, 0.003), ("run-noise", run_noise, 0.002),
             ("mixture-scaling", mixture_scaling, 0.0)) if value != default)
    truth = random_truth(FIXTURE_SOURCES, FIXTURE_DOMAINS, seed=seed, noise=noise,
                         run_noise=run_noise, mixture_scaling=mixture_scaling)
    base = dict(item.split("=") for item in BASELINE.split(","))
    mix = np.vstack([[float(base[s]) for s in FIXTURE_SOURCES],
                     sample_mixtures(15, len(FIXTURE_SOURCES), seed=seed, include_uniform=True)])
    common = {"truth": {"function": "random_truth", "seed": seed, "noise": noise,
                        "run_noise": run_noise, "mixture_scaling": mixture_scaling},
              "command": command}
    sweep_args: dict[str, Any] = {"sizes": [2e7, 5e7, 1e8, 2e8], "tokens_per_param": 20.0,
                                  "checkpoints": [round(0.1 * i, 1) for i in range(1, 11)], "seed": seed}
    single_args: dict[str, Any] = {"n_mixtures": 64, "sizes": [1e6], "tokens_per_param": 1000.0,
                                   "checkpoints": [1.0], "seed": seed + 1}
    sweep = simulate_sweep(truth, mixtures=mix, **sweep_args)
    single = simulate_sweep(truth, **single_args)
    single_mix = single[[f"mix:{s}" for s in truth.sources]].to_numpy()
    files = {
        "sweep.csv": sweep.to_csv(index=False, lineterminator="\n"),
        "sweep_truth.json": _truth_file(truth, {
            **common, "mixtures": f"baseline, then sample_mixtures(15, 5, seed={seed})", **sweep_args}, mix),
        "single_scale.csv": single.to_csv(index=False, lineterminator="\n"),
        "single_scale_truth.json": _truth_file(truth, {
            **common, "mixtures": f"sample_mixtures(64, 5, seed={seed + 1})", **single_args}, single_mix),
        "baseline.txt": BASELINE + "\n",
        "README.md": _readme(truth, command)}
    paths = []
    for name, text in files.items():
        path = out / name
        path.write_bytes(text.encode("utf-8"))
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mixlaws.simulate --out DIR [--seed 0] [--noise ...]``: write the fixtures.

    Returns 0 on success, 2 (with a one-line message on stderr) on a :class:`MixlawsError`.
    """
    parser = argparse.ArgumentParser(prog="python -m mixlaws.simulate",
                                     description="Write the simulated fixture files of mixlaws.")
    parser.add_argument("--out", required=True, help="output directory (e.g. fixtures/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.003, help="per-checkpoint relative sd")
    parser.add_argument("--run-noise", type=float, default=0.002, help="per-run relative sd")
    parser.add_argument("--mixture-scaling", type=float, default=0.0, help="s in A_d exp(s u_d.r)")
    args = parser.parse_args(argv)
    try:
        write_fixtures(args.out, seed=args.seed, noise=args.noise, run_noise=args.run_noise,
                       mixture_scaling=args.mixture_scaling)
    except MixlawsError as exc:
        sys.stderr.write(f"mixlaws.simulate: error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
