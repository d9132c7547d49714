r"""Multiple-imputation alternative for the mixing stage: refit the law to every upstream draw.

``sample_posterior(..., mixing="gn")`` repeats the robust mixing fit on every upstream draw
``Y^(s)`` (batched damped Gauss-Newton/IRLS on the same Huber loss as the point fit, started at
the linearised solution ``theta_hat + J^+ d log Y^(s)``) and adds the law's own scatter as the
*excess* residual variance the upstream draws do not explain (else upstream noise would be
counted twice). ``mixing="refit"`` does the same with the general bounded LM solver (exact, ~30x
slower); ``mixing="linear"`` stops at the linearisation (biased along the ``c``-``k`` ridge).
The default, ``mixing="mcmc"``, samples the law with emcee instead
(:mod:`mixlaws.posterior`); this module is the cross-check.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import _config  # noqa: F401
from ..laws import mixing_terms

__all__ = ["mixing_response", "mixing_refit"]


def mixing_response(RH: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Gauss-Newton pseudo-inverse ``(nd, P, n)`` of d log f / d theta per domain."""
    f, e = (np.asarray(a) for a in mixing_terms(RH, theta))        # (nd, n)
    J = np.concatenate([(1 / f)[..., None], (e / f)[..., None], (e / f)[..., None] * RH[None]], 2)
    return np.linalg.pinv(J)


def own_scatter(RH: np.ndarray, Yhat: np.ndarray, th: np.ndarray, resp: np.ndarray,
                 dlog: np.ndarray) -> np.ndarray:
    """Excess log-scatter ``(nd,)`` of the mixing law not explained by the upstream draws."""
    n, P = RH.shape[0], th.shape[1]
    f, e = (np.asarray(a) for a in mixing_terms(RH, th))
    r = np.log(f) - np.log(Yhat.T)                                   # (nd, n)
    dof = max(n - P, 1)
    s2 = (r * r).sum(1) / dof
    J = np.concatenate([(1 / f)[..., None], (e / f)[..., None], (e / f)[..., None] * RH[None]], 2)
    proj = np.eye(n)[None] - np.einsum("dnp,dpm->dnm", J, resp)      # residual projector
    up = np.einsum("dnm,smd->snd", proj, dlog)
    s2_up = (up * up).sum(1).mean(0) / dof
    return np.sqrt(np.maximum(s2 - s2_up, 0.0))


def mixing_gn(RH: np.ndarray, theta: np.ndarray, logy: np.ndarray, delta: float,
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


def mixing_refit(RH: np.ndarray, Yhat: np.ndarray, th: np.ndarray, resp: np.ndarray,
                  Y: np.ndarray, dlog: np.ndarray, rng: np.random.Generator,
                  delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Refit the mixing law to every upstream draw plus its own excess noise.

    The mixing law's own scatter is the part of its residual variance that the
    upstream draws do not explain: ``sigma_own^2 = max(0, sigma_hat^2 - E|(I - J J^+)
    dlog|^2 / (n - P))``; each draw's data are ``Y^(s) exp(sigma_own z)`` and the law is
    refitted (warm-started at the best fit, all draws and domains in one batch).
    Returns ``theta (S, nd, P)`` and ``sigma_own`` broadcast to ``(S, nd)``.
    """
    from ..fit import solve_groups
    from ..fit._stages import _mixing_residual

    S, n, nd = Y.shape
    P = th.shape[1]
    sig = own_scatter(RH, Yhat, th, resp, dlog)
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
                       max_iter=300, pad=True)
    return sol.theta.reshape(S, nd, P), np.broadcast_to(sig, (S, nd))
