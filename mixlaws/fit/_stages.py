"""The three stages of the nested pipeline, each a batched robust fit.

1. :func:`fit_step_stage` — per run, ``L_d(D) = E_d + B_d D^(-beta)`` for every
   validation domain ``d`` (``beta`` tied across a run's domains by default,
   as in Ye et al. 2024);
2. :func:`fit_size_stage` — per mixture and domain, at the target tokens,
   ``L(N) = E + A N^(-alpha)`` (``alpha`` tied across all mixtures and domains
   by default);
3. :func:`fit_mixing_stage` — per domain, ``L_d(r) = c_d + k_d exp(t_d . r)``
   with ``sum_j t_dj = 0``; or :func:`fit_implicit_stage` for implicit
   aggregation over ``K`` latent domains.

Amplitudes are fitted against a reference scale (the geometric mean of the
data's ``D`` or ``N``) to decorrelate them from the exponents, then reported in
the canonical form above.  Each stage returns a :class:`StageFit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from .. import _config  # noqa: F401

from ..errors import InsufficientDataError
from ._bounds import bound_warning
from ._engine import (GroupSolution, JacobianStructure, profile_shared, solve_groups,
                      warn_unconverged)
from ..laws import (implicit_mixing_law, mixing_law, mixing_params, mixing_theta,
                    power_law_log, sum_zero_basis)

__all__ = ["StageFit", "fit_step_stage", "fit_size_stage", "fit_mixing_stage",
           "fit_sum_mixing_stage", "refit_mixing_stage", "fit_implicit_stage", "mixing_stage_law",
           "TIE_BETA", "TIE_ALPHA"]

TIE_BETA = ("run", "all", "none")
TIE_ALPHA = ("all", "domain", "none")
_LOG_FLOOR = -30.0
AGREE_STARTS = 3
"""The mixing stage and the joint law stop trying starts once this many have reached every
domain's best objective (:func:`~mixlaws.fit.solve_groups`'s ``agree``)."""


@dataclass(frozen=True)
class StageFit:
    """Fitted parameters and diagnostics of one stage.

    Attributes
    ----------
    stage : ``"step"``, ``"size"``, ``"mixing"`` or ``"implicit"``.
    law : formula of the fitted law.
    labels : one label per group (run, mixture/domain, domain).
    params : canonical parameter arrays, leading axis = groups.
    stderr : Gauss-Newton standard errors, same shapes (``inf`` if unidentified).
    correlations : median over groups of the correlation of named parameter pairs.
    rmse : root mean square log-residual (≈ relative error) over all points.
    max_abs_residual : largest absolute log-residual.
    n_data, n_params : number of residuals and of free parameters.
    converged : per group.
    at_bound : per group, a parameter sits on its bound.
    warnings : human-readable warnings (non-convergence, bounds).
    """

    stage: str
    law: str
    labels: tuple[str, ...]
    params: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]
    correlations: dict[str, float]
    rmse: float
    max_abs_residual: float
    n_data: int
    n_params: int
    converged: np.ndarray
    at_bound: np.ndarray
    warnings: tuple[str, ...] = field(default=())


def _ls_two(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares of ``y = a + b x`` along the last axis (vectorised)."""
    sw = w.sum(-1)
    mx = (w * x).sum(-1) / sw
    my = (w * y).sum(-1) / sw
    vx = (w * (x - mx[..., None]) ** 2).sum(-1)
    cxy = (w * (x - mx[..., None]) * (y - my[..., None])).sum(-1)
    b = np.where(vx > 0, cxy / np.where(vx > 0, vx, 1.0), 0.0)
    return my - b * mx, b


