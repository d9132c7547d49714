r"""The size-stage posterior: ``(alpha, tau, lambda)`` by emcee, ``(E, A)`` profiled, then drawn.

Design (why not one ensemble over everything)
---------------------------------------------
A nested fit of the Ye et al. RedPajama table has ~4,600 step parameters,
~900 size parameters and ~200 mixing parameters. One affine-invariant
ensemble over all of them would need thousands of walkers and never mix. The
stages factorise instead:

* **size law** ``L_gi = E_g + A_g (N_i/N_ref)^(-alpha)``, written
  ``L_gi = E'_g + A''_g x_i(alpha)`` with ``x_i = ((N_i/N_ref)^(-alpha) - 1)/alpha``,
  ``E' = E + A``, ``A'' = alpha A`` (well conditioned as ``alpha -> 0``, where
  ``(E, A)`` become collinear and a flat prior on them would make the posterior
  improper), is *linear* in ``(E'_g, A''_g)`` given the shared exponent ``alpha`` and the
  noise scale ``tau``. Gaussian errors of variance ``v_gi = y_gi^2 (lambda^2 s_gi^2 + tau^2)``
  (``s_gi`` the step stage's predictive relative sd at ``D*``, the previous stage's spread
  entering as measurement error; ``lambda`` in (0.01, 1] a learned scale on it, ``tau`` the
  learned run-to-run scatter). The likelihood of ``(alpha, tau, lambda)`` takes each group law
  at its *constrained profile*, like the point fit (:func:`mixlaws.fit.fit_size_stage`):

  .. math::

     \log p(y \mid \alpha, \tau, \lambda) = \sum_g \Big[-\tfrac12 \sum_i \log v_{gi}
        + \log \bar v_g - \tfrac12 \min_{0 \le E_g \le \min y_g,\ A_g \ge 0} \mathrm{RSS}_g\Big],

  ``bar v_g`` the geometric mean of ``v_gi``: the marginal under the scale-free conditional prior
  ``p(E', A'' | alpha, tau) ∝ det(X_g^T (V_g / bar v_g)^{-1} X_g)^{1/2}`` (any linear
  parametrisation gives the same), which cancels the Occam factor; the ``log bar v_g`` left is
  the REML degrees-of-freedom correction of ``tau`` (2 parameters per group).

  Why (issue #10): the flat-prior marginal ``-1/2 log det X_g^T V_g^{-1} X_g`` (still available,
  ``profile=False``, optionally with ``invariant`` / ``truncate``) adds an ``O(1)`` term in
  ``alpha`` *per group*; with hundreds of groups (60 mixtures x 7 domains) and 5 sizes these
  terms outweigh the data on ``alpha`` (the profile likelihood, which they do not enter, is
  consistent as the number of groups grows), and nothing kept the mass inside the physical
  region: on a sweep of 5 sizes 122M-1.2B the posterior mean sat 2 % (4-9 sds) below the
  point fit with 4 % of the group laws unphysical. ``lambda``: when the step stage's errors
  are shared by the runs (e.g. one schedule bend) its predictive sd can be several times the
  scatter of the runs about the size law; taken as independent error it flattened the
  likelihood of ``alpha`` until the priors decided.

  emcee samples ``(log alpha, log tau, log lambda)`` (one ``alpha`` per tie block; DE moves,
  :func:`~mixlaws.posterior._mcmc.ridge_moves`, since ``(log tau, log lambda)`` is L-shaped); the group
  laws are then drawn from their conditional Gaussian (errors of a run drawn jointly across its
  domains, whole runs redrawn while outside the physical region ``0 < E_g < min_i y_gi``,
  ``A_g > 0``); a group law still outside after 10 redraws is drawn from its truncated
  conditional by Gibbs sampling in ``(E, A'')`` (counted in ``ChainDiagnostics.unphysical``;
  a warning when they exceed 5 %, since these lose their cross-domain coupling).
  Priors: ``alpha ~ U(0, 2)``, ``log tau ~ U(log 1e-6, log 0.2)``, ``log lambda`` flat on
  ``laws._priors.STEP_VAR_LOG_SCALE``.
* **step law** and **mixing law**: :mod:`mixlaws.posterior` and
  :mod:`mixlaws.posterior` (amplitudes integrated out by :mod:`mixlaws.posterior`);
  the joint law: :mod:`mixlaws.posterior`.

Every log-probability is a JAX function of a ``(n_walkers, dim)`` array, jitted
once and passed to emcee with ``vectorize=True``.

Diagnostics: :func:`run_ensemble` runs in chunks and stops when the chain is
longer than ``min_tau_multiple`` (default 50) integrated autocorrelation times
of every parameter, extending up to ``max_steps``; if the budget runs out it
emits a :class:`ChainWarning` (never a silent pass). ESS is
``n_walkers * kept_steps / tau``.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import truncnorm as _truncnorm

from .. import _config  # noqa: F401
from ..errors import ChainWarning
from ..laws._priors import EXPONENT_MAX as _ALPHA_MAX
from ..laws._priors import RUN_LOG_TAU as _LOG_TAU
from ..laws._priors import STEP_VAR_LOG_SCALE as _LOG_LAMBDA
from ._marginal import log_box_probability
from ._mcmc import Chain, psd_sqrt, ridge_moves, run_ensemble, walkers_in_support

__all__ = ["size_log_marginal", "sample_size_stage"]



# -- size stage: collapsed likelihood ------------------------------------------------------------

def size_log_marginal(theta: jax.Array, x_log: jax.Array, y: jax.Array, s2: jax.Array,
                      w: jax.Array, block: jax.Array, invariant: bool = False,
                      truncate: bool = False, profile: bool = True,
                      scale_step: bool = False) -> jax.Array:
    """Log posterior of ``theta = (log alpha_1..log alpha_B, log tau)`` (one walker), or of
    ``(log alpha_1..log alpha_B, log tau, log lambda)`` with ``scale_step=True``, where the step
    stage's variance enters as ``lambda^2 s2`` (``log lambda`` flat on ``STEP_VAR_LOG_SCALE``).

    ``profile=True`` (default): the group parameters enter through their *constrained profile*
    (weighted least squares inside the physical region ``0 < E_g < min y_g``, ``A_g >= 0``, as the
    point fit) with the scale-free Jeffreys-like conditional prior that cancels the Occam factor
    (see the module docstring); ``invariant`` and ``truncate`` are then ignored. With
    ``profile=False`` the group parameters are integrated out under a flat prior on
    ``(E', A'')`` (``invariant=False``) or ``det(X_g^T D_g^{-2} X_g)^{1/2}`` (``invariant=True``,
    ``D = diag(y)``), times the conditional probability of the physical region when
    ``truncate=True`` — for comparison: with many groups their per-group ``O(1)`` terms outweigh
    the data on ``alpha`` (tested).

    ``x_log (G, S)`` is ``log(N/N_ref)``, ``y (G, S)`` the stage data (losses at
    ``D*``), ``s2 (G, S)`` their relative predictive variance from the step stage,
    ``w (G, S)`` the mask and ``block (G,)`` the tie block of each group.
    """
    if scale_step:
        la, lt, ll = theta[:-2], theta[-2], theta[-1]
        s2 = s2 * jnp.exp(2 * ll)
        in_scale = (ll > _LOG_LAMBDA[0]) & (ll < _LOG_LAMBDA[1])
    else:
        la, lt, in_scale = theta[:-1], theta[-1], True
    alpha = jnp.exp(la)
    in_prior = (jnp.all(alpha < _ALPHA_MAX) & (lt > _LOG_TAU[0]) & (lt < _LOG_TAU[1])
                & in_scale)
    ab = alpha[block][:, None]
    x = jnp.expm1(-ab * x_log) / ab
    v = y * y * (s2 + jnp.exp(2 * lt))
    iv = w / v
    s0, s1, s2_ = iv.sum(1), (iv * x).sum(1), (iv * x * x).sum(1)
    b0, b1 = (iv * y).sum(1), (iv * x * y).sum(1)
    det = s0 * s2_ - s1 * s1
    e = (s2_ * b0 - s1 * b1) / det
    a = (s0 * b1 - s1 * b0) / det
    rss = (iv * y * y).sum(1) - (e * b0 + a * b1)
    if profile:
        lp = jnp.sum(-0.5 * (w * jnp.log(v)).sum(1) + _log_scale(v, w)
                     - 0.5 * _constrained_rss(x, y, iv, e, a, ab[:, 0], w))
        lp = lp + jnp.sum(la)
        return jnp.where(in_prior & jnp.isfinite(lp), lp, -jnp.inf)
    lp = jnp.sum(-0.5 * (w * jnp.log(v)).sum(1) - 0.5 * jnp.log(det) - 0.5 * rss)
    if invariant:   # p(E', A'' | alpha) ∝ det(X_g^T D_g^-2 X_g)^(1/2), as the step/mixing stages
        q = w / (y * y)
        u0, u1, u2 = q.sum(1), (q * x).sum(1), (q * x * x).sum(1)
        lp = lp + 0.5 * jnp.sum(jnp.log(u0 * u2 - u1 * u1))
    if truncate:    # P(0 < E < min y, A'' > 0 | alpha, tau, y) of the conditional Gaussian
        c00, c01, c11 = s2_ / det, -s1 / det, s0 / det         # cov of (E', A'')
        mean = jnp.stack([e - a / ab[:, 0], a], -1)             # (E, A'') = T (E', A'')
        var_e = c00 - 2 * c01 / ab[:, 0] + c11 / ab[:, 0] ** 2
        cov = jnp.stack([jnp.stack([var_e, jnp.zeros_like(var_e)], -1),
                         jnp.stack([jnp.zeros_like(var_e), c11], -1)], -2)
        ymin = jnp.min(jnp.where(w > 0, y, jnp.inf), axis=1)
        lower = jnp.zeros_like(mean)
        upper = jnp.stack([ymin, jnp.full_like(ymin, jnp.inf)], -1)
        lp = lp + jnp.sum(jax.vmap(log_box_probability)(mean, cov, lower, upper))
    lp = lp + jnp.sum(la)                       # alpha ~ U(0, 2) expressed in log alpha
    return jnp.where(in_prior & jnp.isfinite(lp), lp, -jnp.inf)


def _log_scale(v: jax.Array, w: jax.Array) -> jax.Array:
    """``log vbar_g`` (geometric mean of the variances of group ``g``): with the conditional prior
    ``p(E', A'' | alpha, tau) ∝ det(X_g^T (V_g / vbar_g)^{-1} X_g)^{1/2}`` the Occam factor
    ``det(X_g^T V_g^{-1} X_g)^{-1/2}`` of the marginal reduces to this (two parameters)."""
    return (w * jnp.log(v)).sum(1) / w.sum(1)


def _constrained_rss(x: jax.Array, y: jax.Array, iv: jax.Array, e: jax.Array, a: jax.Array,
                     alpha: jax.Array, w: jax.Array) -> jax.Array:
    """Weighted RSS ``(G,)`` of the size law at its best ``(E, A'')`` in ``0 <= E <= min y``,
    ``A'' >= 0``.

    In the coordinates ``(E, A'')`` the law is ``E + A'' z`` with ``z = x + 1/alpha`` and the
    region is a box, so the constrained minimum of this convex quadratic is the unconstrained
    one ``(e, a)`` when feasible, else the best of the three clipped edge fits (``A'' = 0``;
    ``E = 0``; ``E = min y``).
    """
    ymin = jnp.min(jnp.where(w > 0, y, jnp.inf), axis=1)
    z = x + 1.0 / alpha[:, None]
    E_u = e - a / alpha

    def rss(E: jax.Array, A: jax.Array) -> jax.Array:
        r = y - E[:, None] - A[:, None] * z
        return (iv * r * r).sum(1)

    szz = (iv * z * z).sum(1)
    cands = [rss(jnp.clip((iv * y).sum(1) / iv.sum(1), 0.0, ymin), jnp.zeros_like(ymin))]
    for E0 in (jnp.zeros_like(ymin), ymin):
        cands.append(rss(E0, jnp.maximum((iv * z * (y - E0[:, None])).sum(1) / szz, 0.0)))
    edge = jnp.min(jnp.stack(cands), axis=0)
    feasible = (E_u > 0) & (E_u < ymin) & (a > 0)
    return jnp.where(feasible, rss(E_u, a), edge)


def _size_conditional(alpha_g: np.ndarray, tau: float, x_log: np.ndarray, y: np.ndarray,
                      s2: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(G, 2)`` and covariance ``(G, 2, 2)`` of ``(E', A'')`` given ``alpha, tau``."""
    x = np.expm1(-alpha_g[:, None] * x_log) / alpha_g[:, None]
    iv = w / (y * y * (s2 + tau**2))
    M = np.stack([np.stack([iv.sum(1), (iv * x).sum(1)], -1),
                  np.stack([(iv * x).sum(1), (iv * x * x).sum(1)], -1)], -2)
    b = np.stack([(iv * y).sum(1), (iv * x * y).sum(1)], -1)
    cov = np.linalg.inv(M)
    return np.einsum("gij,gj->gi", cov, b), cov


def _truncated_draw(mean: np.ndarray, cov: np.ndarray, alpha: np.ndarray, ymin: np.ndarray,
                    rng: np.random.Generator, sweeps: int = 30) -> np.ndarray:
    """Draws ``(n, 2)`` of ``(E', A'')`` from ``N(mean, cov)`` truncated to ``0 < E < ymin``,
    ``A'' > 0`` (``E = E' - A''/alpha``), one per row, by Gibbs sampling in ``(E, A'')``.

    In those coordinates the region is a box, so each full conditional is a truncated normal;
    the chain starts at the mean clipped into the box and runs ``sweeps`` sweeps.
    """
    T = np.zeros((mean.shape[0], 2, 2))
    T[:, 0, 0], T[:, 0, 1], T[:, 1, 1] = 1.0, -1.0 / alpha, 1.0
    m = np.einsum("nij,nj->ni", T, mean)
    C = np.einsum("nij,njk,nlk->nil", T, cov, T)
    lo = np.stack([np.zeros_like(ymin), np.zeros_like(ymin)], -1)
    hi = np.stack([ymin, np.full_like(ymin, np.inf)], -1)
    z = np.clip(m, lo + 1e-9 * np.maximum(ymin, 1.0)[:, None], hi * (1 - 1e-9))
    for _ in range(sweeps):
        for i, j in ((0, 1), (1, 0)):
            mu = m[:, i] + C[:, i, j] / C[:, j, j] * (z[:, j] - m[:, j])
            sd = np.sqrt(np.maximum(C[:, i, i] - C[:, i, j] ** 2 / C[:, j, j], 1e-300))
            a, b = (lo[:, i] - mu) / sd, (hi[:, i] - mu) / sd
            z[:, i] = mu + sd * _truncnorm.rvs(a, b, random_state=rng)
    return np.stack([z[:, 0] + z[:, 1] / alpha, z[:, 1]], -1)


SIZE_SAMPLER = "jax"
"""Sampler of the size stage's ``(alpha, tau, lambda)``: the JAX-compiled ensemble (same moves as
emcee's, the same statistical check; ``benchmarks/sampler_speed.py`` measures both)."""


@functools.lru_cache(maxsize=None)
def _batched_log_marginal(invariant: bool, truncate: bool, profile: bool, scale_step: bool):
    """:func:`size_log_marginal` over walkers ``(n, dim)``, data as arguments: one function per
    option set, so that the compiled sampler compiles once per table shape."""
    one = functools.partial(size_log_marginal, invariant=invariant, truncate=truncate,
                            profile=profile, scale_step=scale_step)
    return jax.jit(jax.vmap(one, in_axes=(0, None, None, None, None, None)))


def sample_size_stage(x_log: np.ndarray, y: np.ndarray, s2: np.ndarray, w: np.ndarray,
                      block: np.ndarray, alpha_hat: np.ndarray, x_target: float, n_draws: int, *,
                      seed: int, max_steps: int = 20000, units: np.ndarray | None = None,
                      step_cov: np.ndarray | None = None,
                      noise_corr: np.ndarray | None = None, invariant: bool = False,
                      truncate: bool = False, profile: bool = True,
                      scale_step: bool = True) -> tuple[np.ndarray, np.ndarray, Chain]:
    """Posterior draws of the size-stage predictions at ``N*``.

    Returns ``(Y (n_draws, G), tau (n_draws,), chain)`` where ``Y`` is the mean-law
    loss ``E_g + A_g (N*/N_ref)^(-alpha)`` of every group and ``x_target = log(N*/N_ref)``.

    ``(alpha, tau)`` are sampled with the working-independence likelihood
    (:func:`size_log_marginal`). Given a draw, the group parameters are the weighted LS fit
    plus ``K_g e_g`` with ``K_g = (X_g^T V_g^{-1} X_g)^{-1} X_g^T V_g^{-1}`` and ``e`` a draw of the
    data errors. With independent errors of variance ``V`` this is exactly the conditional
    Gaussian of ``(E', A'')``; when the errors of one run are correlated across its groups
    (its domains), ``e`` is drawn jointly (sandwich covariance), so that the correlation survives
    into aggregates over domains:

    units : ``(U, K)`` group indices; slot ``i`` of the ``K`` groups of a unit is the same run.
    step_cov : ``(U, S, K, K)`` relative step-stage covariance of that run across the groups
        (its diagonal must be ``s2``); default diagonal.
    noise_corr : ``(K, K)`` correlation of the run noise ``tau`` across a unit's groups;
        default identity.
    """
    args = tuple(jnp.asarray(a) for a in (x_log, y, s2, w)) + (jnp.asarray(block),)
    lp = _batched_log_marginal(invariant, truncate, profile, scale_step)
    rng = np.random.default_rng([seed, 1])
    center = np.concatenate([np.log(np.clip(alpha_hat, 1e-3, 1.9)), [np.log(1e-3)],
                             [np.log(0.5)] if scale_step else []])
    nw = max(32, 4 * center.size)
    ok = lambda X: np.isfinite(np.asarray(lp(jnp.asarray(X), *args)))  # noqa: E731
    x0 = walkers_in_support(center, np.full(center.size, 0.05), nw, rng, ok)
    chain = run_ensemble(lp, x0, name="size stage (alpha, tau)", seed=seed, max_steps=max_steps,
                         min_ess=n_draws, moves=ridge_moves() if scale_step else None,
                         args=args, sampler=SIZE_SAMPLER)
    flat = chain.flat()
    pick = flat[rng.integers(0, flat.shape[0], n_draws)]
    G, S = y.shape
    if units is None:
        units = np.arange(G)[:, None]
    U, K = units.shape
    Ls = (psd_sqrt(step_cov) if step_cov is not None
          else np.sqrt(np.moveaxis(s2[units], 1, 2))[..., None])          # (U, S, K, K)
    LR = psd_sqrt(np.eye(K) if noise_corr is None else np.asarray(noise_corr, float))
    wu = np.moveaxis(w[units], 1, 2)                                       # (U, S, K)
    yu = np.moveaxis(y[units], 1, 2)
    Y = np.empty((n_draws, G))
    ymin = np.where(w > 0, y, np.inf).min(1)
    unit_of = np.empty(G, int)
    unit_of[units.ravel()] = np.repeat(np.arange(U), K)
    n_bad = 0

    def errors(tau: float, m: int) -> np.ndarray:
        z1, z2 = rng.standard_normal((2, m, S, K))
        return np.einsum("usij,usj->usi", Ls, z1) + tau * z2 @ LR.T

    s2_in, Ls_in = s2, Ls
    for s_, th in enumerate(pick):
        nt = 2 if scale_step else 1
        alpha_g = np.exp(th[:-nt])[block]
        tau = float(np.exp(th[-nt]))
        lam = float(np.exp(th[-1])) if scale_step else 1.0
        s2, Ls = s2_in * lam**2, Ls_in * lam
        mean, cov = _size_conditional(alpha_g, tau, x_log, y, s2, w)
        x = np.expm1(-alpha_g[:, None] * x_log) / alpha_g[:, None]
        iv = w / (y * y * (s2 + tau**2))
        e = np.zeros((G, S))
        e[units.ravel()] = np.moveaxis(errors(tau, U) * yu * wu, 1, 2).reshape(U * K, S)

        def shift(e_):
            b = np.stack([(iv * e_).sum(1), (iv * x * e_).sum(1)], -1)
            return np.einsum("gij,gj->gi", cov, b)

        ea = mean + shift(e)
        for _ in range(10):                     # physical region: 0 < E < min y, A > 0
            E = ea[:, 0] - ea[:, 1] / alpha_g
            bad = (E <= 0) | (E >= ymin) | (ea[:, 1] <= 0)
            if not bad.any():
                break
            bu = np.unique(unit_of[bad])        # redraw whole runs-units (keeps the coupling)
            eu = errors(tau, U)[bu] * yu[bu] * wu[bu]
            rows = units[bu].ravel()
            e[rows] = np.moveaxis(eu, 1, 2).reshape(-1, S)
            ea[rows] = (mean + shift(e))[rows]
        E = ea[:, 0] - ea[:, 1] / alpha_g
        bad = (E <= 0) | (E >= ymin) | (ea[:, 1] <= 0)
        if bad.any():                           # exact per-group draw from the truncated Gaussian
            n_bad += int(bad.sum())
            ea[bad] = _truncated_draw(mean[bad], cov[bad], alpha_g[bad], ymin[bad], rng)
        Y[s_] = ea[:, 0] + ea[:, 1] * np.expm1(-alpha_g * x_target) / alpha_g
    if n_bad > 0.05 * n_draws * G:
        warnings.warn(f"size stage: {n_bad} of {n_draws * G} (draw, group) size laws stayed "
                      f"outside the physical region 0 < E < min y, A > 0 after 10 joint redraws; "
                      f"they were drawn from their truncated conditional group by group, which "
                      f"loses their error correlation across domains", ChainWarning, stacklevel=2)
    chain = Chain(samples=chain.samples,
                  diagnostics=dataclasses.replace(chain.diagnostics, unphysical=n_bad))
    return Y, np.exp(pick[:, -2 if scale_step else -1]), chain
