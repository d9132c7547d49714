"""Data of the nested family's stage figures (step and size curves), with uncertainty bands.

Bands are Gauss–Newton (Laplace) intervals of the point fit, cheap enough to draw without
sampling:

* step stage — each run's covariance of ``log L_d(D)`` across its domains from its own
  checkpoints (:func:`mixlaws.posterior.step_predictive_cov`, the covariance the size
  posterior uses at ``D*``), evaluated along the curve and aggregated over domains;
* size stage — per mixture and domain, ``E`` and ``A`` refitted given the exponent by
  relative least squares (the stage's rms log-residual as the noise scale) and the
  exponent's standard error carried through that refit (profiled, so ``E, A`` follow it).

They are epistemic bands of each law given its data, not the nested posterior
(``mixlaws sample``), which also propagates every stage into the next.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from scipy.stats import norm

from . import _plots as plots
from ..runs._warmup import after_warmup

__all__: list[str] = []

BAND_LEVEL = 0.9
"""Level of the step and size bands."""


def _agg(L: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Aggregate ``sum_d w_d L_d`` over the last axis (plain mean without weights)."""
    L = np.asarray(L, float)
    return L.mean(-1) if weights is None else L @ weights


def _wvec(weights: np.ndarray | None, nd: int) -> np.ndarray:
    return np.full(nd, 1.0 / nd) if weights is None else np.asarray(weights, float)


def step_figure(model: Any, target: Any, runs: Any, max_panels: int = 12) -> tuple[Any, list]:
    """Step-curve figure (data, fitted laws, bands; one panel per model size, up to
    ``max_panels`` evenly spaced) and the step residual panel."""
    R, w, st = model.runs_, model.weights_, model.step_
    nd = len(model.domains_)
    wv = _wvec(w, nd)
    sizes = np.unique(R["params"])
    show = sizes[np.unique(np.linspace(0, sizes.size - 1, min(sizes.size, max_panels)).astype(int))]
    data = {} if runs is None else {str(k): g for k, g in runs.data.groupby("run", sort=False)}
    loss_cols = [f"loss:{d}" for d in model.domains_]
    pos = {int(i): j for j, i in enumerate(model.step_runs_)}
    hi_all = max(float(R["last_tokens"].max()), target.tokens if target is not None else 0.0)
    lo_all = float(model.warmup * R["last_tokens"].min())
    grid = np.geomspace(max(lo_all, 1e-12), hi_all, 80)
    cov = None
    if st is not None and runs is not None:
        from ..posterior import step_predictive_cov

        cov = step_predictive_cov(model, runs, grid)             # (n_runs, T, nd, nd)
    z = norm.ppf(0.5 + BAND_LEVEL / 2)
    groups, res_x, res_r = [], [], []
    for N in show:
        curves = []
        for i in np.flatnonzero(R["params"] == N):
            g = data.get(R["run"][i])
            Dd = g["tokens"].to_numpy(float) if g is not None else np.array([R["last_tokens"][i]])
            Ld = _agg(g[loss_cols].to_numpy(float), w) if g is not None else \
                np.array([_agg(R["last_losses"][i], w)])
            Dg = Lg = lo = hi = np.array([])
            if st is not None and int(i) in pos:
                j = pos[int(i)]
                beta = np.broadcast_to(np.atleast_1d(st.params["beta"][j]), (nd,))
                keep_g = grid >= max(np.nanmin(Dd), model.warmup * R["last_tokens"][i]) * (1 - 1e-9)
                Dg = grid[keep_g]
                Ldom = st.params["E"][j] + st.params["B"][j] * Dg[:, None] ** (-beta)
                Lg = _agg(Ldom, w)
                if cov is not None:
                    a = Ldom * wv                                 # d agg / d log L_d
                    sd = np.sqrt(np.einsum("td,tde,te->t", a, cov[i][keep_g], a).clip(0))
                    lo, hi = Lg - z * sd, Lg + z * sd
                if g is not None:
                    keep = after_warmup(Dd, model.warmup)
                    Lobs = g[loss_cols].to_numpy(float)[keep]
                    pred = st.params["E"][j] + st.params["B"][j] * Dd[keep, None] ** (-beta)
                    res_x.append(np.repeat(Dd[keep], nd))
                    res_r.append(np.log(pred / Lobs).ravel())
            curves.append((Dd, Ld, Dg, Lg, lo, hi))
        groups.append((f"N = {N:.3g} ({len(curves)} runs)", curves))
    fig = plots.step_curves(groups, None if target is None else target.tokens, model.progress_,
                            level=BAND_LEVEL if cov is not None else None)
    panels = []
    if res_x:
        panels.append(("step stage (all domains)", np.concatenate(res_x), np.concatenate(res_r),
                       model.progress_, True))
    return fig, panels


