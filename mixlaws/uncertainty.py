r"""Uncertainty through the nesting: posterior draws of the target-scale laws and intervals.

Propagation scheme (step -> size -> mixing)
-------------------------------------------
1. **Step stage** (thousands of parameters, each run's law well identified by
   its checkpoints): Laplace / Gauss-Newton. For run ``g`` and domain ``d`` the
   predictive relative variance of the mean law at ``D*`` is
   ``s_gd^2 = grad log f(D*)^T  sigma_g^2 (J_g^T J_g)^{-1}  grad log f(D*)`` with
   ``J_g`` the Jacobian of the log-residuals in ``(E_d, log B_d, log beta)`` and
   ``sigma_g^2`` the run's residual variance (with ``tie_beta="all"`` the shared
   exponent, pinned by every run of the sweep, is held fixed).
2. **Size stage**: ``s_gd^2`` enters as known measurement variance, plus a
   learned relative scatter ``tau`` (run-to-run noise and whatever the step
   Laplace step misses, e.g. correlated checkpoints); emcee over the exponents and
   ``tau`` with the group amplitudes integrated out exactly
   (:func:`mixlaws.posterior.sample_size_stage`). Each draw gives the mean-law
   losses ``Y^(s)`` of every mixture and domain at ``(N*, D*)``: these draws keep
   the strong correlation across mixtures that a shared ``alpha`` induces, which
   a per-point "measurement error" would lose. With ``joint=True`` (default) the
   errors of one run are drawn jointly across its domains when the group
   amplitudes are drawn: the step-stage part from the run's full Gauss-Newton
   covariance across domains (:func:`step_predictive_cov`; with ``tie_beta="run"``
   the shared ``beta`` couples them), the ``tau`` part with the cross-domain
   correlation of the best fit's standardised size-stage residuals. Treating the
   domains as independent would shrink the error of a domain aggregate by up to
   ``sqrt(n_domains)``.
3. **Mixing stage** (default ``mixing="gn"``): the robust mixing fit is
   repeated on every upstream draw ``Y^(s)`` (multiple imputation), by batched
   damped Gauss-Newton/IRLS on the same Huber loss in numpy, started at the
   linearised solution ``theta_hat + J^+ d log Y^(s)`` (``J`` the exact Jacobian of the
   log-residuals at the best fit). ``mixing="refit"`` does the same with the
   general bounded LM solver warm-started at the best fit (exact but ~30x slower on
   a 22-domain table); ``mixing="linear"`` stops at the linearisation (fastest, but
   biased when the draws move along the ``c``-``k`` ridge: not recommended). The
   mixing law's own scatter is added only as the *excess* residual variance the
   upstream draws do not explain (else upstream noise would be counted twice). A
   linearised MCMC alternative (``mixing="mcmc"``: emcee per domain with a Student-t
   likelihood and learned scale, composed with the draws by ``J^+ (log Y^(s) - log
   Y_hat)``) is available but slow and fragile: the ``c``-``k`` ridge of the mixing
   law gives autocorrelation times of hundreds of steps and the linear response
   over-shoots along that ridge (measured: upward-biased, too wide intervals).

The result is a :class:`PosteriorDraws` of the per-domain mixing laws at the
target, from which intervals of the mean law (epistemic) and of a new run
(epistemic + run-to-run noise ``tau``, taken fully correlated across domains,
which is conservative) follow. :func:`bootstrap_posterior` is the cross-check:
it resamples *runs* (stratified by model size), refits the whole nesting and
keeps each replicate's mixing laws as one draw.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np

from . import _config  # noqa: F401
from .errors import ArtifactError, InsufficientDataError, MixlawsError
from .laws import sum_zero_basis
from .posterior import ChainWarning, sample_mixing_stage, sample_size_stage

__all__ = ["PosteriorDraws", "Intervals", "step_predictive", "step_predictive_cov",
           "sample_posterior",
           "bootstrap_posterior", "predict_intervals", "save_draws", "load_draws"]


@dataclass(frozen=True, eq=False)
class PosteriorDraws:
    """Draws of the per-domain mixing laws at one target scale.

    Attributes
    ----------
    params, tokens : target ``N*``, ``D*``.
    sources, domains : names; weights : ``(n_domains,)`` aggregation weights.
    c, k : ``(S, n_domains)``; t : ``(S, n_domains, M)`` — draw ``s`` of
        ``L_d(r) = c_d + k_d exp(t_d . r)``.
    run_noise : ``(S,)`` relative run-to-run noise ``tau`` for new-run intervals.
    method : ``"mcmc"`` or ``"bootstrap"``; seed : seed of the draws.
    diagnostics : JSON-ready chain diagnostics (empty for the bootstrap).
    """

    params: float
    tokens: float
    sources: tuple[str, ...]
    domains: tuple[str, ...]
    weights: np.ndarray
    c: np.ndarray
    k: np.ndarray
    t: np.ndarray
    run_noise: np.ndarray
    method: str
    seed: int
    diagnostics: tuple[dict, ...] = ()

    @property
    def n_draws(self) -> int:
        """Number of draws ``S``."""
        return int(self.c.shape[0])

    def domain_draws(self, r: Any) -> Any:
        """Per-domain losses ``(S, ..., n_domains)`` of mixtures ``r (..., M)`` (JAX-traceable)."""
        r = jnp.asarray(r)
        lin = jnp.einsum("...j,sdj->s...d", r, jnp.asarray(self.t))
        ex = (1,) * (r.ndim - 1)
        c = jnp.asarray(self.c).reshape((self.n_draws,) + ex + (-1,))
        k = jnp.asarray(self.k).reshape((self.n_draws,) + ex + (-1,))
        return c + k * jnp.exp(lin)

    def loss_draws(self, r: Any) -> Any:
        """Aggregate losses ``(S, ...)`` of mixtures ``r (..., M)`` (JAX-traceable)."""
        return self.domain_draws(r) @ jnp.asarray(self.weights)


@dataclass(frozen=True)
class Intervals:
    """Central ``level`` intervals of predicted losses (see :func:`predict_intervals`).

    ``loss`` is the posterior mean; ``lower/upper`` bound the mean law (epistemic);
    ``new_lower/new_upper`` bound the loss of a new run (epistemic + run-to-run noise).
    Aggregate arrays are ``(n,)``; ``domain_*`` arrays ``(n, n_domains)``.
    """

    level: float
    loss: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    new_lower: np.ndarray
    new_upper: np.ndarray
    domain_loss: np.ndarray
    domain_lower: np.ndarray
    domain_upper: np.ndarray
    domain_new_lower: np.ndarray
    domain_new_upper: np.ndarray


def predict_intervals(draws: PosteriorDraws, mixtures: np.ndarray, level: float = 0.9,
                      *, seed: int = 0) -> Intervals:
    """Posterior mean and central intervals ``[q_{(1-level)/2}, q_{(1+level)/2}]`` of the draws.

    New-run draws are ``L^(s) (1 + tau^(s) z^(s))`` with one ``z ~ N(0, 1)`` per draw and
    mixture, shared by the domains.
    """
    if not 0.0 < level < 1.0:
        raise MixlawsError(f"--level must be in (0, 1), e.g. 0.9; got {level}")
    r = np.atleast_2d(np.asarray(mixtures, float))
    dom = np.asarray(draws.domain_draws(r))                    # (S, n, nd)
    agg = dom @ draws.weights
    z = np.random.default_rng([seed, 7]).standard_normal(agg.shape)
    f = 1.0 + draws.run_noise[:, None] * z
    q = [(1 - level) / 2, (1 + level) / 2]
    a_lo, a_hi = np.quantile(agg, q, axis=0)
    n_lo, n_hi = np.quantile(agg * f, q, axis=0)
    d_lo, d_hi = np.quantile(dom, q, axis=0)
    dn_lo, dn_hi = np.quantile(dom * f[..., None], q, axis=0)
    return Intervals(level=level, loss=agg.mean(0), lower=a_lo, upper=a_hi, new_lower=n_lo,
                     new_upper=n_hi, domain_loss=dom.mean(0), domain_lower=d_lo,
                     domain_upper=d_hi, domain_new_lower=dn_lo, domain_new_upper=dn_hi)


def _checkpoints(model, runs) -> list[tuple[np.ndarray, np.ndarray]]:
    """Post-warm-up (tokens, losses) of each run that has a step law, as in ``model.fit``."""
    cols = [f"loss:{d}" for d in model.domains_]
    by_run = {str(r): g for r, g in runs.data.groupby("run", sort=False)}
    out = []
    for i in model.step_runs_:
        g = by_run[model.runs_["run"][i]]
        t = g["tokens"].to_numpy(float)
        keep = t >= model.warmup * t[-1]
        out.append((t[keep], g[cols].to_numpy(float)[keep]))
    return out


def step_predictive(model, runs, tokens: float) -> np.ndarray:
    """Relative predictive variance ``s^2 (n_runs, n_domains)`` of each run's step law at ``D*``.

    Zero for runs without a step law (their loss at ``D*`` is observed). The diagonal of
    :func:`step_predictive_cov`.
    """
    return np.diagonal(step_predictive_cov(model, runs, tokens), axis1=1, axis2=2).copy()


def step_predictive_cov(model, runs, tokens: float) -> np.ndarray:
    """Relative predictive covariance ``(n_runs, n_domains, n_domains)`` of each run's step law
    at ``D*``, across the run's domains.

    With ``tie_beta="run"`` the shared exponent couples a run's domains (an error in ``beta``
    moves every domain's extrapolation the same way), so the off-diagonal terms matter once the
    domains are aggregated. Zero for runs without a step law.
    """
    n, nd = model.runs_["last_losses"].shape
    s2 = np.zeros((n, nd, nd))
    if model.step_ is None:
        return s2
    p = model.step_.params
    for j, (t, Y) in enumerate(_checkpoints(model, runs)):
        g = model.step_runs_[j]
        E, B = p["E"][j], p["B"][j]
        beta = np.broadcast_to(p["beta"][j], (nd,)) if np.ndim(p["beta"][j]) else np.full(nd, p["beta"][j])
        nb = nd if np.ndim(p["beta"][j]) else 1

        def jac(logD: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            pw = B * np.exp(-beta * logD[:, None])                  # (C, nd)
            f = E + pw
            Jc = np.zeros((logD.size, nd, 2 * nd + nb))
            idx = np.arange(nd)
            Jc[:, idx, idx] = 1.0 / f
            Jc[:, idx, nd + idx] = pw / f
            Jb = -beta * logD[:, None] * pw / f
            if nb == 1:
                Jc[:, :, 2 * nd] = Jb
            else:
                Jc[:, idx, 2 * nd + idx] = Jb
            return f, Jc

        f, J = jac(np.log(t))
        r = (np.log(f) - np.log(Y)).ravel()
        J = J.reshape(-1, 2 * nd + nb)
        if model.tie_beta == "all":      # beta shared by every run: pinned by the whole sweep
            J = J[:, :2 * nd]
        P = J.shape[1]
        sigma2 = float(r @ r) / max(r.size - P, 1)
        cov = sigma2 * np.linalg.pinv(J.T @ J, hermitian=True)
        _, g1 = jac(np.array([np.log(tokens)]))
        g1 = g1[0][:, :P]                                            # (nd, P)
        s2[g] = g1 @ cov @ g1.T
    return s2


def _theta_hat(target, H: np.ndarray) -> np.ndarray:
    p = target.mixing.params
    return np.concatenate([p["c"][:, None], np.log(p["k"])[:, None], p["t"] @ H], 1)


def _mixing_response(RH: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Gauss-Newton pseudo-inverse ``(nd, P, n)`` of d log f / d theta per domain."""
    e = np.exp(theta[:, 1:2] + theta[:, 2:] @ RH.T)                 # (nd, n)
    f = theta[:, :1] + e
    J = np.concatenate([(1 / f)[..., None], (e / f)[..., None], (e / f)[..., None] * RH[None]], 2)
    return np.linalg.pinv(J)


