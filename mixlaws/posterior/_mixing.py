r"""emcee posterior of the mixing law of every domain, with the upstream stages as measurement error.

At the target scale the stage data are the size stage's predictions ``y_md`` for each observed
mixture ``r_m`` and domain ``d``; their posterior draws ``Y^(s)`` (from the step and size stages)
have relative deviations ``delta^(s)_md = log Y^(s)_md - log y_md`` with covariance ``C_d`` across
mixtures (strongly correlated: every mixture shares the size exponent). Per domain:

.. math::

    y_{md} = c_d + k_d\, e^{t_d \cdot r_m} + y_{md}\,\varepsilon_{md}, \qquad
    \varepsilon_{\cdot d} \sim N(0,\; C_d + \sigma_d^2 I), \qquad t_d = H u_d,

so the previous stages enter as known measurement covariance and ``sigma_d`` is the mixing
law's own scatter (misfit and whatever the upstream draws miss), learned. The amplitudes
``(c_d, k_d)`` are integrated out exactly (:func:`mixlaws.posterior.gaussian_marginal`, with the
physical truncation ``0 < c_d < min_m y_md``, ``k_d > 0`` through
:func:`~mixlaws.posterior.log_box_probability`) and emcee samples ``(u_d, log sigma_d)``: the
``c``–``k`` ridge that makes an ensemble over ``(c, log k, u)`` crawl is gone. The domains are
independent given the data, so one emcee run samples all of them
(:class:`~mixlaws.posterior.BlockStretchMove`).

Priors: ``u ~ N(0, 10^2)`` per coordinate (mixture effects of order one in log-loss per unit of
proportion); ``sigma ~ half-Cauchy(0, 0.01)`` truncated to ``(1e-6, 0.5)`` (a scale that may be
zero: with a log-uniform prior the chain wanders down to the lower bound whenever the upstream
covariance explains the residuals, which both slows it and makes the bound matter; Gelman
2006); on ``(c, k)`` the invariant conditional prior
``det(X^T D^{-2} X)^{1/2}`` (:func:`~mixlaws.posterior.log_invariant_prior`; a flat one would pull
``t`` to 0, where the columns ``1`` and ``exp(t . r)`` become collinear) inside the physical
region.
A Gaussian likelihood here (Student-t for the raw checkpoints of the step stage): the stage data
are fitted values, not checkpoints, and their errors are the upstream draws themselves.

Coupling across domains. Given ``(u_d, sigma_d)`` the amplitudes are drawn as
``a^(s)_d = a_hat_d + K_d (y_d ⊙ (delta^(s)_d + sigma_d z^(s)_d))`` with ``K_d`` the generalised
least-squares gain. Marginally this is exactly their conditional Gaussian
``N(a_hat_d, (X^T Sigma^{-1} X)^{-1})``; using the *same* upstream draw ``s`` for every domain keeps
the correlation across domains that the shared size exponent induces (the aggregate loss's
interval would otherwise be too narrow by up to ``sqrt(n_domains)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .. import _config  # noqa: F401
from ..laws import mixing_terms
from ..laws._priors import EFFECT_PRIOR_SD as U_PRIOR_SD
from ..laws._priors import SCATTER_LOG_SIGMA as _LOG_SIGMA
from ..laws._priors import SCATTER_SCALE as SIGMA_SCALE
from ._moves import run_blocks
from ._marginal import gaussian_marginal, log_box_probability, log_invariant_prior
from ._mcmc import Chain

__all__ = ["MixingPosterior", "mixing_log_prob", "sample_mixing_stage"]

_FULL_COV_MAX = 400       # above this many mixtures, the upstream covariance is taken diagonal


@dataclass(frozen=True)
class MixingPosterior:
    """Draws of the per-domain mixing laws: ``theta (S, nd, P)`` as ``(c, log k, u)``,
    ``sigma (S, nd)`` own scatter, one chain per domain, unphysical-draw count."""

    theta: np.ndarray
    sigma: np.ndarray
    chains: tuple[Chain, ...]
    unphysical: int


def _design(u: jax.Array, RH: jax.Array) -> jax.Array:
    return jnp.stack([jnp.ones(RH.shape[0]), jnp.exp(RH @ u)], -1)


def _marginal(theta: jax.Array, RH: jax.Array, y: jax.Array, Q: jax.Array, lam: jax.Array):
    u, ls = theta[:-1], theta[-1]
    m = gaussian_marginal(_design(u, RH), y, Q, lam, ls, jnp.ones_like(y))
    return m, u, ls


def mixing_log_prob(theta: jax.Array, RH: jax.Array, y: jax.Array, Q: jax.Array,
                    lam: jax.Array) -> jax.Array:
    """Log posterior of ``theta = (u_1..u_{M-1}, log sigma)`` of one domain (one walker).

    ``RH (n, M-1)`` mixtures in the sum-zero basis, ``y (n,)`` stage data, ``Q, lam`` the
    eigen-decomposition of the upstream relative covariance ``C``.
    """
    m, u, ls = _marginal(theta, RH, y, Q, lam)
    box = log_box_probability(m.mean, m.cov, jnp.zeros(2), jnp.stack([jnp.min(y), jnp.inf]))
    prior = (log_invariant_prior(_design(u, RH), y, jnp.ones_like(y))
             - 0.5 * jnp.sum(u * u) / U_PRIOR_SD**2
             + ls - jnp.log1p(jnp.exp(2 * ls) / SIGMA_SCALE**2))      # half-Cauchy, in log sigma
    lp = m.log_p + box + prior
    ok = (ls > _LOG_SIGMA[0]) & (ls < _LOG_SIGMA[1]) & jnp.isfinite(lp)
    return jnp.where(ok, lp, -jnp.inf)


# (walkers, domains, dim) -> (walkers, domains)
_blocks_lp = jax.jit(jax.vmap(jax.vmap(mixing_log_prob, in_axes=(0, None, 1, 0, 0)),
                              in_axes=(0, None, None, None, None)))


def _cond_one(theta: jax.Array, RH: jax.Array, y: jax.Array, Q: jax.Array, lam: jax.Array):
    m, _, _ = _marginal(theta, RH, y, Q, lam)
    return m.mean, m.gain


# per draw: mean (S, 2), gain (S, 2, n) of one domain
_conditional = jax.jit(jax.vmap(_cond_one, in_axes=(0, None, None, None, None)))


def _upstream_cov(dlog: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvectors ``(nd, n, n)`` and eigenvalues ``(nd, n)`` of each domain's covariance of
    the upstream relative deviations ``dlog (S, n, nd)``."""
    S, n, nd = dlog.shape
    if n > _FULL_COV_MAX or S < 2:
        var = dlog.var(0).T if S > 1 else np.zeros((nd, n))
        return np.broadcast_to(np.eye(n), (nd, n, n)).copy(), var
    Q, lam = np.empty((nd, n, n)), np.empty((nd, n))
    for d in range(nd):
        C = np.cov(dlog[:, :, d], rowvar=False).reshape(n, n)
        lam[d], Q[d] = np.linalg.eigh(0.5 * (C + C.T))
    return Q, np.maximum(lam, 0.0)


