r"""emcee posterior of the joint law ``L_d(r, N, D)``, and prediction intervals from it.

The law (:class:`mixlaws.fit.JointMixingLaw`), per validation domain ``d``, fitted to every
post-warm-up checkpoint ``i`` (mixture ``r_i``, model size ``N_i``, tokens ``D_i``) of every run:

.. math::

    L_d(r, N, D) = c_d + k_d e^{t_d \cdot r} + A^{ref}_d (N/N_{ref})^{-\alpha_d}
                   + B^{ref}_d (D/D_{ref})^{-\beta_d}, \qquad t_d = H u_d,

``H`` the sum-zero basis (:func:`mixlaws.laws.sum_zero_basis`), ``N_ref, D_ref`` the fit's
geometric-mean scales (``A_d = A^ref_d N_ref^{alpha_d}`` and ``B_d = B^ref_d D_ref^{beta_d}``
are the canonical amplitudes).

Likelihood. Relative Student-t errors with a learned scale per domain,
``y_i = L_d(r_i, N_i, D_i) + y_i eps_i``, ``eps_i ~ t_4(0, sigma_d)``. Given the nonlinear
parameters ``phi = (u, log alpha, log beta)`` the law is linear in the amplitudes
``a = (c, k, A_ref, B_ref)`` (design columns ``1, exp(R H u), (N/N_ref)^(-alpha),
(D/D_ref)^(-beta)``), which are integrated out by Laplace's method
(:func:`mixlaws.posterior.student_marginal`) over the physical box ``0 < c < min_i y_i``,
``k, A_ref, B_ref > 0`` (:func:`mixlaws.posterior.log_box_probability`).

Correlated checkpoints. The checkpoints of one run share its seed and its deviation from the
law, so they are far from independent: a posterior that counts them as independent is too
narrow (DESIGN §5). A run-level random effect is out of scope; the likelihood is *tempered*
instead, ``p(y | theta)^lambda_d`` with ``lambda_d = n_eff / n`` the Kish design effect of
equicorrelated clusters,

.. math::

    \lambda_d = \frac{1}{1 + (\bar m - 1)\,\rho_d}, \qquad \bar m = n / n_{runs},

``rho_d`` the lag-1 autocorrelation of the best fit's relative residuals between consecutive
checkpoints of a run (pooled over runs, residuals winsorised at 4 robust sd, clipped to
``[0, 1]``). Why this factor: the parameters that carry the extrapolation to a new scale
(``t``, ``alpha``, and the amplitudes) are pinned by contrasts *between* runs, whose
information grows with ``n / (1 + (m - 1) rho)`` when a run's ``m`` errors share a
correlation ``rho`` (for a run-level offset plus checkpoint noise the lag-1 autocorrelation
*is* that intra-run correlation; for AR(1)-like errors it overstates the design effect, i.e.
errs wide). It runs from ``1`` (independent checkpoints) to ``n_runs / n`` (each run one
observation). The AR(1) factor ``(1 - rho)/(1 + rho)`` was not used: it ignores the number
of checkpoints per run, and a run offset shared by ``m = 10`` checkpoints with ``rho = 0.3``
needs ``lambda = 0.27``, not 0.54. Under tempering with Laplace's method the collapsed
marginal becomes ``lambda S + (p/2) log 2 pi - (1/2) log det(lambda I)`` (``S`` the
log-likelihood at the conditional mode, ``I`` its information) and the amplitudes'
conditional covariance ``I^{-1} / lambda``. ``temper=`` overrides ``lambda`` (1 = no correction).

Priors: ``u ~ N(0, 10^2)`` per coordinate, ``alpha_d, beta_d ~ U(0, 2)``,
``log sigma_d ~ U(log 1e-6, log 0.5)``, flat on ``(c, k, A_ref, B_ref)`` in the box above (flat
on the amplitudes at the reference scales, not on canonical ``A, B``, which would weigh the
exponents by ``N_ref^(-alpha)``, an artefact of the units).

Sampling: one emcee ensemble per domain over ``theta = (u, log alpha, log beta, log sigma)``
(:func:`mixlaws.posterior.run_ensemble`, JAX log-probability vectorised over walkers, run until
50 autocorrelation times and an ESS of ``n_draws``), walkers started around the best fit. The
amplitudes of each draw come from their conditional Gaussian restricted to the box; since the
chain weighs ``theta`` by the *product* of the per-coordinate box probabilities (poor when the
amplitudes are nearly collinear, e.g. ``beta -> 0``), a pool of chain draws is importance-
resampled with the Monte Carlo box probability over that product (:func:`_amplitudes`).
A new run's relative deviation is ``sigma_d t_4``, correlated across domains like the best
fit's residuals (multivariate t): :func:`joint_intervals`.

Calibration (``benchmarks/joint_posterior.py --calibration 16``: sweeps drawn from the joint
law, 8 mixtures x 4 sizes x 5 checkpoints, 0.3 % checkpoint and 0.2 % run noise, target
1e9 params x 2e10 tokens): the 90 % / 50 % intervals of the target mean law cover the truth in
84 % / 48 % of 64 cases with the design-effect tempering (median ``lambda`` 0.47), against
66 % / 31 % with ``temper=1`` (checkpoints independent); alpha 94 % / 56 %, beta 100 % / 75 %.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

from .. import _config  # noqa: F401
from .._threads import thread_map
from ._marginal import IRLS_ITERATIONS, Marginal, log_box_probability, student_marginal
from ..errors import MixlawsError
from ..fit import JointMixingLaw
from ..laws import joint_law, size_law, step_law, sum_zero_basis
from ..errors import ChainWarning, NotFittedError
from ..runs._warmup import drop_warmup
from ._mcmc import ChainDiagnostics, psd_sqrt, run_ensemble, walkers_in_support
from ..runs import RunsTable
from ..laws._priors import EFFECT_PRIOR_SD as _U_SD
from ..laws._priors import EXPONENT_MAX
from ..laws._priors import NU as NU_JOINT
from ..laws._priors import SCATTER_LOG_SIGMA as _LOG_SIGMA
from ._nested import Intervals

__all__ = ["JointPosterior", "sample_joint_posterior", "joint_intervals", "design_effect"]

_LOG_2PI = float(np.log(2 * np.pi))
_LOG_T0 = float(gammaln((NU_JOINT + 1) / 2) - gammaln(NU_JOINT / 2)
                - 0.5 * np.log(NU_JOINT * np.pi))


@dataclass(frozen=True, eq=False)
class JointPosterior:
    """Posterior draws of the joint law of every domain.

    Attributes
    ----------
    sources, domains : names; weights : ``(nd,)`` aggregation weights.
    c, k, A, alpha, B, beta : ``(S, nd)`` canonical parameters of draw ``s``;
        t : ``(S, nd, M)`` (rows sum to 0).
    sigma : ``(S, nd)`` relative noise scale of a checkpoint (Student-t scale, ``nu = 4``).
    noise_corr : ``(nd, nd)`` correlation of the best fit's residuals across domains.
    temper, rho : ``(nd,)`` likelihood tempering ``lambda_d`` and the residual lag-1
        autocorrelation it came from (``nan`` when ``temper`` was given).
    diagnostics : one :class:`~mixlaws.posterior.ChainDiagnostics` per domain.
    unphysical : pool draws of the exponents (``2 n_draws`` per domain) dropped because none
        of their 32 conditional amplitude draws was physical.
    weight_ess : ``(nd,)`` effective size of the physical-region importance weights.
    seed : seed of the draws.
    """

    sources: tuple[str, ...]
    domains: tuple[str, ...]
    weights: np.ndarray
    c: np.ndarray
    k: np.ndarray
    t: np.ndarray
    A: np.ndarray
    alpha: np.ndarray
    B: np.ndarray
    beta: np.ndarray
    sigma: np.ndarray
    noise_corr: np.ndarray
    temper: np.ndarray
    rho: np.ndarray
    diagnostics: tuple[ChainDiagnostics, ...]
    unphysical: int
    weight_ess: np.ndarray
    seed: int

    @property
    def n_draws(self) -> int:
        """Number of draws ``S``."""
        return int(self.c.shape[0])

    def domain_draws(self, mixtures: np.ndarray, params: float, tokens: float) -> np.ndarray:
        """Mean-law losses ``(S, n, nd)`` of ``mixtures (n, M)`` at ``(params, tokens)``."""
        r = np.atleast_2d(np.asarray(mixtures, float))
        mix = np.exp(np.einsum("nj,sdj->snd", r, self.t))
        scale = np.asarray(size_law(params, 0.0, self.A, self.alpha)
                           + step_law(tokens, 0.0, self.B, self.beta))
        return self.c[:, None] + self.k[:, None] * mix + scale[:, None]

    def loss_draws(self, mixtures: np.ndarray, params: float, tokens: float) -> np.ndarray:
        """Aggregate mean-law losses ``(S, n)``."""
        return self.domain_draws(mixtures, params, tokens) @ self.weights


def tempered_marginal(X: jax.Array, y: jax.Array, log_sigma: jax.Array, lam: jax.Array,
                      lower: jax.Array, upper: jax.Array, nu: float = NU_JOINT
                      ) -> tuple[jax.Array, Marginal]:
    """Log of ``∫_box p(y | X a, sigma)^lam da`` (Laplace) and the untempered :class:`Marginal`.

    ``X (n, p)`` design, ``y (n,)`` data, ``lam`` the tempering, ``lower/upper (p,)`` the box.
    The conditional posterior of the amplitudes is ``N(m.mean, m.cov / lam)``.
    """
    n, p = X.shape
    m = student_marginal(X, y, jnp.zeros(n), log_sigma, jnp.ones(n), nu)
    g = 0.5 * p * _LOG_2PI + 0.5 * jnp.linalg.slogdet(m.cov)[1]   # Laplace terms of m.log_p
    lp = lam * (m.log_p - g) + g - 0.5 * p * jnp.log(lam)
    return lp + log_box_probability(m.mean, m.cov / lam, lower, upper), m


def _design(theta: jax.Array, RH: jax.Array, xN: jax.Array, xD: jax.Array) -> jax.Array:
    m1 = RH.shape[1]
    u, alpha, beta = theta[:m1], jnp.exp(theta[m1]), jnp.exp(theta[m1 + 1])
    return jnp.stack([jnp.ones_like(xN), jnp.exp(RH @ u), jnp.exp(-alpha * xN),
                      jnp.exp(-beta * xD)], axis=1)


def _box(y: jax.Array) -> tuple[jax.Array, jax.Array]:
    return jnp.zeros(4), jnp.stack([jnp.min(y), jnp.inf, jnp.inf, jnp.inf])


def _log_prior(theta: jax.Array, m1: int) -> tuple[jax.Array, jax.Array]:
    """``(in_support, log prior density)`` of ``theta`` (``U(0, 2)`` exponents in log space)."""
    la, lb, ls = theta[m1], theta[m1 + 1], theta[m1 + 2]
    ok = ((la < np.log(EXPONENT_MAX)) & (lb < np.log(EXPONENT_MAX))
          & (ls > _LOG_SIGMA[0]) & (ls < _LOG_SIGMA[1]))
    return ok, la + lb - 0.5 * jnp.sum(theta[:m1] ** 2) / _U_SD**2


def _chol_solve(G: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    L = jnp.linalg.cholesky(G)
    return jax.scipy.linalg.cho_solve((L, True), b), L


def _fast(theta: jax.Array, RH: jax.Array, xN: jax.Array, xD: jax.Array, y: jax.Array,
          lam: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """:func:`tempered_marginal` of the joint design specialised to ``s2 = 0``, unit mask.

    With ``X_q = X / y`` the conditional mode does not depend on ``sigma`` for given IRLS
    weights and the unweighted Gram ``X_q^T X_q`` serves the first solve and the information;
    about 25 % faster than the general function. Returns ``(log marginal, mean, cov)``.
    """
    Xq = _design(theta, RH, xN, xD) / y[:, None]
    p = Xq.shape[1]
    one = jnp.ones_like(y)
    a, L0 = _chol_solve(Xq.T @ Xq, Xq.T @ one)
    s = jnp.exp(theta[-1])
    for _ in range(IRLS_ITERATIONS):
        z = (one - Xq @ a) / s
        om = (NU_JOINT + 1) / (NU_JOINT + z * z)
        a, _ = _chol_solve((Xq * om[:, None]).T @ Xq, Xq.T @ om)
    z = (one - Xq @ a) / s
    k = (NU_JOINT + 1) / (NU_JOINT + 3)
    loglik = (y.size * (_LOG_T0 - jnp.log(s)) - jnp.sum(jnp.log(y))
              - 0.5 * (NU_JOINT + 1) * jnp.sum(jnp.log1p(z * z / NU_JOINT)))
    logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(L0))) + p * jnp.log(lam * k) - 2 * p * jnp.log(s)
    cov = jax.scipy.linalg.cho_solve((L0, True), jnp.eye(p)) * (s * s / (lam * k))
    lp = lam * loglik + 0.5 * p * _LOG_2PI - 0.5 * logdet
    return lp + log_box_probability(a, cov, *_box(y)), a, cov


def joint_log_prob(theta: jax.Array, RH: jax.Array, xN: jax.Array, xD: jax.Array, y: jax.Array,
                   lam: jax.Array) -> jax.Array:
    """Log posterior of ``theta = (u (M-1), log alpha, log beta, log sigma)`` of one domain.

    ``RH (n, M-1)`` mixtures times ``H``, ``xN, xD (n,)`` log size and tokens minus the
    references, ``y (n,)`` losses, ``lam`` the tempering (one walker; vmap over walkers).
    Equal to :func:`tempered_marginal` of the joint design plus the log prior (tested).
    """
    ok, prior = _log_prior(theta, RH.shape[1])
    lp = _fast(theta, RH, xN, xD, y, lam)[0] + prior
    return jnp.where(ok & jnp.isfinite(lp), lp, -jnp.inf)


_batched_lp = jax.jit(jax.vmap(joint_log_prob, in_axes=(0, None, None, None, None, None)))


def _conditional_one(theta: jax.Array, RH: jax.Array, xN: jax.Array, xD: jax.Array,
                     y: jax.Array, lam: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Conditional mean ``(4,)``, covariance ``(4, 4)`` and log box-probability of ``a``."""
    _, mean, cov = _fast(theta, RH, xN, xD, y, lam)
    return mean, cov, log_box_probability(mean, cov, *_box(y))


