r"""Uncertainty through the nesting: posterior draws of the target-scale laws and intervals.

Propagation scheme (step -> size -> mixing)
-------------------------------------------
Every stage is sampled with emcee; each stage's posterior-predictive spread is the next stage's
measurement error.

1. **Step stage** (:mod:`mixlaws.posterior`): each run's step law under a Student-t
   likelihood with learned noise, amplitudes integrated out, emcee over the exponent and the
   noise scale (all runs in one emcee run, block by block). Each run's draws of
   ``log L_gd(D*)`` give its predictive covariance ``S_g`` across domains at the target tokens.
   (``step="laplace"``: the Gauss-Newton covariance of the point fit instead,
   :func:`step_predictive_cov`.)
2. **Size stage** (:func:`mixlaws.posterior.sample_size_stage`): ``S_g`` enters as known
   measurement covariance, plus a learned relative scatter ``tau`` (run-to-run noise and
   whatever the step stage misses, e.g. correlated checkpoints) and a learned scale lambda on S_g;
   emcee over the exponents, ``tau`` and lambda with the group laws at their constrained
   profile (physical region, as the point fit; :mod:`mixlaws.posterior`). Each draw gives the mean-law losses
   ``Y^(s)`` of every mixture and domain at ``(N*, D*)``; these keep the strong correlation
   across mixtures that a shared ``alpha`` induces. With ``joint=True`` (default) the errors of
   one run are drawn jointly across its domains (step covariance ``S_g``; the ``tau`` part with
   the cross-domain correlation of the best fit's standardised size-stage residuals): treating
   the domains as independent would shrink the error of a domain aggregate by up to
   ``sqrt(n_domains)``.
3. **Mixing stage** (:mod:`mixlaws.posterior`, default ``mixing="mcmc"``): per domain,
   the covariance across mixtures of the draws ``log Y^(s)`` is the measurement covariance of
   the stage data, the law's own scatter is learned, emcee samples the exponents ``t`` and the
   scatter with ``(c, k)`` integrated out, and ``(c, k)`` are drawn paired with the upstream
   draw ``s`` so that the correlation across domains survives. ``mixing="gn"`` (or ``"refit"``,
   ``"linear"``) instead refits the law to every upstream draw (multiple imputation,
   :mod:`mixlaws.posterior`), a cross-check.

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

from .. import _config  # noqa: F401
from ..errors import ArtifactError, InsufficientDataError, MixlawsError
from ..laws import mixing_params, mixing_theta, power_law_log, size_law, sum_zero_basis
from ._mixing import sample_mixing_stage
from ._mixing_refit import mixing_gn, mixing_refit, mixing_response, own_scatter
from ..errors import ChainWarning
from ..runs._warmup import after_warmup
from ._mcmc import psd_sqrt
from ._size import sample_size_stage
from ._step import sample_step_stage

__all__ = ["PosteriorDraws", "Intervals", "step_predictive", "step_predictive_cov",
           "sample_posterior", "bootstrap_posterior", "predict_intervals", "save_draws",
           "load_draws"]


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
    method : ``"mcmc"`` (every stage sampled), ``"mcmc (step=..., mixing=...)"`` for the
        alternatives, or ``"bootstrap"``; seed : seed of the draws.
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
        keep = after_warmup(t, model.warmup)
        out.append((t[keep], g[cols].to_numpy(float)[keep]))
    return out


def step_predictive(model, runs, tokens: float) -> np.ndarray:
    """Relative predictive variance ``s^2 (n_runs, n_domains)`` of each run's step law at ``D*``.

    Zero for runs without a step law (their loss at ``D*`` is observed). The diagonal of
    :func:`step_predictive_cov`.
    """
    return np.diagonal(step_predictive_cov(model, runs, tokens), axis1=1, axis2=2).copy()


def step_predictive_cov(model, runs, tokens: float | np.ndarray) -> np.ndarray:
    """Relative predictive covariance ``(n_runs, n_domains, n_domains)`` of each run's step law
    at ``D*``, across the run's domains.

    With ``tie_beta="run"`` the shared exponent couples a run's domains (an error in ``beta``
    moves every domain's extrapolation the same way), so the off-diagonal terms matter once the
    domains are aggregated. Zero for runs without a step law.  ``tokens`` may be a 1-D grid:
    the result is then ``(n_runs, n_tokens, n_domains, n_domains)`` (the report's bands).
    """
    n, nd = model.runs_["last_losses"].shape
    grid = np.atleast_1d(np.asarray(tokens, float))
    s2 = np.zeros((n, grid.size, nd, nd))
    if model.step_ is None:
        return s2 if np.ndim(tokens) else s2[:, 0]
    p = model.step_.params
    for j, (t, Y) in enumerate(_checkpoints(model, runs)):
        g = model.step_runs_[j]
        E, B = p["E"][j], p["B"][j]
        beta = np.broadcast_to(p["beta"][j], (nd,)) if np.ndim(p["beta"][j]) else np.full(nd, p["beta"][j])
        nb = nd if np.ndim(p["beta"][j]) else 1

        def jac(logD: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            pw = np.asarray(power_law_log(logD[:, None], 0.0, B, beta))  # (C, nd) power term
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
        _, g1 = jac(np.log(grid))
        g1 = g1[:, :, :P]                                            # (T, nd, P)
        s2[g] = g1 @ cov @ np.swapaxes(g1, 1, 2)
    return s2 if np.ndim(tokens) else s2[:, 0]


def _theta_hat(target, H: np.ndarray) -> np.ndarray:
    p = target.mixing.params
    return mixing_theta(p["c"], p["k"], p["t"], H)


def _noise_corr(size_fit, N: np.ndarray, Y: np.ndarray, V: np.ndarray, W: np.ndarray,
                units: np.ndarray) -> np.ndarray | None:
    """Correlation ``(K, K)`` across a run's domains of the size-stage residuals at the best fit.

    Relative residuals ``y / y_hat - 1`` of each run (one row per run, one column per domain),
    standardised by the working sd ``sqrt(s^2 + rmse^2)``; ``None`` if there are too few runs.
    """
    p = size_fit.params
    pred = np.asarray(size_law(N, p["E"][:, None], p["A"][:, None], p["alpha"][:, None]))
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


def _one_term(model, what: str) -> None:
    terms = int(getattr(model, "mixing_terms", 1))
    if terms != 1:
        raise MixlawsError(f"{what} supports the one-term mixing law c_d + k_d exp(t_d . r) "
                           f"(laws nested, nested-tied), not mixing_terms={terms} "
                           "(nested-sum): its intervals come from its backtests, "
                           "with --law auto")


def sample_posterior(model, runs, params: float, tokens: float, *, n_draws: int = 2000,
                     seed: int = 0, max_steps: int = 20000, step: str = "mcmc",
                     mixing: str = "mcmc", joint: bool = True) -> PosteriorDraws:
    """MCMC posterior of the nested laws at ``(params, tokens)`` (see the module docstring).

    ``step="mcmc"`` (default) samples every run's step law with emcee
    (:mod:`mixlaws.posterior`); ``"laplace"`` uses the Gauss-Newton covariance of the
    point fit instead (faster; on the RedPajama sweep its predictive sd is within a factor
    0.55-1.4 of the sampled one for 80 % of the runs, and it misses bimodal exponents).
    ``mixing="mcmc"`` (default) samples the mixing laws with emcee, the upstream draws
    entering as measurement covariance (:mod:`mixlaws.posterior`); ``"gn"``,
    ``"refit"`` and ``"linear"`` refit the law to every upstream draw instead
    (:mod:`mixlaws.posterior`, multiple imputation). ``joint=False`` treats the domains of
    a run as independent in the size stage (for comparison).
    """
    if model.implicit is not None:
        raise MixlawsError("posterior sampling supports explicit (or mean) aggregation only; "
                           "refit without --implicit, or use --bootstrap")
    _one_term(model, "posterior sampling")
    if runs.data[runs.loss_columns].isna().to_numpy().any():  # nan_policy="omit"
        raise MixlawsError(f"{runs.path}: posterior sampling does not handle missing loss cells "
                           "yet (--nan-policy omit); fill or drop the gaps to sample")
    target = model.target(params, tokens)
    M, nd = len(model.sources_), len(model.domains_)
    H = sum_zero_basis(M)
    L_at, ok = model.losses_at_tokens(tokens)
    diags: list[dict] = []
    if step == "mcmc":
        c2_run = np.zeros((len(model.runs_["run"]), nd, nd))
        if model.step_ is not None:
            sp = sample_step_stage([model.runs_["run"][i] for i in model.step_runs_],
                                   _checkpoints(model, runs), model.step_.params["beta"],
                                   model.tie_beta, tokens, seed=seed)
            c2_run[model.step_runs_] = sp.cov
            diags.append(sp.diagnostics.to_dict())
    elif step == "laplace":
        c2_run = step_predictive_cov(model, runs, tokens)
    else:
        raise MixlawsError(f"step must be 'mcmc' or 'laplace', not {step!r}")
    s2_run = np.diagonal(c2_run, axis1=1, axis2=2)
    R = model.runs_
    used = [model.mixture_labels_.index(lab) for lab in target.mixture_labels]
    rng = np.random.default_rng([seed, 3])
    Yhat = target.stage_losses
    if target.size is None:
        Y = np.stack([Yhat] * n_draws)
        for a, m in enumerate(used):      # mean of the mixture's runs: covariance / count
            sel = ok & (R["mixture"] == m)
            Ls = psd_sqrt(c2_run[sel].mean(0) / sel.sum())
            Y[:, a] *= np.exp(rng.standard_normal((n_draws, nd)) @ Ls.T)
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
    dlog = np.log(np.maximum(Y, 1e-12)) - np.log(Yhat)[None]         # (S, n, nd)
    if mixing == "mcmc":
        mp = sample_mixing_stage(RH, Yhat, dlog, th, seed=seed, labels=tuple(model.domains_),
                                 max_steps=max_steps, min_ess=min(n_draws, 1000))
        diags.extend(ch.diagnostics.to_dict() for ch in mp.chains)
        short = [ch.diagnostics.name for ch in mp.chains if not ch.diagnostics.converged]
        if short:
            warnings.warn(f"mixing stage: {len(short)} of {len(mp.chains)} chains are shorter than "
                          f"50 autocorrelation times ({', '.join(short[:3])}); raise max_steps",
                          ChainWarning, stacklevel=2)
        theta, sig = mp.theta, mp.sigma
    elif mixing in ("gn", "linear", "refit"):
        resp = mixing_response(RH, th)                               # (nd, P, n)
        if mixing == "refit":
            theta, sig = mixing_refit(RH, Yhat, th, resp, Y, dlog, rng, model.delta)
        else:
            sig = own_scatter(RH, Yhat, th, resp, dlog)
            z = sig[None, None] * rng.standard_normal(dlog.shape)
            theta = th[None] + np.einsum("dpn,snd->sdp", resp, dlog + z)
            if mixing == "gn":
                theta = mixing_gn(RH, theta, np.log(Yhat)[None] + dlog + z, model.delta)
            sig = np.broadcast_to(sig, (n_draws, nd))
    else:
        raise MixlawsError(f"mixing must be 'mcmc', 'gn', 'linear' or 'refit', not {mixing!r}")
    if tau is None:
        tau = np.median(sig, axis=1)
    weights = np.full(nd, 1.0 / nd) if model.weights_ is None else np.asarray(model.weights_)
    return PosteriorDraws(params=float(params), tokens=float(tokens), sources=tuple(model.sources_),
                          domains=tuple(model.domains_), weights=weights,
                          **mixing_params(theta, H), run_noise=np.asarray(tau),
                          method=("mcmc" if (step, mixing) == ("mcmc", "mcmc")
                                  else f"mcmc (step={step}, mixing={mixing})"),
                          seed=int(seed), diagnostics=tuple(diags))


def bootstrap_posterior(model, runs, params: float, tokens: float, *, n_boot: int = 200,
                        seed: int = 0) -> PosteriorDraws:
    """Bootstrap over runs: resample runs with replacement within each model size, refit.

    Each replicate refits the step, size and mixing stages with ``model``'s settings and
    contributes its per-domain mixing laws as one draw; the run noise is the size stage's
    residual rmse of the point fit. Replicates that cannot be fitted (too few mixtures
    left) are skipped; a warning says how many.
    """
    from ..fit import NestedMixingLaw

    if model.implicit is not None:
        raise MixlawsError("the bootstrap supports explicit (or mean) aggregation only")
    _one_term(model, "the bootstrap")
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