def _size_band(N: np.ndarray, y: np.ndarray, alpha: float, se_alpha: float, sigma: float,
               grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relative variance of ``E + A N^-alpha`` on ``grid`` from ``(E, A)`` given ``alpha`` and the
    profiled contribution of ``se_alpha``; returns ``(v_EA, dlogL/dalpha * se_alpha)``."""
    def refit(a: float) -> tuple[np.ndarray, np.ndarray]:
        X = np.stack([np.ones_like(N), N ** (-a)], 1) / y[:, None]   # relative least squares
        coef, *_ = np.linalg.lstsq(X, np.ones_like(N), rcond=None)
        return coef, X

    coef, X = refit(alpha)
    pred = coef[0] + coef[1] * grid ** (-alpha)
    G = np.stack([np.ones_like(grid), grid ** (-alpha)], 1) / pred[:, None]
    C = sigma**2 * np.linalg.pinv(X.T @ X)
    v = np.einsum("tp,pq,tq->t", G, C, G).clip(0)
    if not np.isfinite(se_alpha) or se_alpha <= 0:
        return v, np.zeros_like(grid)
    h = 1e-4 * max(alpha, 1e-3)
    c2, _ = refit(alpha + h)
    p2 = c2[0] + c2[1] * grid ** (-(alpha + h))
    return v, (np.log(p2) - np.log(pred)) / h * se_alpha


def size_figure(model: Any, target: Any) -> tuple[Any, tuple]:
    """Size-curve figure (one panel per mixture, bands) and the size residual panel."""
    s = target.size
    L, ok = model.losses_at_tokens(target.tokens)
    R, w, nd = model.runs_, model.weights_, len(model.domains_)
    wv = _wvec(w, nd)
    index = {lab: m for m, lab in enumerate(model.mixture_labels_)}
    E, A, al = (s.params[k].reshape(-1, nd) for k in ("E", "A", "alpha"))
    se = s.stderr["alpha"].reshape(-1, nd)
    z = norm.ppf(0.5 + BAND_LEVEL / 2)
    curves, rx, rr = [], [], []
    Ng = np.geomspace(R["params"].min(), max(R["params"].max(), target.params), 60)
    for a, lab in enumerate(target.mixture_labels):
        sel = ok & (R["mixture"] == index[lab])
        Nd = R["params"][sel]
        pred = E[a] + A[a] * Nd[:, None] ** (-al[a])
        rx.append(np.repeat(Nd, nd))
        rr.append(np.log(pred / L[sel]).ravel())
        Lg_dom = E[a] + A[a] * Ng[:, None] ** (-al[a])
        Lg = _agg(Lg_dom, w)
        lo = hi = None
        if np.unique(Nd).size >= 3:           # E and A given alpha need ≥ 3 sizes to leave a dof
            var_ea, d_alpha = np.zeros_like(Ng), np.zeros_like(Ng)
            for d in range(nd):
                v, da = _size_band(Nd, L[sel][:, d], al[a, d], se[a, d], s.rmse, Ng)
                var_ea += (wv[d] * Lg_dom[:, d]) ** 2 * v
                d_alpha += wv[d] * Lg_dom[:, d] * da        # one alpha error moves every domain
            sd = np.sqrt(var_ea + d_alpha**2)
            lo, hi = Lg - z * sd, Lg + z * sd
        curves.append((lab, Nd, _agg(L[sel], w), Ng, Lg, lo, hi))
    curves.sort(key=lambda c: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", c[0])])
    fig = plots.size_curves(curves, target.params, level=BAND_LEVEL)
    return fig, ("size stage (all domains)", np.concatenate(rx), np.concatenate(rr), "parameters N",
                 True)