_conditional = jax.jit(jax.vmap(_conditional_one, in_axes=(0, None, None, None, None, None)))


def _winsor(e: np.ndarray) -> np.ndarray:
    med = np.median(e, 0)
    mad = 1.4826 * np.median(np.abs(e - med), 0) + 1e-300
    return np.clip(e, med - 4 * mad, med + 4 * mad)


def design_effect(resid: np.ndarray, run: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tempering ``lambda (nd,)`` and lag-1 autocorrelation ``rho (nd,)`` of residuals.

    ``resid (n, nd)`` relative residuals ordered by tokens within each run, ``run (n,)`` run
    labels. ``lambda = 1 / (1 + (n / n_runs - 1) rho)`` (see the module docstring).
    """
    e = _winsor(resid)
    e = e - e.mean(0)
    same = run[1:] == run[:-1]
    if not same.any():
        return np.ones(e.shape[1]), np.zeros(e.shape[1])
    var = (e * e).mean(0)
    rho = np.clip((e[1:] * e[:-1])[same].mean(0) / np.where(var > 0, var, 1.0), 0.0, 1.0)
    m = run.size / np.unique(run).size
    return 1.0 / (1.0 + (m - 1.0) * rho), rho


def _data(model: JointMixingLaw, runs: RunsTable) -> tuple[np.ndarray, ...]:
    """The rows ``model.fit`` used (post-warm-up), sorted by run then tokens."""
    df = drop_warmup(runs.data, model.warmup)
    order = np.lexsort((df["tokens"].to_numpy(float), df["run"].astype(str).to_numpy()))
    df = df.iloc[order]
    R = df[[f"mix:{s}" for s in model.sources_]].to_numpy(float)
    xN = np.log(df["params"].to_numpy(float)) - model.logNref_
    xD = np.log(df["tokens"].to_numpy(float)) - model.logDref_
    Y = df[[f"loss:{d}" for d in model.domains_]].to_numpy(float)
    return R, xN, xD, Y, df["run"].astype(str).to_numpy()


def _amplitudes(mean: np.ndarray, cov: np.ndarray, log_box: np.ndarray, ymin: float,
                n_draws: int, rng: np.random.Generator, n_try: int = 32,
                ) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Physical amplitude draws for a pool of chain draws, with the box probability made exact.

    The chain weighs each ``theta`` by the product approximation ``P~`` of the probability of
    the box (:func:`~mixlaws.posterior.log_box_probability`). Here ``n_try`` conditional draws
    per pool member estimate the true probability ``f``; pool members are resampled with
    weights ``f / P~`` and each gets one of its physical draws (an exact draw from the
    truncated conditional). Returns the chosen pool indices, the amplitudes ``(n_draws, 4)``,
    the number of pool members without any physical draw, and the weights' effective size.
    """
    P = mean.shape[0]
    hi = np.array([ymin, np.inf, np.inf, np.inf])
    a = mean[:, None] + np.einsum("pij,pkj->pki", psd_sqrt(cov),
                                  rng.standard_normal((P, n_try, 4)))
    ok = np.all((a > 0) & (a < hi), axis=-1)                             # (P, n_try)
    f = ok.mean(1)
    with np.errstate(divide="ignore"):
        logw = np.where(f > 0, np.log(f) - log_box, -np.inf)
    if not np.isfinite(logw).any():
        raise MixlawsError("joint law: no posterior draw of the exponents admits physical "
                           "amplitudes (0 < c < min y, k, A, B > 0); check the fit")
    w = np.exp(logw - logw.max())
    pick = rng.choice(P, n_draws, p=w / w.sum())
    k = np.argmax(ok[pick] * rng.random((n_draws, n_try)), axis=1)
    return pick, a[pick, k], int(np.sum(f == 0)), float(w.sum() ** 2 / np.sum(w * w))


def _sample_domain(d: int, data: tuple[jax.Array, ...], y: np.ndarray, lam: float,
                   center: np.ndarray, n_draws: int, seed: int, max_steps: int, name: str,
                   ) -> tuple[np.ndarray, np.ndarray, int, float, ChainDiagnostics]:
    """emcee over one domain's ``theta``; returns ``theta (n_draws, dim)``, amplitudes
    ``(n_draws, 4)``, dropped pool draws, importance ESS and the chain's diagnostics."""
    rng = np.random.default_rng([seed, 21, d])
    args = data + (jnp.asarray(y), jnp.asarray(lam))
    lp = lambda X: _batched_lp(X, *args)  # noqa: E731
    ok = lambda X: np.isfinite(np.asarray(lp(jnp.asarray(X))))  # noqa: E731
    dim = center.size
    scale = np.concatenate([np.full(dim - 3, 1e-2), [2e-2, 2e-2, 5e-2]])
    x0 = walkers_in_support(center, scale, max(32, 4 * dim), rng, ok)
    chain = run_ensemble(lp, x0, name=name, seed=seed + d, min_steps=min(500, max_steps),
                         max_steps=max_steps, min_ess=n_draws, warn=False)
    flat = chain.flat()
    pool = flat[rng.integers(0, flat.shape[0], 2 * n_draws)]
    cond = (np.asarray(x) for x in _conditional(jnp.asarray(pool), *args))
    pick, a, dropped, w_ess = _amplitudes(*cond, float(y.min()), n_draws, rng)
    return pool[pick], a, dropped, w_ess, chain.diagnostics


def sample_joint_posterior(model: JointMixingLaw, runs: RunsTable, *, n_draws: int = 2000,
                           seed: int = 0, max_steps: int = 20000, temper: float | None = None,
                           workers: int | None = None) -> JointPosterior:
    """Posterior draws of the joint law of every domain of a fitted ``model``.

    ``runs`` must be the table ``model`` was fitted on. ``temper``: the tempering ``lambda``
    of every domain's likelihood (``1.0`` treats checkpoints as independent); by default the
    design effect of the best fit's residuals (:func:`design_effect`). ``workers``: domains
    sampled at once, in threads (default: one per core, see :func:`mixlaws._threads.workers`;
    the same draws whatever the number: every domain has its own seeds).
    Emits a :class:`~mixlaws.errors.ChainWarning` naming the domains whose chains stay
    shorter than 50 autocorrelation times within ``max_steps`` (each chain is also run until
    its ESS reaches ``n_draws``), or whose physical-region correction is strong.
    """
    if not hasattr(model, "fit_"):
        raise NotFittedError("this JointMixingLaw is not fitted yet: call fit(runs) first")
    if getattr(model, "law", "joint") != "joint":
        raise MixlawsError(f"the joint-law posterior samples the plain joint law, not "
                           f"{model.law!r}; fit JointMixingLaw for intervals")
    if len(model.sources_) < 2:
        raise MixlawsError("the joint-law posterior needs ≥ 2 sources (its collapsed amplitudes "
                           "include k of c + k exp(t . r)); this fit has one source")
    if temper is not None and not 0.0 < temper <= 1.0:
        raise MixlawsError(f"temper must be in (0, 1]; got {temper}")
    p = model.fit_.params
    M, nd = len(model.sources_), len(model.domains_)
    H = sum_zero_basis(M)
    R, xN, xD, Y, run = _data(model, runs)
    pred = np.asarray(joint_law(R, np.exp(xN[:, None] + model.logNref_),
                                np.exp(xD[:, None] + model.logDref_), **p))
    resid = Y / pred - 1.0
    if temper is None:
        lam, rho = design_effect(resid, run)
    else:
        lam, rho = np.full(nd, float(temper)), np.full(nd, np.nan)
    noise_corr = np.corrcoef(_winsor(resid), rowvar=False).reshape(nd, nd)
    noise_corr = np.where(np.isfinite(noise_corr), noise_corr, np.eye(nd))
    data = (jnp.asarray(R @ H), jnp.asarray(xN), jnp.asarray(xD))
    sig = np.clip(np.sqrt(np.mean(_winsor(resid) ** 2, 0) / 2), 2e-6, 0.4)  # t_4: sd = sigma √2
    centers = np.column_stack([p["t"] @ H, np.log(np.clip(p["alpha"], 2e-3, 0.95 * EXPONENT_MAX)),
                               np.log(np.clip(p["beta"], 2e-3, 0.95 * EXPONENT_MAX)), np.log(sig)])

    def one(d: int) -> tuple:
        return _sample_domain(d, data, Y[:, d], float(lam[d]), centers[d], n_draws, seed,
                              max_steps, f"joint law, domain {model.domains_[d]}")

    res = thread_map(one, range(nd), n_threads=workers, xla=True)
    th = np.stack([r[0] for r in res], 1)                               # (S, nd, dim)
    a = np.stack([r[1] for r in res], 1)                                # (S, nd, 4)
    alpha, beta = np.exp(th[..., M - 1]), np.exp(th[..., M])
    diags = tuple(r[4] for r in res)
    w_ess = np.array([r[3] for r in res])
    short = [dm for dm, dg in zip(model.domains_, diags) if not dg.converged]
    if short:
        worst = max(diags, key=lambda c: float(np.max(c.tau)))
        warnings.warn(f"joint law: the chains of {len(short)} of {nd} domains ({', '.join(short)}) "
                      f"are shorter than 50 autocorrelation times (worst: {worst.name}, tau = "
                      f"{np.max(worst.tau):.0f} steps, {worst.n_steps} steps); intervals may be "
                      f"unreliable: raise max_steps", ChainWarning, stacklevel=2)
    low = [dm for dm, e in zip(model.domains_, w_ess) if e < n_draws / 2]
    if low:
        warnings.warn(f"joint law: the physical-region correction of the amplitudes leaves fewer "
                      f"than n_draws / 2 effective draws in {', '.join(low)} (the exponents' chain "
                      f"over-weights unphysical regions there); treat their intervals with care",
                      ChainWarning, stacklevel=2)
    return JointPosterior(
        sources=tuple(model.sources_), domains=tuple(model.domains_),
        weights=np.asarray(model.weights_, float), c=a[..., 0], k=a[..., 1],
        t=th[..., :M - 1] @ H.T, A=a[..., 2] * np.exp(alpha * model.logNref_), alpha=alpha,
        B=a[..., 3] * np.exp(beta * model.logDref_), beta=beta, sigma=np.exp(th[..., -1]),
        noise_corr=noise_corr, temper=lam, rho=rho, diagnostics=diags,
        unphysical=sum(r[2] for r in res), weight_ess=w_ess, seed=seed)


def joint_intervals(post: JointPosterior, mixtures: np.ndarray, params: float, tokens: float,
                    level: float = 0.9, *, seed: int = 0) -> Intervals:
    """Posterior mean and central ``level`` intervals of the mean law and of a new run.

    New-run draws are ``L_d^(s) (1 + sigma_d^(s) e_d)`` with ``e`` multivariate ``t_4``
    (correlation ``post.noise_corr``), one per draw and mixture.
    """
    if not 0.0 < level < 1.0:
        raise MixlawsError(f"level must be in (0, 1), e.g. 0.9; got {level}")
    dom = post.domain_draws(mixtures, params, tokens)                   # (S, n, nd)
    S, n, nd = dom.shape
    rng = np.random.default_rng([seed, 23])
    z = rng.standard_normal((S, n, nd)) @ psd_sqrt(post.noise_corr).T
    e = z / np.sqrt(rng.chisquare(NU_JOINT, (S, n, 1)) / NU_JOINT)
    new = dom * (1.0 + post.sigma[:, None, :] * e)
    agg, agg_new = dom @ post.weights, new @ post.weights
    q = [(1 - level) / 2, (1 + level) / 2]
    a_lo, a_hi = np.quantile(agg, q, axis=0)
    n_lo, n_hi = np.quantile(agg_new, q, axis=0)
    d_lo, d_hi = np.quantile(dom, q, axis=0)
    dn_lo, dn_hi = np.quantile(new, q, axis=0)
    return Intervals(level=level, loss=agg.mean(0), lower=a_lo, upper=a_hi, new_lower=n_lo,
                     new_upper=n_hi, domain_loss=dom.mean(0), domain_lower=d_lo,
                     domain_upper=d_hi, domain_new_lower=dn_lo, domain_new_upper=dn_hi)