def sample_mixing_stage(RH: np.ndarray, y: np.ndarray, dlog: np.ndarray, theta_hat: np.ndarray,
                        *, seed: int, labels: tuple[str, ...], max_steps: int = 20000,
                        min_ess: float = 1000.0, n_walkers: int | None = None) -> MixingPosterior:
    """Sample every domain's mixing law and pair the draws with the upstream ones.

    Parameters
    ----------
    RH : ``(n, M-1)`` observed mixtures in the sum-zero basis.
    y : ``(n, nd)`` stage data (the size stage's point predictions at the target).
    dlog : ``(S, n, nd)`` upstream relative deviations ``log Y^(s) - log y`` (jointly drawn).
    theta_hat : ``(nd, P)`` best fit ``(c, log k, u)``; walkers start around its ``u``.
    labels : domain names for the diagnostics.
    max_steps, min_ess : chain budget and wanted effective sample size per domain.
    n_walkers : ensemble size (default ``max(32, 4 dim)``: the domains' log-probabilities are
        cheap, so more walkers cost little and shorten the autocorrelation time).
    """
    S, n, nd = dlog.shape
    P = theta_hat.shape[1]
    Q, lam = _upstream_cov(dlog)
    rng = np.random.default_rng([seed, 21])
    dim = P - 1                                      # (u, log sigma)
    RHj = jnp.asarray(RH)

    def lp_for(idx: np.ndarray):
        args = (RHj, jnp.asarray(y[:, idx]), jnp.asarray(Q[idx]), jnp.asarray(lam[idx]))
        return lambda X: _blocks_lp(X, *args)

    resid = np.log(np.asarray(mixing_terms(RH, theta_hat)[0])) \
        - np.log(y.T)
    excess = np.maximum(np.mean(resid**2, 1) - lam.mean(1), 1e-8)
    center = np.concatenate([theta_hat[:, 2:], 0.5 * np.log(excess)[:, None]], 1)   # (nd, dim)
    center[:, -1] = np.clip(center[:, -1], _LOG_SIGMA[0] + 1.0, _LOG_SIGMA[1] - 1.0)
    nw = n_walkers or max(32, 4 * dim)
    lp_all = lp_for(np.arange(nd))
    x0 = center[None] + 0.01 * rng.standard_normal((nw, nd, dim))
    for _ in range(50):
        bad = ~np.isfinite(np.asarray(lp_all(jnp.asarray(x0))))
        if not bad.any():
            break
        x0 = np.where(bad[..., None], center[None] + 1e-3 * rng.standard_normal(x0.shape), x0)
    chains = run_blocks(lp_for, x0, names=[f"mixing stage, domain {lab}" for lab in labels],
                        seed=seed, max_steps=max_steps, min_ess=min_ess)
    theta = np.empty((S, nd, P))
    sigma = np.empty((S, nd))
    ymin = y.min(0)
    n_bad = 0
    for d, ch in enumerate(chains):
        flat = ch.flat()
        pick = flat[rng.integers(0, flat.shape[0], S)]                       # (S, dim)
        mean, gain = (np.asarray(a) for a in _conditional(
            jnp.asarray(pick), RHj, jnp.asarray(y[:, d]), jnp.asarray(Q[d]), jnp.asarray(lam[d])))
        sig = np.exp(pick[:, -1])
        up = y[:, d] * dlog[:, :, d]                                           # (S, n)

        def draw(z: np.ndarray) -> np.ndarray:
            e = up + y[:, d] * sig[:, None] * z
            return mean + np.einsum("spn,sn->sp", gain, e)

        a = draw(rng.standard_normal((S, n)))
        for _ in range(10):
            bad = (a[:, 0] <= 0) | (a[:, 0] >= ymin[d]) | (a[:, 1] <= 0)
            if not bad.any():
                break
            a = np.where(bad[:, None], draw(rng.standard_normal((S, n))), a)
        bad = (a[:, 0] <= 0) | (a[:, 0] >= ymin[d]) | (a[:, 1] <= 0)
        n_bad += int(bad.sum())
        a[:, 0] = np.clip(a[:, 0], 0.0, ymin[d])
        a[:, 1] = np.maximum(a[:, 1], 1e-300)
        theta[:, d, 0], theta[:, d, 1], theta[:, d, 2:] = a[:, 0], np.log(a[:, 1]), pick[:, :-1]
        sigma[:, d] = sig
    return MixingPosterior(theta=theta, sigma=sigma, chains=tuple(chains), unphysical=n_bad)