def _own_scatter(RH: np.ndarray, Yhat: np.ndarray, th: np.ndarray, resp: np.ndarray,
                 dlog: np.ndarray) -> np.ndarray:
    """Excess log-scatter ``(nd,)`` of the mixing law not explained by the upstream draws."""
    n, P = RH.shape[0], th.shape[1]
    e = np.exp(th[:, 1:2] + th[:, 2:] @ RH.T)
    f = th[:, :1] + e
    r = np.log(f) - np.log(Yhat.T)                                   # (nd, n)
    dof = max(n - P, 1)
    s2 = (r * r).sum(1) / dof
    J = np.concatenate([(1 / f)[..., None], (e / f)[..., None], (e / f)[..., None] * RH[None]], 2)
    proj = np.eye(n)[None] - np.einsum("dnp,dpm->dnm", J, resp)      # residual projector
    up = np.einsum("dnm,smd->snd", proj, dlog)
    s2_up = (up * up).sum(1).mean(0) / dof
    return np.sqrt(np.maximum(s2 - s2_up, 0.0))


def _mixing_gn(RH: np.ndarray, theta: np.ndarray, logy: np.ndarray, delta: float,
               n_iter: int = 25, chunk: int = 250) -> np.ndarray:
    """Refit the mixing law to every draw ``logy (S, n, nd)``: batched damped Gauss-Newton
    (IRLS) on the same Huber loss (threshold ``delta``) as the point fit, in numpy.

    Starts from the linearised draws ``theta (S, nd, P)``; ``c`` is kept in
    ``[0, 0.999 min y]``; a step is kept only if it lowers that draw's loss.
    """
    out = theta.copy()
    ly = np.moveaxis(logy, 2, 1)                                       # (S, nd, n)
    cmax = 0.999 * np.exp(ly.min(2))

    def resid(th, ly_):
        e = np.exp(np.clip(th[..., 1:2] + th[..., 2:] @ RH.T, -700, 700))
        f = th[..., :1] + e
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log(f) - ly_, e, f

    for i in range(0, theta.shape[0], chunk):
        th, ly_ = theta[i:i + chunk].copy(), ly[i:i + chunk]
        th[..., 0] = np.clip(th[..., 0], 0.0, cmax[i:i + chunk])
        def loss(r_):
            a = np.abs(r_) / delta
            h = np.where(a <= 1.0, 0.5 * a * a, a - 0.5).sum(-1)
            return np.where(np.isfinite(h), h, np.inf)

        r, e, f = resid(th, ly_)
        cost = loss(r)
        lam = np.full(cost.shape, 1e-3)
        for _ in range(n_iter):
            J = np.concatenate([(1 / f)[..., None], (e / f)[..., None],
                                (e / f)[..., None] * RH], -1)           # (s, nd, n, P)
            om = np.minimum(1.0, delta / np.maximum(np.abs(np.nan_to_num(r)), 1e-300))
            A = np.einsum("sdnp,sdn,sdnq->sdpq", J, om, J)
            g = np.einsum("sdnp,sdn->sdp", J, om * np.nan_to_num(r))
            A = A + lam[..., None, None] * np.diagonal(A, axis1=-2, axis2=-1)[..., None] \
                * np.eye(A.shape[-1])
            step = -np.linalg.solve(A, g[..., None])[..., 0]
            new = th + step
            new[..., 0] = np.clip(new[..., 0], 0.0, cmax[i:i + chunk])
            r2, e2, f2 = resid(new, ly_)
            c2 = loss(r2)
            acc = c2 < cost
            th = np.where(acc[..., None], new, th)
            r = np.where(acc[..., None], r2, r)
            e = np.where(acc[..., None], e2, e)
            f = np.where(acc[..., None], f2, f)
            cost = np.where(acc, c2, cost)
            lam = np.where(acc, lam * 0.3, lam * 10)
        out[i:i + chunk] = th
    return out