def _power_starts(logx: np.ndarray, y: np.ndarray, w: np.ndarray, exponents: np.ndarray,
                  ymin: np.ndarray, ymax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts (log E, log amplitude) of ``y = E + a exp(-e logx)`` for each exponent by LS."""
    Es, As = [], []
    for e in exponents:
        x = np.exp(-e * logx)
        E, a = _ls_two(x, y, w)
        E = np.clip(E, 0.05 * ymin, 0.98 * ymin)
        a = np.maximum(a, 1e-6 * ymax)
        Es.append(np.log(E))
        As.append(np.log(a))
    return np.stack(Es), np.stack(As)


def _summarise(stage: str, law: str, labels: Sequence[str], sol: GroupSolution,
               weights: np.ndarray, params: dict[str, np.ndarray], stderr: dict[str, np.ndarray],
               correlations: dict[str, float], n_params: int,
               converged: np.ndarray | None = None,
               names: Sequence[tuple[str, str | None]] | None = None,
               emit: bool = True) -> StageFit:
    mask = weights > 0
    rr = sol.residuals[mask]
    conv = sol.converged if converged is None else converged
    warns = warn_unconverged(f"{stage} stage", list(labels), conv, sol.decrement, emit=emit)
    if sol.at_bound.any():
        warns.append(bound_warning(stage, labels, sol, mask, names))
    return StageFit(
        stage=stage, law=law, labels=tuple(labels), params=params, stderr=stderr,
        correlations=correlations, rmse=float(np.sqrt(np.mean(rr**2))) if rr.size else 0.0,
        max_abs_residual=float(np.max(np.abs(rr))) if rr.size else 0.0,
        n_data=int(mask.sum()), n_params=n_params, converged=np.asarray(conv, bool),
        at_bound=sol.at_bound, warnings=tuple(warns),
    )


def _corr(cov: np.ndarray, i: int, j: int) -> float:
    """Median over groups of the correlation between parameters ``i`` and ``j``."""
    d = np.sqrt(cov[:, i, i] * cov[:, j, j])
    ok = np.isfinite(d) & (d > 0)
    if not ok.any():
        return float("nan")
    return float(np.median(cov[ok, i, j] / d[ok]))


def _lin_stderr(var: np.ndarray) -> np.ndarray:
    """Standard error from a variance (``inf`` where not identified)."""
    return np.where(np.isfinite(var), np.sqrt(np.abs(var)), np.inf)


def _log_stderr(values: np.ndarray, var_log: np.ndarray) -> np.ndarray:
    """Delta-method standard error of ``exp(x)`` from the variance of ``x``."""
    return np.where(np.isfinite(var_log), values * np.sqrt(np.maximum(var_log, 0.0)), np.inf)


# --- residual functions (module level: they key JAX's compilation cache) -----------------

def _step_residual(theta: jnp.ndarray, data: Any) -> jnp.ndarray:
    x, y = data                                   # (C,), (C, nd)
    nd = y.shape[1]
    nb = theta.size - 2 * nd
    E = theta[:nd]
    B = theta[nd:2 * nd]
    beta = jnp.exp(theta[2 * nd:2 * nd + nb])
    pred = power_law_log(x[:, None], E, B, beta)
    return (jnp.log(pred) - jnp.log(y)).ravel()


def _step_residual_shared(theta: jnp.ndarray, data: Any) -> jnp.ndarray:
    x, y, log_beta = data                         # (C,), (C, nd), () shared exponent
    nd = y.shape[1]
    pred = power_law_log(x[:, None], theta[:nd], theta[nd:], jnp.exp(log_beta))
    return (jnp.log(pred) - jnp.log(y)).ravel()


def step_structure(n_checkpoints: int, n_domains: int, n_beta: int | None) -> JacobianStructure:
    """Jacobian structure of :func:`_step_residual` (``n_beta`` 1 or ``n_domains``) or, with
    ``n_beta=None``, of :func:`_step_residual_shared`: residual ``(c, d)`` uses ``E_d``,
    ``B_d`` and its ``beta``."""
    d = np.tile(np.arange(n_domains), n_checkpoints)
    cols = [d, n_domains + d]
    dom = np.arange(n_domains)
    blocks = [dom, n_domains + dom]                 # (E_d, B_d) local; a run's beta global
    if n_beta is not None:
        cols.append(2 * n_domains + (d if n_beta > 1 else np.zeros_like(d)))
        if n_beta > 1:
            blocks.append(2 * n_domains + dom)      # beta_d local too: domains separate
    return JacobianStructure(np.stack(cols, 1),
                             2 * n_domains + (0 if n_beta is None else n_beta),
                             blocks=np.stack(blocks, 1))


def _size_residual(theta: jnp.ndarray, data: Any) -> jnp.ndarray:
    x, y, log_alpha = data                        # (S,), (S,), () shared exponent (nan: free)
    la = jnp.where(theta.size == 3, theta[-1], log_alpha)
    pred = power_law_log(x, theta[0], jnp.exp(theta[1]), jnp.exp(la))
    return jnp.log(pred) - jnp.log(y)


def _mixing_residual(theta: jnp.ndarray, data: Any) -> jnp.ndarray:
    RH, y = data                                  # (n, M-1), (n,)
    pred = mixing_law(RH, theta[0], jnp.exp(theta[1]), theta[2:])     # r . t = (r H) . u
    return jnp.log(pred) - jnp.log(y)


def _mixing_normal_equations(theta: jnp.ndarray, data: Any, psi: jnp.ndarray,
                             omega: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``J^T psi`` and ``J^T diag(omega) J`` of :func:`_mixing_residual` in closed form.

    With ``g = k exp(RH u)`` and ``pred = c + g`` the Jacobian of ``log(pred / y)`` in
    ``(c, log k, u)`` is ``[1, g, g RH] / pred``, so no forward-mode products are needed and
    the ``u`` block is one weighted Gram matrix ``RH^T diag(omega g^2 / pred^2) RH``: about
    half the work of differentiating and multiplying out a 512-row, 65-column Jacobian on a
    swarm's mixing stage.  The engine uses it for the dense normal equations
    (:func:`mixlaws.fit._engine._normal_equations`).
    """
    RH, _ = data
    g = jnp.exp(theta[1] + RH @ theta[2:])
    a = 1.0 / (theta[0] + g)                      # d r / d c
    b = g * a                                     # d r / d log k; d r / d u = b RH
    grad = jnp.concatenate([jnp.stack([a @ psi, b @ psi]), RH.T @ (b * psi)])
    wa, wb = omega * a, omega * b
    top = jnp.stack([jnp.concatenate([jnp.stack([wa @ a, wa @ b]), RH.T @ (wa * b)]),
                     jnp.concatenate([jnp.stack([wb @ a, wb @ b]), RH.T @ (wb * b)])])
    Huu = (RH * (wb * b)[:, None]).T @ RH
    return grad, jnp.concatenate([top, jnp.concatenate([top[:, 2:].T, Huu], 1)], 0)


_mixing_residual.normal_equations = _mixing_normal_equations  # type: ignore[attr-defined]


def _implicit_residual(theta: jnp.ndarray, data: Any) -> jnp.ndarray:
    RH, y = data                                  # (n, M-1), (n,)
    m1 = RH.shape[1]
    K = (theta.size - 1) // (m1 + 1)
    a = theta[1:1 + K]
    U = theta[1 + K:].reshape(K, m1)
    pred = implicit_mixing_law(RH, theta[0], a, U)
    return jnp.log(pred) - jnp.log(y)


# --- stages ---------------------------------------------------------------------------------

def fit_step_stage(
    labels: Sequence[str], tokens: np.ndarray, losses: np.ndarray, mask: np.ndarray, *,
    tie: str = "run", delta: float = 1e-3, n_starts: int = 3,
    domains: Sequence[str] | None = None,
) -> StageFit:
    """Fit ``L_d(D) = E_d + B_d D^(-beta)`` to every run.

    Parameters
    ----------
    labels : run identifiers, length ``G``.
    tokens : ``(G, C)`` checkpoint tokens, padded.
    losses : ``(G, C, n_domains)`` validation losses, padded.
    mask : ``(G, C)`` 1 for real checkpoints (≥ 3 per run), 0 for padding; or
        ``(G, C, n_domains)`` per-cell weights, 0 also for a missing loss (a checkpoint
        with every domain's cell 0 is dropped; each (run, domain) needs ≥ 2 cells).
    tie : ``"run"`` shares ``beta`` across a run's domains (Ye et al.); ``"all"``
        one ``beta`` for every run and domain (profiled; steadiest when runs are
        short); ``"none"`` one per run and domain.
    domains : names of the domains, for the warnings.
    """
    G, C, nd = losses.shape
    nb = nd if tie == "none" else 1
    mask = np.asarray(mask, float)
    w3 = np.broadcast_to(mask[..., None] if mask.ndim == 2 else mask, losses.shape).astype(float)
    rows = (w3 > 0).any(-1).astype(float)          # (G, C) checkpoints with any cell
    logD = np.log(np.where(rows > 0, tokens, 1.0))
    logDref = (logD * rows).sum(1) / rows.sum(1)
    x = np.where(rows > 0, logD - logDref[:, None], 0.0)
    y = np.where(w3 > 0, losses, 1.0)
    empty = w3.sum(1) < 2                           # (G, nd) a (run, domain) without a law
    ymin = np.where(empty, 1.0, np.where(w3 > 0, y, np.inf).min(1))
    ymax = np.where(empty, 1.0, np.where(w3 > 0, y, -np.inf).max(1))
    P = 2 * nd + nb
    bounds = np.zeros((G, P, 2))
    bounds[:, :nd, 0] = 0.0
    bounds[:, :nd, 1] = ymin
    bounds[:, nd:2 * nd, 0] = 0.0
    bounds[:, nd:2 * nd, 1] = 100.0 * ymax
    bounds[:, 2 * nd:] = [np.log(1e-3), np.log(3.0)]
    exps = np.geomspace(0.1, 1.2, n_starts)
    logE, logB = _power_starts(np.broadcast_to(x[:, None, :], (G, nd, C)), np.moveaxis(y, 1, 2),
                               np.moveaxis(w3, 1, 2), exps, ymin, ymax)
    starts = np.zeros((n_starts, G, P))
    starts[:, :, :nd], starts[:, :, nd:2 * nd] = np.exp(logE), np.exp(logB)
    starts[:, :, 2 * nd:] = np.log(exps)[:, None, None]
    weights = w3.reshape(G, C * nd)
    if tie == "all":
        shared_structure = step_structure(C, nd, None)

        def solve_at(lb: float) -> GroupSolution:
            data = (jnp.asarray(x), jnp.asarray(y), jnp.full(G, lb))
            return solve_groups(_step_residual_shared, data, weights, bounds[:, :2 * nd],
                                starts[:, :, :2 * nd][[int(np.argmin(np.abs(exps - np.exp(lb))))]],
                                delta=delta, structure=shared_structure)
        n_pts = float(weights.sum())
        prof = profile_shared(solve_at, np.log(1e-2), np.log(2.0), delta=delta,
                              sigma2=lambda s: float((s.residuals**2 * weights).sum()
                                                     / max(n_pts - 2 * nd * G - 1, 1)))
        sol = prof.solution
        cov = np.zeros((G, P, P))
        cov[:, :2 * nd, :2 * nd] = sol.cov
        cov[:, 2 * nd, 2 * nd] = prof.stderr**2
        theta = np.concatenate([sol.theta, np.full((G, 1), prof.value)], 1)
        sol = GroupSolution(theta=theta, objective=sol.objective, decrement=sol.decrement,
                            converged=sol.converged & prof.converged, at_bound=sol.at_bound,
                            cov=cov, sigma2=sol.sigma2, residuals=sol.residuals,
                            iterations=sol.iterations, n_starts=sol.n_starts,
                            bound_side=None if sol.bound_side is None else np.concatenate(
                                [sol.bound_side, np.zeros((G, 1), np.int8)], 1))
    else:
        sol = solve_groups(_step_residual, (jnp.asarray(x), jnp.asarray(y)), weights, bounds,
                           starts, delta=delta, structure=step_structure(C, nd, nb))
    th, cov = sol.theta, sol.cov
    E, Bref, beta = th[:, :nd], th[:, nd:2 * nd], np.exp(th[:, 2 * nd:])
    beta_d = np.broadcast_to(beta, (G, nd))
    B = Bref * np.exp(beta_d * logDref[:, None])
    diag = np.diagonal(cov, axis1=1, axis2=2)
    bidx = 2 * nd + (np.arange(nd) if nb > 1 else np.zeros(nd, int))
    var_lb = diag[:, bidx]
    # canonical B = Bref * Dref^beta (delta method in the fitted coordinates Bref, log beta)
    dB_dBref = np.exp(beta_d * logDref[:, None])
    dB_dlogbeta = B * beta_d * logDref[:, None]
    var_B = (dB_dBref**2 * diag[:, nd:2 * nd] + dB_dlogbeta**2 * var_lb
             + 2 * dB_dBref * dB_dlogbeta * cov[:, np.arange(nd, 2 * nd), bidx])
    E, B = np.where(empty, np.nan, E), np.where(empty, np.nan, B)
    params = {"E": E, "B": B, "beta": beta if tie == "none" else beta[:, 0]}
    stderr = {"E": np.where(empty, np.inf, _lin_stderr(diag[:, :nd])),
              "B": np.where(np.isfinite(var_B) & ~empty, np.sqrt(np.abs(var_B)), np.inf),
              "beta": _log_stderr(params["beta"], diag[:, 2 * nd:] if nb > 1 else diag[:, 2 * nd])}
    corr = {"E~B": _corr(cov, 0, nd), "B~beta": _corr(cov, nd, 2 * nd)}
    law = "L_d(D) = E_d + B_d * D^(-beta)" + {"run": " (beta shared by a run's domains)",
                                               "all": " (beta shared by all runs and domains)",
                                               "none": ""}[tie]
    dn = list(domains) if domains is not None else [f"#{d}" for d in range(nd)]
    names = ([("E", d) for d in dn] + [("B", d) for d in dn]
             + ([("beta", d) for d in dn] if nb > 1 else [("beta", None)]))
    return _summarise("step", law, labels, sol, weights, params, stderr, corr, G * P,
                      names=names)


def fit_size_stage(
    labels: Sequence[str], sizes: np.ndarray, losses: np.ndarray, mask: np.ndarray,
    domain_index: np.ndarray, n_domains: int, *, tie: str = "all", delta: float = 1e-3,
) -> StageFit:
    """Fit ``L(N) = E + A N^(-alpha)`` per (mixture, domain) group at fixed tokens.

    Parameters
    ----------
    labels : group labels ``"<mixture>/<domain>"``, length ``G``.
    sizes : ``(G, S)`` model sizes, padded.
    losses : ``(G, S)`` losses at the target tokens, padded.
    mask : ``(G, S)`` 1 for real points.
    domain_index : ``(G,)`` domain of each group (for ``tie="domain"``).
    tie : ``"all"`` one ``alpha`` for every group (profiled), ``"domain"`` one
        per domain (profiled per domain), ``"none"`` one per group (needs ≥ 3 sizes).

    An exponent is identified only by groups with ≥ 3 sizes: through two points every
    ``alpha`` fits ``E + A N^-alpha`` exactly (``E, A`` solve the two equations), so a shared
    ``alpha`` needs at least one such group among those sharing it (the others, at 2 sizes,
    then follow it). Without one the profile is flat wherever ``E`` stays in its box, the
    fitted ``alpha`` is whatever rounding picks there (two step fits of Ye et al.'s runs at
    18.9M and 85.1M params, equal to 8e-6, gave 0.18 and 0.37, and 305M predictions 1.4 %
    apart), and this raises :class:`~mixlaws.errors.InsufficientDataError`.
    """
    G, S = losses.shape
    needed = 3 if tie == "none" else 2
    found = int(mask.sum(1).min()) if G else 0
    if G == 0 or found < needed:
        raise InsufficientDataError(
            f"size stage: each mixture needs runs at ≥ {needed} model sizes "
            f"(tie_alpha={tie!r}); found {found}", needed=needed, found=found)
    n_pts = mask.sum(1)
    sharing = [np.arange(G)] if tie == "all" else (   # the groups that share an exponent
        [np.flatnonzero(domain_index == d) for d in range(n_domains)] if tie == "domain" else [])
    for idx in sharing:
        if idx.size and n_pts[idx].max() < 3:
            raise InsufficientDataError(
                f"size stage: the size exponent (tie_alpha={tie!r}) is not identified by runs at "
                f"2 model sizes -- every exponent fits each (mixture, domain) exactly, so the "
                f"extrapolation in model size would be arbitrary; train some mixture at a third "
                f"size", needed=3, found=int(n_pts[idx].max()))
    logN = np.log(np.where(mask > 0, sizes, 1.0))
    logNref = float((logN * mask).sum() / mask.sum())
    x = np.where(mask > 0, logN - logNref, 0.0)
    y = np.where(mask > 0, losses, 1.0)
    w = mask.astype(float)
    ymin = np.where(mask > 0, y, np.inf).min(1)
    ymax = np.where(mask > 0, y, -np.inf).max(1)
    la_lo, la_hi = np.log(1e-3), np.log(2.0)

    def subproblem(idx: np.ndarray, P: int):
        bounds = np.zeros((idx.size, P, 2))
        bounds[:, 0] = np.stack([np.zeros(idx.size), ymin[idx]], -1)
        bounds[:, 1] = np.stack([np.full(idx.size, _LOG_FLOOR), np.log(100 * ymax[idx])], -1)
        if P == 3:
            bounds[:, 2] = [la_lo, la_hi]
        return bounds

    def starts_for(idx: np.ndarray, exps: np.ndarray, P: int) -> np.ndarray:
        logE, logA = _power_starts(x[idx], y[idx], w[idx], exps, ymin[idx], ymax[idx])
        st = np.zeros((exps.size, idx.size, P))
        st[..., 0], st[..., 1] = np.exp(logE), logA
        if P == 3:
            st[..., 2] = np.log(exps)[:, None]
        return st

    def solve(idx: np.ndarray, log_alpha: float, P: int, exps: np.ndarray) -> GroupSolution:
        data = (jnp.asarray(x[idx]), jnp.asarray(y[idx]), jnp.full(idx.size, log_alpha))
        return solve_groups(_size_residual, data, w[idx], subproblem(idx, P),
                            starts_for(idx, exps, P), delta=delta, pad=True)

    theta = np.zeros((G, 2))
    alpha = np.zeros(G)
    var_la = np.zeros(G)
    cov = np.zeros((G, 2, 2))
    conv = np.zeros(G, bool)
    decrement = np.zeros(G)
    at_bound = np.zeros(G, bool)
    side = np.zeros((G, 3), np.int8)              # E, log A, log alpha
    resid = np.zeros_like(y)
    if tie == "none":
        sol = solve(np.arange(G), np.nan, 3, np.geomspace(0.1, 1.2, 5))
        theta, alpha = sol.theta[:, :2], np.exp(sol.theta[:, 2])
        var_la, cov = sol.cov[:, 2, 2], sol.cov[:, :2, :2]
        conv, decrement, at_bound, resid = sol.converged, sol.decrement, sol.at_bound, sol.residuals
        side = sol.bound_side
        n_params = 3 * G
    else:
        for idx in sharing:
            if idx.size == 0:
                continue
            prof = profile_shared(
                lambda la, idx=idx: solve(idx, la, 2, np.array([np.exp(la)])), la_lo, la_hi,
                sigma2=lambda s: float((s.sigma2 * np.maximum(w[idx].sum(1) - 2, 1)).sum()
                                       / max(w[idx].sum() - 2 * idx.size - 1, 1)),
                delta=delta)
            sol = prof.solution
            theta[idx], alpha[idx], var_la[idx] = sol.theta, np.exp(prof.value), prof.stderr**2
            cov[idx], resid[idx] = sol.cov, sol.residuals
            conv[idx], decrement[idx] = sol.converged & prof.converged, sol.decrement
            edge = not prof.converged and (prof.value <= la_lo + 1e-6 or prof.value >= la_hi - 1e-6)
            at_bound[idx] = sol.at_bound | edge
            side[idx, :2] = sol.bound_side
            side[idx, 2] = (1 if prof.value >= la_hi - 1e-6 else -1) if edge else 0
        n_params = 2 * G + len(sharing)
    E = theta[:, 0].copy()
    A = np.exp(theta[:, 1] + alpha * logNref)
    diag = np.diagonal(cov, axis1=1, axis2=2)
    params = {"E": E, "A": A, "alpha": alpha}
    var_logA = diag[:, 1] + (alpha * logNref) ** 2 * var_la
    stderr = {"E": _lin_stderr(diag[:, 0]), "A": _log_stderr(A, var_logA),
              "alpha": _log_stderr(alpha, var_la)}
    corr = {"E~A": _corr(cov, 0, 1)}
    law = "L(N) = E + A * N^(-alpha)" + {"all": " (alpha shared by all mixtures and domains)",
                                          "domain": " (alpha shared within each domain)",
                                          "none": ""}[tie]
    merged = GroupSolution(theta=theta, objective=np.zeros(G), decrement=decrement,
                           converged=conv, at_bound=at_bound, cov=cov, sigma2=np.zeros(G),
                           residuals=resid, iterations=0, n_starts=0, bound_side=side)
    return _summarise("size", law, labels, merged, w, params, stderr, corr, n_params,
                      names=[("E", None), ("A", None), ("alpha", None)])


def fit_mixing_stage(
    domains: Sequence[str], mixtures: np.ndarray, losses: np.ndarray, *,
    delta: float = 1e-3, n_starts: int = 8, seed: int = 0,
    warm: Mapping[str, np.ndarray] | None = None, quiet: bool = False,
) -> StageFit:
    """Fit ``L_d(r) = c_d + k_d exp(t_d . r)`` (``sum_j t_dj = 0``) per domain.

    Parameters
    ----------
    domains : validation domain names, length ``n_domains``.
    mixtures : ``(n_mix, M)`` mixture proportions.
    losses : ``(n_mix, n_domains)`` losses of the mixtures at one scale.
    n_starts : starting points per domain (the first at ``t = 0``, the others random).
    warm : parameters ``{"c", "k", "t"}`` of a fit of the same domains (e.g. to a superset of
        these mixtures) to start from instead of the ``n_starts`` starts: a refit on a subset of
        the data then converges in the basin of that fit, in a fraction of the iterations (the
        report's held-out refits). Clipped into this fit's bounds.
    quiet : domains that do not converge are named in the result's ``warnings`` only, without
        a :class:`~mixlaws.errors.ConvergenceWarning` (for a caller that then refits them).
    """
    n, M = mixtures.shape
    nd = losses.shape[1]
    if n < M + 2:
        raise InsufficientDataError(
            f"mixing stage: fitting {M} sources needs ≥ {M + 2} distinct mixtures "
            f"({M + 1} parameters per domain plus one); found {n}", needed=M + 2, found=n)
    H = sum_zero_basis(M)
    RH = mixtures @ H
    y = losses.T
    ymin, ymax = y.min(1), y.max(1)
    P = M + 1
    bounds = np.zeros((nd, P, 2))
    bounds[:, 0] = np.stack([np.zeros(nd), ymin], -1)
    bounds[:, 1] = np.stack([np.full(nd, _LOG_FLOOR), np.log(10 * ymax)], -1)
    bounds[:, 2:] = [-50.0, 50.0]
    if warm is not None:
        theta0 = mixing_theta(warm["c"], warm["k"], warm["t"], H)[None]
        if theta0.shape != (1, nd, P):
            raise ValueError(f"warm start for {nd} domains x {M} sources expected, got "
                             f"theta of shape {theta0.shape[1:]}")
    else:
        rng = np.random.default_rng(seed)
        theta0 = np.zeros((n_starts, nd, P))
        fracs = np.linspace(0.95, 0.3, n_starts)    # c near min(L) first: fewest iterations
        for s in range(n_starts):
            u = np.zeros((nd, M - 1)) if s == 0 else rng.normal(0.0, 1.5, (nd, M - 1))
            e = np.exp(RH @ u.T).T
            c = fracs[s] * ymin
            k = np.maximum(((y - c[:, None]) * e).sum(1) / (e * e).sum(1), 1e-6 * ymax)
            theta0[s, :, 0], theta0[s, :, 1], theta0[s, :, 2:] = c, np.log(k), u
    data = (jnp.broadcast_to(jnp.asarray(RH), (nd,) + RH.shape), jnp.asarray(y))
    weights = np.ones((nd, n))
    sol = solve_groups(_mixing_residual, data, weights, bounds, theta0, delta=delta,
                       agree=AGREE_STARTS, pad=True)
    params = mixing_params(sol.theta, H)
    k = params["k"]
    cov = sol.cov
    diag = np.diagonal(cov, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", over="ignore"):   # unidentified fits: inf covariance
        var_t = np.diagonal(H @ cov[:, 2:, 2:] @ H.T, axis1=1, axis2=2)   # -> inf stderr below
    stderr = {"c": _lin_stderr(diag[:, 0]), "k": _log_stderr(k, diag[:, 1]),
              "t": np.where(np.isfinite(var_t), np.sqrt(np.abs(var_t)), np.inf)}
    corr = {"c~k": _corr(cov, 0, 1)}
    return _summarise("mixing", "L_d(r) = c_d + k_d * exp(sum_j t_dj r_j), sum_j t_dj = 0",
                      list(domains), sol, weights, params, stderr, corr, nd * P,
                      names=[("c", None), ("k", None)] + [("t", None)] * (M - 1),
                      emit=not quiet)


def _fit_sum_law(mixtures: np.ndarray, losses: np.ndarray, K: int, *, delta: float,
                 n_starts: int, seed: int, what: str, hint: str,
                 one_term: Mapping[str, np.ndarray] | None = None,
                 warm: Mapping[str, np.ndarray] | None = None) -> tuple[GroupSolution, dict, dict]:
    """Fit ``L_g(r) = c_g + sum_(k=1..K) exp(a_gk + t_gk . r)`` to ``losses (n, G)``, one law
    per column, batched.  Starts: ``warm`` alone when given (``{c, a, t}`` of a fit of the same
    columns), else the ``one_term`` fit ``{c, k, t}`` split into ``K`` terms (its own term kept,
    the others at 1 % of its amplitude with random directions, so the fit starts at the
    one-term optimum and can only improve on it) and random starts."""
    n, M = mixtures.shape
    G = losses.shape[1]
    P = 1 + K * M
    if K < 1:
        raise InsufficientDataError(f"{what} needs K ≥ 1 exponential terms ({hint})",
                                    needed=1, found=K)
    if n < P + 1:
        raise InsufficientDataError(
            f"{what} with K={K} over {M} sources has {P} parameters per law and needs "
            f"≥ {P + 1} distinct mixtures; found {n} ({hint})", needed=P + 1, found=n)
    H = sum_zero_basis(M)
    RH = mixtures @ H
    y = losses.T                                  # (G, n)
    ymin, ymax = y.min(1), y.max(1)
    bounds = np.zeros((G, P, 2))
    bounds[:, 0] = np.stack([np.zeros(G), ymin], -1)
    bounds[:, 1:1 + K, 0], bounds[:, 1:1 + K, 1] = _LOG_FLOOR, np.log(10 * ymax)[:, None]
    bounds[:, 1 + K:] = [-50.0, 50.0]
    rng = np.random.default_rng(seed)
    if warm is not None:
        U = np.asarray(warm["t"], float) @ H                            # (G, K, M-1)
        theta0 = np.concatenate([np.asarray(warm["c"], float)[:, None], warm["a"],
                                 U.reshape(G, -1)], -1)[None]
    else:
        theta0 = np.zeros((n_starts, G, P))
        for s in range(n_starts):
            if one_term is not None and s < max(n_starts // 2, 1):
                U = rng.normal(0.0, 1.5, (G, K, M - 1))
                c = np.asarray(one_term["c"], float)
                U[:, 0] = np.asarray(one_term["t"], float) @ H
                if s == 0:
                    U[:, 1:] = 0.0
                lk = np.log(np.asarray(one_term["k"], float))
                a = np.concatenate([lk[:, None], np.repeat(lk[:, None] + np.log(1e-2), K - 1, 1)],
                                   1) if K > 1 else lk[:, None]
            else:
                c = (0.3 + 0.65 * rng.random(G)) * ymin
                U = rng.normal(0.0, 1.5, (G, K, M - 1))
                e = np.exp(np.einsum("nm,gkm->gnk", RH, U))              # (G, n, K)
                a = np.log(np.stack([np.maximum(np.linalg.lstsq(e[g], y[g] - c[g], rcond=None)[0],
                                                1e-3 * (ymin[g] - c[g]) / K) for g in range(G)]))
            theta0[s] = np.concatenate([c[:, None], a, U.reshape(G, -1)], -1)
    theta0 = np.clip(theta0, bounds[None, ..., 0], bounds[None, ..., 1])
    data = (jnp.broadcast_to(jnp.asarray(RH), (G,) + RH.shape), jnp.asarray(y))
    weights = np.ones((G, n))
    sol = solve_groups(_implicit_residual, data, weights, bounds, theta0, delta=delta, pad=True)
    th = sol.theta
    params = {"c": th[:, 0].copy(), "a": th[:, 1:1 + K].copy(),
              "t": th[:, 1 + K:].reshape(G, K, M - 1) @ H.T}
    diag = np.diagonal(sol.cov, axis1=1, axis2=2)
    stderr = {"c": _lin_stderr(diag[:, 0]), "a": np.sqrt(np.abs(diag[:, 1:1 + K])),
              "t": np.full(params["t"].shape, np.nan)}
    return sol, params, stderr


def fit_sum_mixing_stage(
    domains: Sequence[str], mixtures: np.ndarray, losses: np.ndarray, terms: int, *,
    delta: float = 1e-3, n_starts: int = 4, seed: int = 0,
    warm: Mapping[str, np.ndarray] | None = None,
) -> StageFit:
    """Fit ``L_d(r) = c_d + sum_(k=1..K) exp(a_dk + t_dk . r)`` (``sum_j t_dkj = 0``) per domain.

    The per-domain mixing law with ``K = terms`` exponential terms: each domain's loss as
    the implicit-aggregation law of :func:`fit_implicit_stage`, i.e. a domain that behaves
    like a mixture of ``K`` latent sub-domains, each with its own source effects (on RegMix's
    one-scale swarm, K=2 ranks the held-out mixtures' Pile-CC loss at Spearman 0.978 against
    0.957 for K=1).  Half of the ``n_starts`` starts split the one-term fit of
    :func:`fit_mixing_stage` into ``K`` terms, so the objective is never worse than that law's; the others are random
    (on RegMix, 2 starts find the same optimum as 8 in a fifth of the time).  Parameters as
    :func:`fit_mixing_stage`; ``warm`` is ``{c, a, t}`` of a fit of the same domains.  Fitted
    ``params``: ``c (nd,)``, ``a (nd, K)``, ``t (nd, K, M)``.
    """
    K = int(terms)
    one = None
    if warm is None:
        one = fit_mixing_stage(domains, mixtures, losses, delta=delta, seed=seed).params
    sol, params, stderr = _fit_sum_law(mixtures, losses, K, delta=delta, n_starts=n_starts,
                                       seed=seed, one_term=one, warm=warm,
                                       what="the mixing law", hint="fewer mixing terms")
    weights = np.ones((len(domains), mixtures.shape[0]))
    return _summarise("mixing", f"L_d(r) = c_d + sum_(k=1..{K}) exp(a_dk + t_dk . r), "
                      "sum_j t_dkj = 0", list(domains), sol, weights, params, stderr, {},
                      len(domains) * (1 + K * mixtures.shape[1]))


def refit_mixing_stage(domains: Sequence[str], mixtures: np.ndarray, losses: np.ndarray,
                       terms: int = 1, *, delta: float = 1e-3, seed: int = 0,
                       warm: Mapping[str, np.ndarray] | None = None) -> StageFit:
    """The mixing stage of ``terms`` terms, fitted again to (a subset of) the data of a fit
    whose parameters ``warm`` are known: the one-term law starts from ``warm`` alone (one start
    instead of the multi-start: a subset's optimum lies next to the full data's) and falls
    back to the usual starts where that does not converge in every domain, quietly (the
    fallback is the answer, not news); a law of several terms has many basins, a warm start
    may sit in a worse one than the subset's own (on RegMix: 1.93 % vs 1.85 % held-out
    error), so it always takes its multi-start.  ``warm=None``: the usual starts."""
    if terms != 1:
        return fit_sum_mixing_stage(domains, mixtures, losses, terms, delta=delta, seed=seed)
    if warm is not None:
        fit = fit_mixing_stage(domains, mixtures, losses, delta=delta, seed=seed, warm=warm,
                               quiet=True)
        if fit.converged.all():
            return fit
    return fit_mixing_stage(domains, mixtures, losses, delta=delta, seed=seed)


def mixing_stage_law(r: Any, params: Mapping[str, Any]) -> jnp.ndarray:
    """Per-domain losses ``(..., n_domains)`` of a fitted mixing stage (one term: ``{c, k, t}``;
    ``K`` terms: ``{c, a, t}``) at mixtures ``r (..., M)`` (JAX, differentiable)."""
    if "a" in params:
        return implicit_mixing_law(r, jnp.asarray(params["c"]), jnp.asarray(params["a"]),
                                   jnp.asarray(params["t"]))
    return mixing_law(r, jnp.asarray(params["c"]), jnp.asarray(params["k"]),
                      jnp.asarray(params["t"]))


def fit_implicit_stage(
    mixtures: np.ndarray, losses: np.ndarray, n_latent: int, *,
    delta: float = 1e-3, n_starts: int = 24, seed: int = 0,
) -> StageFit:
    """Fit ``L(r) = c + sum_k exp(a_k + t_k . r)`` to aggregate losses ``(n_mix,)``."""
    K = int(n_latent)
    sol, params, stderr = _fit_sum_law(mixtures, np.asarray(losses, float)[:, None], K,
                                       delta=delta, n_starts=n_starts, seed=seed,
                                       what="implicit aggregation", hint="lower --implicit")
    weights = np.ones((1, mixtures.shape[0]))
    return _summarise("implicit", f"L(r) = c + sum_(k=1..{K}) exp(a_k + t_k . r)",
                      ["aggregate"], sol, weights, params, stderr, {}, 1 + K * mixtures.shape[1])
