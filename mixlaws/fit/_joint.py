"""The joint alternative to nesting: one law in mixture, model size and tokens.

Per validation domain ``d``, fitted to every checkpoint of every run at once:

.. math::

    L_d(r, N, D) = c_d + k_d \\exp(t_d \\cdot r) + A_d N^{-\\alpha_d} + B_d D^{-\\beta_d},
    \\qquad \\sum_j t_{dj} = 0

(:func:`mixlaws.laws.joint_law`; Chinchilla's form with a mixture-dependent
irreducible term, in the spirit of Shukor et al. 2025).  It needs no per-run
extrapolation, so it is a cross-check on the nested pipeline and the better
choice when runs have few checkpoints; it assumes the size and data terms do
not depend on the mixture, which the nested pipeline does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import jax.numpy as jnp
import numpy as np

from .. import _config  # noqa: F401
from ._base import Estimator
from ..runs._warmup import WARMUP, drop_warmup
from ..errors import InsufficientDataError, NotFittedError
from ._engine import solve_groups
from ..laws import sum_zero_basis
from ._stages import StageFit, _log_stderr, _summarise

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import RunsTable

__all__ = ["JointMixingLaw"]


def _joint_residual(theta: jnp.ndarray, data: Any) -> jnp.ndarray:
    RH, xN, xD, y = data
    m1 = RH.shape[1]
    c, lk, u = theta[0], theta[1], theta[2:2 + m1]
    lA, la, lB, lb = theta[2 + m1:]
    pred = (c + jnp.exp(lk + RH @ u) + jnp.exp(lA - jnp.exp(la) * xN)
            + jnp.exp(lB - jnp.exp(lb) * xD))
    return jnp.log(pred) - jnp.log(y)


class JointMixingLaw(Estimator):
    """Joint law ``L_d(r, N, D)`` fitted per validation domain.

    Parameters
    ----------
    val_weights : optional {domain: weight} for the aggregate (default: plain mean).
    warmup : drop checkpoints below this fraction of a run's last tokens.
    delta : Huber threshold on log-residuals.
    n_starts : random starts per domain.
    seed : seed of the starts.

    Attributes (after ``fit``): ``sources_``, ``domains_``, ``weights_``, ``fit_``
    (a :class:`~mixlaws.fit.StageFit` with canonical ``c, k, t, A, alpha, B, beta``).
    """

    def __init__(self, *, val_weights: Mapping[str, float] | None = None, warmup: float = WARMUP,
                 delta: float = 1e-3, n_starts: int = 12, seed: int = 0) -> None:
        self.val_weights = val_weights
        self.warmup = warmup
        self.delta = delta
        self.n_starts = n_starts
        self.seed = seed

    def fit(self, runs: "RunsTable") -> "JointMixingLaw":
        """Fit the joint law of every domain to all checkpoints after warm-up; return self."""
        from ._nested import NestedMixingLaw

        df = runs.data
        df = drop_warmup(df, self.warmup)
        sources, domains = tuple(runs.sources), tuple(runs.domains)
        M, nd = len(sources), len(domains)
        if df["params"].nunique() < 2 or df["tokens"].nunique() < 3:
            raise InsufficientDataError(
                "the joint law needs runs at ≥ 2 model sizes and ≥ 3 distinct token counts; found "
                f"{df['params'].nunique()} and {df['tokens'].nunique()}", needed=2,
                found=int(df["params"].nunique()))
        self.weights_ = NestedMixingLaw(val_weights=self.val_weights)._weights(domains)
        H = sum_zero_basis(M)
        R = df[[f"mix:{s}" for s in sources]].to_numpy(float)
        logN, logD = np.log(df["params"].to_numpy(float)), np.log(df["tokens"].to_numpy(float))
        self.logNref_, self.logDref_ = float(logN.mean()), float(logD.mean())
        Y = df[[f"loss:{d}" for d in domains]].to_numpy(float).T          # (nd, n)
        n = Y.shape[1]
        P = 2 + (M - 1) + 4
        if n < P + 1:
            raise InsufficientDataError(f"the joint law has {P} parameters per domain and needs "
                                        f"≥ {P + 1} checkpoints; found {n}", needed=P + 1, found=n)
        data = tuple(jnp.broadcast_to(jnp.asarray(a), (nd,) + a.shape)
                     for a in (R @ H, logN - self.logNref_, logD - self.logDref_)) + (jnp.asarray(Y),)
        ymin, ymax = Y.min(1), Y.max(1)
        bounds = np.zeros((nd, P, 2))
        bounds[:, 0] = np.stack([np.zeros(nd), ymin], -1)
        bounds[:, 1] = np.stack([np.full(nd, -30.0), np.log(10 * ymax)], -1)
        bounds[:, 2:1 + M] = [-50.0, 50.0]
        for j in (1 + M, 3 + M):        # log amplitudes
            bounds[:, j] = np.stack([np.full(nd, -30.0), np.log(10 * ymax)], -1)
        for j in (2 + M, 4 + M):        # log exponents in (1e-3, 2)
            bounds[:, j] = [np.log(1e-3), np.log(2.0)]
        rng = np.random.default_rng(self.seed)
        starts = np.zeros((self.n_starts, nd, P))
        for s in range(self.n_starts):
            frac = rng.uniform(0.2, 0.6)
            starts[s, :, 0] = frac * ymin
            starts[s, :, 1] = np.log(rng.uniform(0.05, 0.3) * ymin)
            starts[s, :, 2:1 + M] = 0.0 if s == 0 else rng.normal(0, 1.0, (nd, M - 1))
            starts[s, :, 1 + M] = np.log(rng.uniform(0.1, 0.4) * ymin)
            starts[s, :, 2 + M] = np.log(rng.uniform(0.1, 0.6))
            starts[s, :, 3 + M] = np.log(rng.uniform(0.1, 0.4) * ymin)
            starts[s, :, 4 + M] = np.log(rng.uniform(0.1, 0.6))
        sol = solve_groups(_joint_residual, data, np.ones((nd, n)), bounds, starts,
                           delta=self.delta)
        th = sol.theta
        alpha, beta = np.exp(th[:, 2 + M]), np.exp(th[:, 4 + M])
        params = {"c": th[:, 0].copy(), "k": np.exp(th[:, 1]), "t": th[:, 2:1 + M] @ H.T,
                  "A": np.exp(th[:, 1 + M] + alpha * self.logNref_), "alpha": alpha,
                  "B": np.exp(th[:, 3 + M] + beta * self.logDref_), "beta": beta}
        diag = np.diagonal(sol.cov, axis1=1, axis2=2)
        stderr = {"c": np.sqrt(np.abs(diag[:, 0])), "k": _log_stderr(params["k"], diag[:, 1]),
                  "alpha": _log_stderr(alpha, diag[:, 2 + M]),
                  "beta": _log_stderr(beta, diag[:, 4 + M])}
        self.fit_: StageFit = _summarise(
            "joint", "L_d(r,N,D) = c_d + k_d exp(t_d . r) + A_d N^(-alpha_d) + B_d D^(-beta_d)",
            list(domains), sol, np.ones((nd, n)), params, stderr, {}, nd * P)
        self.sources_, self.domains_ = sources, domains
        return self

    def predict(self, mixtures: np.ndarray, params: float, tokens: float) -> dict[str, np.ndarray]:
        """Aggregate and per-domain losses of ``mixtures (n, M)`` at ``(params, tokens)``."""
        if not hasattr(self, "fit_"):
            raise NotFittedError("this JointMixingLaw is not fitted yet: call fit(runs) first")
        p = self.fit_.params
        r = np.atleast_2d(np.asarray(mixtures, float))
        L = (p["c"] + p["k"] * np.exp(r @ p["t"].T) + p["A"] * np.exp(-p["alpha"] * np.log(params))
             + p["B"] * np.exp(-p["beta"] * np.log(tokens)))
        return {"loss": L @ self.weights_, "domains": L}