def _noise_corr(size_fit, N: np.ndarray, Y: np.ndarray, V: np.ndarray, W: np.ndarray,
                units: np.ndarray) -> np.ndarray | None:
    """Correlation ``(K, K)`` across a run's domains of the size-stage residuals at the best fit.

    Relative residuals ``y / y_hat - 1`` of each run (one row per run, one column per domain),
    standardised by the working sd ``sqrt(s^2 + rmse^2)``; ``None`` if there are too few runs.
    """
    p = size_fit.params
    pred = p["E"][:, None] + p["A"][:, None] * np.exp(-p["alpha"][:, None] * np.log(N))
    r = (Y / pred - 1) / np.sqrt(V + size_fit.rmse**2 + 1e-300)
    U, K = units.shape
    ru = np.moveaxis(r[units], 1, 2).reshape(-1, K)                  # (U * S, K)
    wu = np.moveaxis(W[units], 1, 2).reshape(-1, K).min(1) > 0
    ru = ru[wu]
    if K == 1 or ru.shape[0] < 3:
        return None
    C = ru.T @ ru                               # residuals have mean ~0 by the fit
    d = np.sqrt(np.maximum(np.diag(C), 1e-300))
    return np.clip(C / d[:, None] / d[None], -1.0, 1.0)


def _mixing_refit(RH: np.ndarray, Yhat: np.ndarray, th: np.ndarray, resp: np.ndarray,
                  Y: np.ndarray, dlog: np.ndarray, rng: np.random.Generator,
                  delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Refit the mixing law to every upstream draw plus its own excess noise.

    The mixing law's own scatter is the part of its residual variance that the
    upstream draws do not explain: ``sigma_own^2 = max(0, sigma_hat^2 - E|(I - J J^+)
    dlog|^2 / (n - P))``; each draw's data are ``Y^(s) exp(sigma_own z)`` and the law is
    refitted (warm-started at the best fit, all draws and domains in one batch).
    Returns ``theta (S, nd, P)`` and ``sigma_own`` broadcast to ``(S, nd)``.
    """
    from .fitting import solve_groups
    from .stages import _mixing_residual

    S, n, nd = Y.shape
    P = th.shape[1]
    sig = _own_scatter(RH, Yhat, th, resp, dlog)
    data_y = (Y * np.exp(sig[None, None] * rng.standard_normal(Y.shape)))
    G = S * nd
    ys = np.moveaxis(data_y, 2, 1).reshape(G, n)
    ymin, ymax = ys.min(1), ys.max(1)
    bounds = np.zeros((G, P, 2))
    bounds[:, 0] = np.stack([np.zeros(G), ymin], -1)
    bounds[:, 1] = np.stack([np.full(G, -30.0), np.log(10 * ymax)], -1)
    bounds[:, 2:] = [-50.0, 50.0]
    start = np.broadcast_to(th[None], (S, nd, P)).reshape(1, G, P).copy()
    start[0, :, 0] = np.minimum(start[0, :, 0], 0.999 * ymin)
    data = (jnp.broadcast_to(jnp.asarray(RH), (G,) + RH.shape), jnp.asarray(ys))
    sol = solve_groups(_mixing_residual, data, np.ones((G, n)), bounds, start, delta=delta,
                       max_iter=300)
    return sol.theta.reshape(S, nd, P), np.broadcast_to(sig, (S, nd))


def sample_posterior(model, runs, params: float, tokens: float, *, n_draws: int = 2000,
                     seed: int = 0, max_steps: int = 20000,
                     mixing: str = "gn", joint: bool = True) -> PosteriorDraws:
    """MCMC posterior of the nested laws at ``(params, tokens)`` (see the module docstring).

    ``mixing="gn"`` (default) refits the mixing law to every upstream draw (plus its own
    excess noise) by batched Gauss-Newton/IRLS from the linearised solution; ``"refit"`` does
    it with the bounded LM solver (exact, slow); ``"linear"`` keeps the linearisation;
    ``"mcmc"`` samples it with emcee per domain (slow: the ``c``-``k`` ridge of the mixing law
    gives autocorrelation times of hundreds of steps). ``joint=False`` treats the domains of
    a run as independent in the size stage (the pre-0.x behaviour, for comparison).
    """
    if model.implicit is not None:
        raise MixlawsError("posterior sampling supports explicit (or mean) aggregation only; "
                           "refit without --implicit, or use --bootstrap")
    target = model.target(params, tokens)
    M, nd = len(model.sources_), len(model.domains_)
    H = sum_zero_basis(M)
    L_at, ok = model._losses_at_tokens(tokens)
    c2_run = step_predictive_cov(model, runs, tokens)
    s2_run = np.diagonal(c2_run, axis1=1, axis2=2)
    R = model.runs_
    used = [model.mixture_labels_.index(lab) for lab in target.mixture_labels]
    diags: list[dict] = []
    rng = np.random.default_rng([seed, 3])
    Yhat = target.stage_losses
    if target.size is None:
        Y = np.stack([Yhat] * n_draws)
        for a, m in enumerate(used):
            sel = ok & (R["mixture"] == m)
            sd = np.sqrt(s2_run[sel].mean(0) / sel.sum())
            Y[:, a] *= np.exp(sd * rng.standard_normal((n_draws, nd)))
        tau = None
    else:
        if model.tie_alpha == "none":
            raise MixlawsError("posterior sampling needs a tied size exponent (--tie-alpha all "
                               "or domain); use --bootstrap with --tie-alpha none")
        S = max(int((ok & (R["mixture"] == m)).sum()) for m in used)
        G = len(used) * nd
        N, Yd, V, W = np.ones((G, S)), np.ones((G, S)), np.zeros((G, S)), np.zeros((G, S))
        block = np.zeros(G, int)
        Cu = np.zeros((len(used), S, nd, nd))          # per-run step covariance across domains
        for a, m in enumerate(used):
            sel = np.flatnonzero(ok & (R["mixture"] == m))
            Cu[a, :sel.size] = c2_run[sel]
            for d in range(nd):
                g = a * nd + d
                N[g, :sel.size], Yd[g, :sel.size] = R["params"][sel], L_at[sel, d]
                V[g, :sel.size], W[g, :sel.size] = s2_run[sel, d], 1.0
                block[g] = d if model.tie_alpha == "domain" else 0
        units = np.arange(G).reshape(len(used), nd)
        corr = _noise_corr(target.size, N, Yd, V, W, units) if joint else None
        logN = np.log(N)
        ref = float((logN * W).sum() / W.sum())
        alpha = target.size.params["alpha"]
        a_hat = np.array([alpha[block == b][0] for b in range(block.max() + 1)])
        Yg, tau, chain = sample_size_stage(np.where(W > 0, logN - ref, 0.0), Yd, V, W, block,
                                           a_hat, float(np.log(params) - ref), n_draws,
                                           seed=seed, max_steps=max_steps,
                                           units=units if joint else None,
                                           step_cov=Cu if joint else None, noise_corr=corr)
        diags.append(chain.diagnostics.to_dict())
        Y = Yg.reshape(n_draws, len(used), nd)
    RH = target.mixtures @ H
    th = _theta_hat(target, H)
    resp = _mixing_response(RH, th)                                  # (nd, P, n)
    dlog = np.log(np.maximum(Y, 1e-12)) - np.log(Yhat)[None]         # (S, n, nd)
    if mixing == "mcmc":
        th_full, chains = sample_mixing_stage(RH, Yhat, th, n_draws, seed=seed,
                                              max_steps=max_steps)
        diags.extend(ch.diagnostics.to_dict() for ch in chains)
        theta = th_full[..., :-1] + np.einsum("dpn,snd->sdp", resp, dlog)
        sig = np.exp(th_full[..., -1])
    elif mixing == "refit":
        theta, sig = _mixing_refit(RH, Yhat, th, resp, Y, dlog, rng, model.delta)
    elif mixing in ("gn", "linear"):
        sig = _own_scatter(RH, Yhat, th, resp, dlog)
        z = sig[None, None] * rng.standard_normal(dlog.shape)
        theta = th[None] + np.einsum("dpn,snd->sdp", resp, dlog + z)
        if mixing == "gn":
            theta = _mixing_gn(RH, theta, np.log(Yhat)[None] + dlog + z, model.delta)
        sig = np.broadcast_to(sig, (n_draws, nd))
    else:
        raise MixlawsError(f"mixing must be 'gn', 'linear', 'refit' or 'mcmc', not {mixing!r}")
    if tau is None:
        tau = np.median(sig, axis=1)
    weights = np.full(nd, 1.0 / nd) if model.weights_ is None else np.asarray(model.weights_)
    return PosteriorDraws(params=float(params), tokens=float(tokens), sources=tuple(model.sources_),
                          domains=tuple(model.domains_), weights=weights, c=theta[..., 0],
                          k=np.exp(theta[..., 1]), t=theta[..., 2:] @ H.T, run_noise=np.asarray(tau),
                          method="mcmc", seed=int(seed), diagnostics=tuple(diags))


def bootstrap_posterior(model, runs, params: float, tokens: float, *, n_boot: int = 200,
                        seed: int = 0) -> PosteriorDraws:
    """Bootstrap over runs: resample runs with replacement within each model size, refit.

    Each replicate refits the step, size and mixing stages with ``model``'s settings and
    contributes its per-domain mixing laws as one draw; the run noise is the size stage's
    residual rmse of the point fit. Replicates that cannot be fitted (too few mixtures
    left) are skipped; a warning says how many.
    """
    from .nested import NestedMixingLaw

    if model.implicit is not None:
        raise MixlawsError("the bootstrap supports explicit (or mean) aggregation only")
    target = model.target(params, tokens)
    rng = np.random.default_rng([seed, 4])
    df = runs.data
    first = df.groupby("run", sort=False).head(1)
    ids = first["run"].astype(str).to_numpy()
    size = first["params"].to_numpy(float)
    groups = {r: g for r, g in df.groupby("run", sort=False)}
    cs, ks, ts, skipped = [], [], [], 0
    for _ in range(n_boot):
        parts = []
        for n in np.unique(size):
            pool = ids[size == n]
            for j, r in enumerate(rng.choice(pool, pool.size, replace=True)):
                parts.append(groups[r].assign(run=f"{r}#b{j}"))
        import pandas as pd
        rep = dataclasses.replace(runs, data=pd.concat(parts, ignore_index=True))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                m = NestedMixingLaw(**model.get_params()).fit(rep)
                p = m.target(params, tokens).mixing.params
            except (InsufficientDataError, MixlawsError):
                skipped += 1
                continue
        cs.append(p["c"]), ks.append(p["k"]), ts.append(p["t"])
    if len(cs) < 2:
        raise InsufficientDataError("bootstrap: fewer than 2 replicates could be fitted",
                                    needed=2, found=len(cs))
    if skipped:
        warnings.warn(f"bootstrap: {skipped} of {n_boot} replicates could not be fitted and were "
                      f"skipped", ChainWarning, stacklevel=2)
    nd = len(model.domains_)
    tau = target.size.rmse if target.size is not None else target.mixing.rmse
    weights = np.full(nd, 1.0 / nd) if model.weights_ is None else np.asarray(model.weights_)
    return PosteriorDraws(params=float(params), tokens=float(tokens), sources=tuple(model.sources_),
                          domains=tuple(model.domains_), weights=weights, c=np.array(cs),
                          k=np.array(ks), t=np.array(ts), run_noise=np.full(len(cs), tau),
                          method="bootstrap", seed=int(seed))


_ARRAYS = ("weights", "c", "k", "t", "run_noise")


def save_draws(draws: PosteriorDraws, path: str | os.PathLike) -> None:
    """Write the draws as a compressed ``.npz`` sidecar (bit-exact float64)."""
    meta = {"kind": "mixlaws.posterior", "params": draws.params, "tokens": draws.tokens,
            "sources": list(draws.sources), "domains": list(draws.domains),
            "method": draws.method, "seed": draws.seed, "diagnostics": list(draws.diagnostics)}
    with open(path, "wb") as f:
        np.savez_compressed(f, meta=np.array(json.dumps(meta)),
                            **{a: getattr(draws, a) for a in _ARRAYS})


def load_draws(path: str | os.PathLike) -> PosteriorDraws:
    """Read draws written by :func:`save_draws`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {a: np.asarray(z[a]) for a in _ARRAYS}
    except FileNotFoundError:
        raise ArtifactError(f"{path}: posterior file not found; run `mixlaws sample` again",
                            path=str(path)) from None
    except (OSError, KeyError, ValueError) as exc:
        raise ArtifactError(f"{path} is not a mixlaws posterior file ({exc}); run `mixlaws "
                            f"sample` again", path=str(path)) from None
    return PosteriorDraws(params=meta["params"], tokens=meta["tokens"],
                          sources=tuple(meta["sources"]), domains=tuple(meta["domains"]),
                          method=meta["method"], seed=meta["seed"],
                          diagnostics=tuple(meta["diagnostics"]), **arrays)
