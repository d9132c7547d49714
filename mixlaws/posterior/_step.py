r"""emcee posterior of the step law of every run, and its predictive covariance at ``D*``.

For run ``g`` and validation domain ``d``, with post-warm-up checkpoints ``(D_i, y_gdi)``:

.. math::

    y_{gdi} = E_{gd} + B_{gd} (D_i / D_g^{ref})^{-\beta_{g(d)}} + y_{gdi}\,\varepsilon_{gdi},
    \qquad \varepsilon_{gdi} \sim t_4(0, \sigma_g),

``D^ref_g`` the geometric mean of the run's checkpoint tokens (decorrelates ``E`` from ``B``).
The amplitudes ``(E_gd, B_gd)`` are integrated out (:func:`mixlaws.posterior.student_marginal`:
robust Student-t likelihood, Laplace in the linear amplitudes) and emcee samples

* ``tie_beta="run"`` (default): ``(log beta_g, log sigma_g)`` for each run, one small ensemble
  per run;
* ``tie_beta="none"``: ``(log beta_g1 .. log beta_gD, log sigma_g)`` per run;
* ``tie_beta="all"``: ``(log beta, log sigma)`` shared by the whole sweep, one ensemble.

Priors (physics): ``beta ~ U(0, 2)``; ``log sigma ~ U(log 1e-6, log 0.2)`` (scale-free);
amplitudes ``(E, B_ref)`` (``B_ref = B D_ref^(-beta)``, the amplitude at the run's own reference
tokens) with the invariant conditional prior ``det(X^T D^{-2} X)^{1/2}``
(:func:`~mixlaws.posterior.log_invariant_prior`: a flat one would drive ``beta`` to 0, where the
columns ``1`` and ``(D/D_ref)^(-beta)`` become collinear) truncated to ``0 < E < min_i y_gdi``,
``B > 0``: the truncation enters the marginal of ``(beta, sigma)`` through
:func:`~mixlaws.posterior.log_box_probability` and the amplitudes are drawn from their
conditional Gaussian by rejection.

Each run's draws of ``log L_gd(D*)`` give its predictive covariance across domains at the
target tokens; :mod:`mixlaws.posterior` passes it to the size stage as measurement error.
With ``tie_beta="all"`` the shared exponent's uncertainty enters every run's covariance; its
correlation *between* runs is not passed on (the size stage's learned scatter absorbs it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import _config  # noqa: F401
from ..laws import power_law_log
from ..laws._priors import EXPONENT_MAX as BETA_MAX
from ..laws._priors import NU as NU_STEP
from ..laws._priors import STEP_LOG_SIGMA as _LOG_SIGMA
from ._marginal import log_box_probability, student_marginal_line
from ._moves import run_blocks
from ._mcmc import Chain, ChainDiagnostics, run_ensemble, walkers_in_support

__all__ = ["StepPosterior", "sample_step_stage", "step_log_prob"]


@dataclass(frozen=True)
class StepPosterior:
    """Posterior of the step laws of a sweep, summarised at one target token count.

    Attributes
    ----------
    tokens : ``D*``.
    cov : ``(n_runs, n_domains, n_domains)`` covariance of ``log L_gd(D*)`` across a run's
        domains (posterior of the mean law; zero for runs without a step law).
    mean : ``(n_runs, n_domains)`` posterior mean of ``L_gd(D*)`` (nan without a step law).
    sigma : ``(n_runs,)`` posterior median of the checkpoint noise scale ``sigma_g``.
    diagnostics : the chain with the longest autocorrelation time (worst case), its name
        says how many chains were run and how many are too short.
    unphysical : amplitude draws outside ``0 < E < min y, B > 0`` after redrawing.
    """

    tokens: float
    cov: np.ndarray
    mean: np.ndarray
    sigma: np.ndarray
    diagnostics: ChainDiagnostics
    unphysical: int


def step_log_prob(theta: jax.Array, x: jax.Array, y: jax.Array, w: jax.Array,
                  beta_index: jax.Array) -> jax.Array:
    """Log posterior of ``theta = (log beta_1..log beta_B, log sigma)`` of a set of runs.

    ``x (R, C)`` log tokens minus each run's reference, ``y (R, C, nd)`` losses, ``w (R, C)``
    checkpoint mask, ``beta_index (nd,)`` which exponent each domain uses.
    """
    lb, ls = theta[:-1], theta[-1]
    beta = jnp.exp(lb)
    in_prior = jnp.all(beta < BETA_MAX) & (ls > _LOG_SIGMA[0]) & (ls < _LOG_SIGMA[1])
    bd = beta[beta_index]                                                  # (nd,)

    def one(x_r: jax.Array, y_rd: jax.Array, w_r: jax.Array, b: jax.Array) -> jax.Array:
        xb = jnp.exp(-b * x_r)
        m = student_marginal_line(xb, y_rd, 0.0, ls, w_r, NU_STEP)
        ymin = jnp.min(jnp.where(w_r > 0, y_rd, jnp.inf))
        box = log_box_probability(m.mean, m.cov, jnp.array([0.0, 0.0]),
                                  jnp.stack([ymin, jnp.inf]))
        q = w_r / (y_rd * y_rd)                    # invariant prior det(X^T D^-2 X)^(1/2)
        u0, u1, u2 = q.sum(), (q * xb).sum(), (q * xb * xb).sum()
        return m.log_p + box + 0.5 * jnp.log(u0 * u2 - u1 * u1)

    per_domain = jax.vmap(one, in_axes=(None, 1, None, 0))                # over domains
    lp = jnp.sum(jax.vmap(per_domain, in_axes=(0, 0, 0, None))(x, y, w, bd)) + jnp.sum(lb)
    return jnp.where(in_prior & jnp.isfinite(lp), lp, -jnp.inf)


def _conditional_one(th: jax.Array, x_r: jax.Array, y_rd: jax.Array, w_r: jax.Array,
                     bi: jax.Array) -> tuple[jax.Array, jax.Array]:
    m = student_marginal_line(jnp.exp(-jnp.exp(th[bi]) * x_r), y_rd, jnp.zeros_like(y_rd), th[-1],
                              w_r, NU_STEP)
    return m.mean, m.cov


# conditional (E, Bref) of every draw x domain of one run: mean (S, nd, 2), cov (S, nd, 2, 2)
_conditional = jax.jit(jax.vmap(jax.vmap(_conditional_one, in_axes=(None, None, 1, None, 0)),
                                in_axes=(0, None, None, None, None)))
_batched_lp = jax.jit(jax.vmap(step_log_prob, in_axes=(0, None, None, None, None)))


def _run_lp(theta: jax.Array, x: jax.Array, y: jax.Array, w: jax.Array,
            beta_index: jax.Array) -> jax.Array:
    return step_log_prob(theta, x[None], y[None], w[None], beta_index)


# (walkers, runs, dim) -> (walkers, runs): every run its own posterior (BlockStretchMove)
_blocks_lp = jax.jit(jax.vmap(jax.vmap(_run_lp, in_axes=(0, 0, 0, 0, None)),
                              in_axes=(0, None, None, None, None)))


def _sample_unit(x: np.ndarray, y: np.ndarray, w: np.ndarray, beta_index: np.ndarray,
                 beta_hat: np.ndarray, sigma_hat: float, n_draws: int, seed: int, name: str,
                 max_steps: int, min_ess: float) -> tuple[np.ndarray, Chain]:
    """emcee over one unit of runs sharing ``theta``; returns ``n_draws`` draws and the chain."""
    args = tuple(jnp.asarray(a) for a in (x, y, w, beta_index))
    lp = lambda X: _batched_lp(X, *args)  # noqa: E731
    nb = beta_hat.size
    center = np.concatenate([np.log(np.clip(beta_hat, 2e-3, 0.95 * BETA_MAX)),
                             [np.log(np.clip(sigma_hat, 2e-6, 0.1))]])
    nw = max(16, 4 * (nb + 1))
    rng = np.random.default_rng([seed, 11])
    ok = lambda X: np.isfinite(np.asarray(lp(jnp.asarray(X))))  # noqa: E731
    x0 = walkers_in_support(center, np.full(nb + 1, 0.05), nw, rng, ok)
    chain = run_ensemble(lp, x0, name=name, seed=seed, min_steps=300, max_steps=max_steps,
                         chunk=300, min_ess=min_ess, warn=False)
    flat = chain.flat()
    return flat[rng.integers(0, flat.shape[0], n_draws)], chain


def sample_step_stage(labels: Sequence[str], checkpoints: Sequence[tuple[np.ndarray, np.ndarray]],
                      beta_hat: np.ndarray, tie: str, tokens: float, *, seed: int = 0,
                      n_draws: int = 400, max_steps: int = 5000, min_ess: float = 200.0) -> StepPosterior:
    """Sample the step laws of ``checkpoints`` (one ``(tokens (C,), losses (C, nd))`` per run).

    ``beta_hat`` is the point fit's exponent per run (``(R,)`` or ``(R, nd)`` with
    ``tie="none"``); walkers start around it. Returns the per-run predictive summary at
    ``tokens`` (see :class:`StepPosterior`); a :class:`~mixlaws.errors.ChainWarning` is
    emitted if any chain stays shorter than 50 autocorrelation times within ``max_steps``.
    """
    import warnings

    from ..errors import ChainWarning

    R = len(checkpoints)
    nd = checkpoints[0][1].shape[1]
    C = max(t.size for t, _ in checkpoints)
    x, y, w = np.zeros((R, C)), np.ones((R, C, nd)), np.zeros((R, C))
    for g, (t, L) in enumerate(checkpoints):
        lt = np.log(t)
        x[g, :t.size], y[g, :t.size], w[g, :t.size] = lt - lt.mean(), L, 1.0
    xref = np.array([np.log(t).mean() for t, _ in checkpoints])
    beta_hat = np.asarray(beta_hat, float).reshape(R, -1)
    beta_index = np.arange(nd) if tie == "none" else np.zeros(nd, int)
    # a rough start for sigma: each run's residual scale at the point fit is not stored; use a
    # typical checkpoint scatter and let the chain find it
    sigma0 = 3e-3
    if tie == "all":
        centers = [np.array([np.exp(np.log(beta_hat[:, 0]).mean())])]
    else:
        centers = [beta_hat[g] if tie == "none" else beta_hat[g, :1] for g in range(R)]
    dim = int(beta_index.max()) + 2
    draws = np.empty((R, n_draws, dim))
    rng = np.random.default_rng([seed, 12])
    if tie == "all":
        th, ch = _sample_unit(x, y, w, beta_index, centers[0], sigma0, n_draws, seed,
                              "step stage (beta shared by all runs)", max_steps, min_ess)
        draws[:] = th[None]
        chains = [ch]
    else:
        def lp_for(idx: np.ndarray):
            args = tuple(jnp.asarray(a[idx]) for a in (x, y, w)) + (jnp.asarray(beta_index),)
            return lambda X: _blocks_lp(X, *args)

        center = np.stack([np.concatenate([np.log(np.clip(b, 2e-3, 0.95 * BETA_MAX)),
                                           [np.log(sigma0)]]) for b in centers])     # (R, dim)
        # small sweeps: walkers are nearly free (launch-bound) and shorten tau; large ones
        # (RedPajama: 103 runs x 22 domains) are compute-bound, where 4 dim walkers suffice
        nw = max(16 if x.size * nd <= 20000 else 8, 4 * dim)
        x0 = center[None] + 0.05 * rng.standard_normal((nw, R, dim))
        lp_all = lp_for(np.arange(R))
        for _ in range(50):
            bad = ~np.isfinite(np.asarray(lp_all(jnp.asarray(x0))))
            if not bad.any():
                break
            x0 = np.where(bad[..., None], center[None] + 0.02 * rng.standard_normal(x0.shape), x0)
        chains = run_blocks(lp_for, x0, names=[f"step stage, run {lab}" for lab in labels],
                            seed=seed, max_steps=max_steps, min_ess=min_ess)
        for g, ch in enumerate(chains):
            flat = ch.flat()
            draws[g] = flat[rng.integers(0, flat.shape[0], n_draws)]
    mean = np.full((R, nd), np.nan)
    cov = np.zeros((R, nd, nd))
    sigma = np.exp(np.median(draws[..., -1], axis=1))
    n_bad = 0
    ymin = np.where(w[..., None] > 0, y, np.inf).min(1)                   # (R, nd)
    xs = np.log(tokens) - xref
    for g in range(R):
        m, V = (np.asarray(a) for a in _conditional(draws[g], x[g], y[g], w[g], beta_index))
        Lc = np.linalg.cholesky(V + 1e-300 * np.eye(2))
        ab = m + np.einsum("sdij,sdj->sdi", Lc, rng.standard_normal(m.shape))
        for _ in range(10):
            bad = (ab[..., 0] <= 0) | (ab[..., 0] >= ymin[g]) | (ab[..., 1] <= 0)
            if not bad.any():
                break
            z = rng.standard_normal(m.shape)
            ab = np.where(bad[..., None], m + np.einsum("sdij,sdj->sdi", Lc, z), ab)
        bad = (ab[..., 0] <= 0) | (ab[..., 0] >= ymin[g]) | (ab[..., 1] <= 0)
        n_bad += int(bad.sum())
        ab[..., 1] = np.maximum(ab[..., 1], 0.0)
        ab[..., 0] = np.clip(ab[..., 0], 0.0, ymin[g])
        beta = np.exp(draws[g][:, beta_index])                            # (S, nd)
        f = np.asarray(power_law_log(xs[g], ab[..., 0], ab[..., 1], beta))
        lf = np.log(f)
        mean[g] = f.mean(0)
        cov[g] = np.cov(lf, rowvar=False).reshape(nd, nd)
    worst = max(chains, key=lambda c: float(np.max(c.diagnostics.tau)))
    short = [c for c in chains if not c.diagnostics.converged]
    d = worst.diagnostics
    diag = ChainDiagnostics(
        name=(f"step stage: {len(chains)} chain(s), worst shown ({d.name})"
              + (f"; {len(short)} too short" if short else "")),
        n_walkers=d.n_walkers, n_steps=d.n_steps, burn=d.burn, tau=d.tau,
        steps_per_tau=d.steps_per_tau, ess=min(c.diagnostics.ess for c in chains),
        acceptance=float(np.mean([c.diagnostics.acceptance for c in chains])),
        converged=not short, unphysical=n_bad)
    if short:
        warnings.warn(f"step stage: {len(short)} of {len(chains)} chains are shorter than 50 "
                      f"autocorrelation times (worst: {d.name}, tau = {np.max(d.tau):.0f} "
                      f"steps); raise the step budget", ChainWarning, stacklevel=2)
    return StepPosterior(tokens=float(tokens), cov=cov, mean=mean, sigma=sigma,
                         diagnostics=diag, unphysical=n_bad)
