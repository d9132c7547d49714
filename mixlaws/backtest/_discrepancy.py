"""A stated model of a law family's extrapolation error, calibrated by backtests.

For a target at extrapolation distances ``(dN, dD)`` (:func:`extrapolation_distance`) let

.. math::

    u = \\sqrt{\\max(dN, 0)^2 + \\max(dD, 0)^2}

(natural-log units; interpolation counts as ``u = 0``) and let ``h`` be the total-variation
distance of its mixture to the hull of the fitted mixtures (:func:`mixlaws.fit.mixture_extrapolation`;
0 for a mixture of the sweep).  The error of a family's prediction of one run's observed loss,
``e = log(L_obs / L_pred)``, is modelled as

.. math::

    e_{fi} = b\\,\\bar u_f + \\eta_f + \\epsilon_{fi}, \\qquad
    \\eta_f \\sim N\\left(0,\\; s_0^2 + s_1^2 \\bar u_f^2\\right), \\qquad
    \\epsilon_{fi} \\sim N\\left(0,\\; w_0^2 + w_1^2 u_{fi}^2 + k^2 h_{fi}^2\\right)

(``b = 0`` unless the bias's sign is carried, below) for target ``i`` of backtest fold ``f``
(``u_f`` the fold's mean distance, weighted as the fold's
mean error below; a fold's targets lie at nearly one distance): a bias that grows linearly with
the scale distance; an error shared by the fold's targets (they come from one
fit), whose spread grows with the distance; and each target's own error (run-to-run noise and
how differently the law extrapolates each mixture), whose spread grows with the distance and
with the distance in mixture space (the leave-mixtures-out folds measure ``k``; a mixture far
outside the design cannot hide in ``w_0``, where it would widen every interval).  A new run at
a target is a new fold's target: its error has variance
``s0^2 + s1^2 u^2 + w0^2 + w1^2 u^2 + k^2 h^2`` plus the bias's (below), the spread of one
observed run around the prediction, run-to-run noise included.

The two levels are estimated where their evidence lies.  ``(w0, w1, k)`` from the scatter of
targets about their fold's mean (the restricted likelihood of the within-fold contrasts: every
target counts, the shared part drops out); ``(b, s0, s1)`` from the folds' precision-weighted
mean errors, one observation per fold, each with its within-fold variance.  So a fold of 100
targets adds 99 observations of the scatter but one of the shared error, and a fold whose
targets are copies of one error is one observation.  (Earlier versions gave every target a
``1 / n_f`` share of one fold-level likelihood of the total spread, a composite likelihood that
counted each fold once for everything: over-cautious where folds are large and scattered.  On
the out-of-family calibration benchmark it covered 97 % (nested) / 93 % (joint) of the targets
with 90 % intervals; see ``benchmarks/backtest_calibration.py`` for this model's figures.)

Few folds must not make it over-confident, so the parameters get weakly-informative priors in
relative-error units -- ``b ~ N(0, prior_b^2)`` (when the model has ``b``, below); ``s0, w0 ~
HalfNormal(prior_s0)``; ``s1, w1 ~ HalfNormal(prior_s1)``; ``k ~ HalfNormal(prior_k)`` (defaults
0.05, 0.02, 0.02, 0.1 -- ``b``'s :data:`PRIOR_B` -- a few per cent per unit of log distance, the
typical extrapolation errors of the scaling-law literature, and 1 % per 0.1 of the mixture
outside the design; ``prior_s1`` was 0.05 until the out-of-family calibration benchmark showed
98 % coverage of 90 % intervals with it, ``benchmarks/backtest_calibration.py --priors``) -- and
are integrated out: ``b`` analytically (conjugate given the spreads), ``(w0, w1, k, s0, s1)`` on
the product of two log grids (within: the contrasts' likelihood at each ``(w0, w1, k)`` gives
the fold means and their variances, which the shared level's likelihood at each ``(s0, s1)``
then uses: the exact joint posterior, not a plug-in; within points that the contrasts alone
put below ``_PRUNE`` of the best are left out).  For prediction the within level is
moment-matched at each shared grid point (its posterior is narrow; on RedPajama's backtests the
quantiles equal the full mixture's to 4 digits), so a prediction costs one small mixture.  The
predictive distribution of ``e`` at ``(u, h)`` is that posterior mixture of normals, summarised
by its mean (``bias``) and standard deviation (``sd``, moment-matched); the interval is
``L_pred exp(q)`` with ``q`` its exact central quantiles. With no folds it is the prior; each
fold shrinks it.

**The sign of the bias is not carried to the target** (``carry_bias=False``, the default),
and then the model has no ``b``: a bias the backtests measured is an error that grows with
the distance, which ``s1`` already is -- the folds' mean errors at their distances estimate
it, and it widens the interval by about ``s1 u`` on both sides and moves no prediction.
(Until 2026-12-07 the model kept ``b`` and made its posterior symmetric about 0,
``(N(m, V) + N(-m, V)) / 2``: the same widening counted twice, once through ``b`` and once
through ``s1``, each with its own prior, so that with the few folds at ``u > 0`` a sweep has,
both priors' mass stayed in the interval.  On the out-of-family calibration benchmark
(``benchmarks/backtest_calibration.py``, 30 sweeps, 150 targets) the 90 % intervals covered
96.7 % (nested) / 91.3 % (joint) with it and 94.7 % / 89.3 % without, median half-widths
8.6 / 8.9 % -> 8.0 / 7.9 %; on the real held-out runs of ``benchmarks/auto_real.py`` all 56
stayed inside, the widths 3.2 -> 2.4 % (RedPajama 410M) and 11.6 -> 11.0 % (5-group long
horizon).  ``prior_b=0.05`` restores it.)
The backtests measure extrapolation over shorter distances than the target's,
and the sign of a law's error can flip with the distance: on Ye et al.'s RedPajama runs (a
100k-step cosine schedule) the laws fitted on 10k-13k steps over-predict the loss at 30k,
while those fitted on 10k-30k under-predict it at 100k -- carrying the first sign to the
second distance moved the prediction the wrong way (``benchmarks/auto_real.py``, the averaged
law's long-horizon errors with the sign carried / not: RedPajama -2.2 / -0.9 %, its members
-0.3 and -1.8 %; Ye et al.'s 5-group table -3.6 / +0.5 %, its members +1.7 and -0.6 %).
``carry_bias=True`` is the linear-bias model as stated above, with ``b ~ N(0, PRIOR_B^2)``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

from ..errors import ArtifactError, MixlawsError

__all__ = ["Discrepancy", "distance", "mixture_quantile"]

_KIND = "mixlaws.Discrepancy"
_VERSION = 1
_GRID = np.geomspace(1e-4, 0.5, 25)          # s0, s1 (the fold-shared error)
_GRID_W = np.geomspace(1e-4, 0.5, 41)        # w0, w1 (each target's own error: well determined)
_GRID_K = np.geomspace(1e-3, 3.0, 11)        # k (per unit of hull distance)
_PRUNE = 1e-9      # within grid points below this share of the best one's contrast posterior
_CHUNK = 2**21                               # joint grid points x folds evaluated at once
PRIOR_B = 0.05
"""Prior sd of the bias slope ``b`` per unit of ``u`` when the bias's sign is carried."""


def mixture_quantile(mu: np.ndarray, sd: np.ndarray, w: np.ndarray, q: float) -> np.ndarray:
    """``q``-quantile of each row's normal mixture ``sum_k w_k N(mu_ik, sd_ik^2)``.

    ``mu, sd (n, K)``, ``w (K,)``; returns ``(n,)``.  Newton's method on the mixture's CDF from
    the moment-matched normal quantile, kept inside a bracket that every step narrows
    (a bisection step where Newton would leave it or stop halving its steps, as Numerical
    Recipes' ``rtsafe``), to ``1e-12 (1 + |x|)``: the quantile that bisection finds, in a
    fraction of its evaluations of the CDF.

    Examples
    --------
    >>> import numpy as np
    >>> float(mixture_quantile(np.zeros((1, 2)), np.ones((1, 2)), np.array([0.5, 0.5]), 0.95)[0])
    1.6448536269514...
    """
    mu, sd, w = np.asarray(mu, float), np.asarray(sd, float), np.asarray(w, float)
    lo = (mu - 12 * sd).min(1)
    hi = (mu + 12 * sd).max(1)
    mean = mu @ w
    var = np.maximum((sd**2 + mu**2) @ w - mean**2, 0.0)
    x = np.clip(mean + ndtri(q) * np.sqrt(var), lo, hi)
    dx = dx_old = hi - lo
    for _ in range(300):
        z = (x[:, None] - mu) / sd
        F = ndtr(z) @ w - q                                   # ndtr: norm.cdf's ufunc
        f = (np.exp(-0.5 * z**2) / (np.sqrt(2 * np.pi) * sd)) @ w
        lo, hi = np.where(F < 0, x, lo), np.where(F < 0, hi, x)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            step = F / f
            # Newton where it stays in the bracket and halves the step before last (else the
            # CDF is too curved there, e.g. near a narrow component: bisect), as rtsafe does
            newton = ((f > 0) & (x - step >= lo) & (x - step <= hi)
                      & (np.abs(2 * F) <= np.abs(dx_old * f)))
        dx_old, dx = dx, np.where(newton, step, x - 0.5 * (lo + hi))
        x = x - dx
        if np.all((np.abs(dx) <= 1e-12 * (1.0 + np.abs(x))) | (F == 0)):
            break
    return x


def _log_half_normal(x: np.ndarray, scale: float) -> np.ndarray:
    """Log density of ``HalfNormal(scale)`` on a log-uniform grid (Jacobian ``x``), unnormalised."""
    return -0.5 * (x / scale) ** 2 + np.log(x)


def distance(dN: Any, dD: Any) -> np.ndarray:
    """Extrapolation distance ``u = sqrt(max(dN, 0)^2 + max(dD, 0)^2)`` (natural-log units)."""
    dN = np.maximum(np.asarray(dN, float), 0.0)
    dD = np.maximum(np.asarray(dD, float), 0.0)
    return np.sqrt(dN**2 + dD**2)


class Discrepancy:
    """Predictive model of ``log(L_obs / L_pred)`` as a function of the extrapolation distance.

    Parameters
    ----------
    prior_b : sd of the normal prior on the bias slope ``b`` (per unit of ``u``); 0: no bias
        term (``b = 0``).  Default None: :data:`PRIOR_B` when the bias's sign is carried, else 0
        (see the module docstring).
    prior_s0 : scale of the half-normal priors on ``s0`` and ``w0`` (the fold-shared and each
        target's own sd at ``u = 0``).
    prior_s1 : scale of the half-normal priors on ``s1`` and ``w1`` (their growth per unit of
        ``u``).
    prior_k : scale of the half-normal prior on ``k`` (growth of the sd per unit of ``h``).
    carry_bias : shift predictions by the fitted bias ``b u`` (True) or only widen them by
        its size (False, default; see the module docstring).

    Attributes (after ``fit``)
    --------------------------
    n_folds_, n_targets_ : units of evidence and targets used.
    b_, s0_, s1_, w0_, w1_, k_ : posterior means of ``b`` (0 without a bias term), ``s0``,
        ``s1``, ``w0``, ``w1``, ``k``.
    sigma_within_ : pooled within-fold sd of the errors (a diagnostic: how much of the error
        is run-to-run scatter rather than shared by a fold; 0 when no fold has two targets).
    errors_, distances_, hull_, units_ : the data fitted.
    """

    def __init__(self, *, prior_b: float | None = None, prior_s0: float = 0.02,
                 prior_s1: float = 0.02, prior_k: float = 0.1, carry_bias: bool = False) -> None:
        for name, v in (("prior_s0", prior_s0), ("prior_s1", prior_s1), ("prior_k", prior_k)):
            if not (np.isfinite(v) and v > 0):
                raise MixlawsError(f"Discrepancy: {name} must be a positive number, not {v}")
        if prior_b is not None and not (np.isfinite(prior_b) and prior_b >= 0):
            raise MixlawsError(f"Discrepancy: prior_b must be a number >= 0 (0: no bias term) "
                               f"or None, not {prior_b}")
        self.prior_b = None if prior_b is None else float(prior_b)
        self.prior_s0 = float(prior_s0)
        self.prior_s1 = float(prior_s1)
        self.prior_k = float(prior_k)
        self.carry_bias = bool(carry_bias)

    def get_params(self) -> dict[str, Any]:
        """The prior settings."""
        return {"prior_b": self.prior_b, "prior_s0": self.prior_s0, "prior_s1": self.prior_s1,
                "prior_k": self.prior_k, "carry_bias": self.carry_bias}

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, log_ratio: Any, dN: Any, dD: Any, unit: Any,
            hull: Any = None) -> "Discrepancy":
        """Fit to backtest errors ``log(L_obs / L_pred)`` of targets grouped into folds ``unit``.

        ``hull``: each target mixture's hull distance ``h`` (default 0: mixtures of the fit).
        Returns self.  Non-finite errors or distances are an error.
        """
        e = np.asarray(log_ratio, float).ravel()
        u = distance(dN, dD).ravel()
        unit = np.asarray(unit).astype(str).ravel()
        h = np.zeros_like(e) if hull is None else np.asarray(hull, float).ravel()
        if not (e.size == u.size == unit.size == h.size):
            raise MixlawsError("Discrepancy.fit: log_ratio, dN, dD, unit and hull must have one "
                               "entry per target")
        if not (np.all(np.isfinite(e)) and np.all(np.isfinite(u)) and np.all(np.isfinite(h))
                and np.all(h >= 0)):
            raise MixlawsError("Discrepancy.fit: errors and distances must be finite (and hull "
                               "distances >= 0)")
        self.errors_, self.distances_, self.hull_, self.units_ = e, u, h, unit
        self._posterior()
        return self

    def _posterior(self) -> None:
        e, u, h = self.errors_, self.distances_, self.hull_
        labels, inv = np.unique(self.units_, return_inverse=True)
        n = np.bincount(inv, minlength=labels.size).astype(float)
        ebar = np.bincount(inv, e, labels.size) / np.maximum(n, 1)
        df = float(np.sum(n - 1))
        self.sigma_within_ = (float(np.sqrt(np.sum((e - ebar[inv]) ** 2) / df)) if df > 0
                              else 0.0)
        self.n_folds_, self.n_targets_ = int(labels.size), int(e.size)
        # targets of one fold at one (u, h) differ only in e: their counts, sums of e and of
        # e^2 are all the likelihood needs
        cells, cell = np.unique(np.stack([inv, u, h], 1), axis=0, return_inverse=True)
        cell = np.ravel(cell)
        cnt = np.bincount(cell, minlength=len(cells)).astype(float)
        S1 = np.bincount(cell, e, len(cells))
        S2 = np.bincount(cell, e**2, len(cells))
        uc, hc = cells[:, 1], cells[:, 2]
        fold = np.zeros((len(cells), labels.size))     # sums over each fold's cells
        fold[np.arange(len(cells)), cells[:, 0].astype(int)] = 1.0
        # each target's own error: the restricted likelihood of the within-fold contrasts
        w0, w1, k = (g.ravel() for g in np.meshgrid(_GRID_W, _GRID_W, _GRID_K, indexing="ij"))
        var = w0[:, None] ** 2 + w1[:, None] ** 2 * uc**2 + k[:, None] ** 2 * hc**2
        p = 1.0 / var
        sp, spe = (p * cnt) @ fold, (p * S1) @ fold
        ll_within = -0.5 * (np.log(var) @ cnt + np.sum(np.log(sp), axis=1)
                            + (p * S2).sum(axis=1) - np.sum(spe**2 / sp, axis=1))
        ll_within += (_log_half_normal(w0, self.prior_s0) + _log_half_normal(w1, self.prior_s1)
                      + _log_half_normal(k, self.prior_k))
        # points the contrasts rule out cannot be rescued by a handful of fold means (a fold
        # mean's variance includes only 1 / n_f of theirs): the joint grid leaves them out
        live = ll_within >= ll_within.max() + np.log(_PRUNE)
        w0, w1, k, p, sp, spe = w0[live], w1[live], k[live], p[live], sp[live], spe[live]
        ll_within = ll_within[live]
        # each fold's precision-weighted mean error and distance, and that mean's own variance
        e_f, u_f, c_f = spe / sp, ((p * cnt * uc) @ fold) / sp, 1.0 / sp      # (Gw, F)
        # the fold-shared error, jointly with every within grid point; b conjugate
        s0, s1 = (g.ravel() for g in np.meshgrid(_GRID, _GRID, indexing="ij"))
        tau2 = self._tau2()
        shape = (w0.size, s0.size)
        P, m, logw = np.empty(shape), np.empty(shape), np.empty(shape)
        step = max(1, _CHUNK // (s0.size * max(labels.size, 1)))
        for lo in range(0, w0.size, step):                # chunks bound the memory
            sl = slice(lo, lo + step)
            ef, uf = e_f[sl, None, :], u_f[sl, None, :]
            v = s0[None, :, None] ** 2 + s1[None, :, None] ** 2 * uf**2 + c_f[sl, None, :]
            logw[sl] = ll_within[sl, None] - 0.5 * np.sum(np.log(2 * np.pi * v) + ef**2 / v,
                                                           axis=2)
            if tau2 == 0.0:                               # no bias term: b = 0 exactly
                P[sl], m[sl] = np.inf, 0.0
                continue
            P[sl] = 1.0 / tau2 + np.sum(uf**2 / v, axis=2)
            m[sl] = np.sum(uf * ef / v, axis=2) / P[sl]
            logw[sl] += 0.5 * (m[sl] ** 2 * P[sl] - np.log(tau2 * P[sl]))
        # half-normal priors; the grids are uniform in log scale (Jacobian x)
        logw += (_log_half_normal(s0, self.prior_s0) + _log_half_normal(s1, self.prior_s1))[None]
        logw -= logw.max()
        w = np.exp(logw - logsumexp(logw))                          # (Gw, Gs)
        self.b_ = float(np.sum(w * m))
        wi = w.sum(1)                                               # within marginal
        self.w0_, self.w1_, self.k_ = (float(wi @ x) for x in (w0, w1, k))
        self._scatter = tuple(float(wi @ x**2) for x in (w0, w1, k))
        # the predictive, per shared grid point: the mixture over the within grid is nearly
        # one normal (its posterior is narrow: many targets), so it is moment-matched --
        # N(M u, A + B u^2 + C h^2) with M, A, B, C the conditional means of m, s0^2 + w0^2,
        # s1^2 + w1^2 + V (+ the variance of m) and k^2
        W = w.sum(0)
        keep = np.flatnonzero(W > 1e-12 * W.max())  # no mass: dropped (prediction cost)
        w, m, V, W = w[:, keep], m[:, keep], 1.0 / P[:, keep], W[keep]
        s0, s1 = s0[keep], s1[keep]
        cond = w / W                                                # p(within | shared)
        M = np.sum(cond * m, 0)
        A = s0**2 + (w0**2) @ cond
        B = s1**2 + (w1**2) @ cond + np.sum(cond * (V + (m - M) ** 2), 0)
        C = (k**2) @ cond
        W = W / W.sum()
        self._grid = (W, M, A, B, C)
        self.s0_, self.s1_ = float(W @ s0), float(W @ s1)

    def _tau2(self) -> float:
        """Prior variance of ``b``; 0 when the model has no bias term."""
        if self.prior_b is None:
            return PRIOR_B**2 if self.carry_bias else 0.0
        return self.prior_b**2

    def _components(self, u: np.ndarray, h: np.ndarray,
                    at_zero: bool = True) -> tuple[np.ndarray, ...]:
        """Weights ``(G,)`` and each grid point's predictive mean and variance ``(G, n)``;
        ``at_zero=False`` leaves out the distance-zero variance ``A`` (``s0^2 + w0^2``)."""
        W, M, A, B, C = self._grid
        mean = M[:, None] * u[None, :]
        var = B[:, None] * u[None, :] ** 2 + C[:, None] * h[None, :] ** 2
        if at_zero:
            var = var + A[:, None]
        return W, mean, var

    def scatter_variance(self, dN: Any, dD: Any, hull: Any = 0.0) -> np.ndarray:
        """Posterior mean variance ``E[w0^2 + w1^2 u^2 + k^2 h^2]`` of a target's own error:
        the part not shared with other mixtures predicted by the same fit (what two mixtures'
        errors at one target do not have in common)."""
        self._check_fitted()
        u, h = np.broadcast_arrays(distance(dN, dD), np.asarray(hull, float))
        return self._scatter[0] + self._scatter[1] * u**2 + self._scatter[2] * h**2

    def _check_fitted(self) -> None:
        if not hasattr(self, "_grid"):
            raise MixlawsError("this Discrepancy is not fitted yet: call fit(...) or from_dict")

    # -- prediction ---------------------------------------------------------------------------
    def predict(self, dN: Any, dD: Any, hull: Any = 0.0) -> dict[str, np.ndarray]:
        """Predictive ``bias`` (mean of ``log(L_obs / L_pred)``) and ``sd`` at ``(dN, dD, hull)``.

        The sd is that of one observed run (it includes run-to-run noise; add no new-run
        noise on top).  Returns ``{"bias", "sd", "u"}`` arrays broadcast over the inputs.
        """
        self._check_fitted()
        u, h = np.broadcast_arrays(distance(dN, dD), np.asarray(hull, float))
        fu, fh = np.atleast_1d(u).ravel(), np.atleast_1d(h).ravel()
        w, mean_g, var_g = self._components(fu, fh)
        second = w @ (var_g + mean_g**2)       # the same for either sign of b
        # symmetric in the sign of b unless it is carried: mean 0
        bias = w @ mean_g if self.carry_bias else np.zeros(fu.size)
        var = np.maximum(second - bias**2, 0.0)
        shape = np.shape(u)
        return {"bias": bias.reshape(shape), "sd": np.sqrt(var).reshape(shape), "u": u}

    def quantiles(self, dN: Any, dD: Any, level: float = 0.9, hull: Any = 0.0, *,
                  at_zero: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval of ``log(L_obs / L_pred)`` at ``(dN, dD, hull)``.

        ``at_zero=False`` leaves out the error at distance zero (``s0^2 + w0^2``: run-to-run
        noise and interpolation error), for the interval of the law rather than of a new run.

        Exact quantiles of the posterior predictive (a normal mixture over the grid,
        :func:`mixture_quantile`).  With few folds the predictive is heavier-tailed than a
        normal, so at 90 % this interval is usually narrower than ``bias ± 1.645 sd`` (and
        wider far in the tails).
        """
        self._check_fitted()
        if not 0.0 < level < 1.0:
            raise MixlawsError(f"interval level must be in (0, 1), not {level}")
        u, h = np.broadcast_arrays(distance(dN, dD), np.asarray(hull, float))
        pairs = np.stack([np.atleast_1d(u).ravel(), np.atleast_1d(h).ravel()], 1)
        uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
        inv = np.ravel(inv)
        w, mu, var = self._components(uniq[:, 0], uniq[:, 1], at_zero)
        order = np.argsort(w)[::-1]   # the grid points holding all but 1e-7 of the mass
        keep = order[:int(np.searchsorted(np.cumsum(w[order]), 1.0 - 1e-7)) + 1]
        w, mu, sd = w[keep] / w[keep].sum(), mu[keep], np.sqrt(var[keep] + 1e-18)
        if not self.carry_bias and self._tau2() > 0:   # each point's bias with either sign
            mu, sd, w = np.vstack([mu, -mu]), np.vstack([sd, sd]), np.r_[w, w] / 2
        return tuple(mixture_quantile(mu.T, sd.T, w, q)[inv].reshape(np.shape(u))
                     for q in (0.5 - level / 2, 0.5 + level / 2))

    def interval(self, loss: Any, dN: Any, dD: Any, level: float = 0.9,
                 hull: Any = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Interval ``loss exp(q_lo), loss exp(q_hi)`` around predicted losses at ``(dN, dD)``
        (``q`` the predictive quantiles of :meth:`quantiles`)."""
        qlo, qhi = self.quantiles(dN, dD, level, hull)
        loss = np.asarray(loss, float)
        return loss * np.exp(qlo), loss * np.exp(qhi)

    def covers(self, log_ratio: Any, dN: Any, dD: Any, level: float = 0.9,
               hull: Any = 0.0) -> np.ndarray:
        """Whether observed errors ``log(L_obs / L_pred)`` fall inside the ``level`` interval."""
        qlo, qhi = self.quantiles(dN, dD, level, hull)
        e = np.asarray(log_ratio, float)
        return (qlo <= e) & (e <= qhi)

    # -- artifacts ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; :meth:`from_dict` rebuilds an identical model."""
        self._check_fitted()
        return {"kind": _KIND, "version": _VERSION, "settings": self.get_params(),
                "errors": self.errors_.tolist(), "distances": self.distances_.tolist(),
                "hull": self.hull_.tolist(), "units": self.units_.tolist(), "b": self.b_,
                "s0": self.s0_, "s1": self.s1_, "w0": self.w0_, "w1": self.w1_, "k": self.k_}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Discrepancy":
        """Inverse of :meth:`to_dict` (the posterior grid is recomputed, deterministically)."""
        if not isinstance(d, Mapping) or d.get("kind") != _KIND or d.get("version") != _VERSION:
            raise ArtifactError(f"not a {_KIND} version {_VERSION} dict; pass the output of "
                                "Discrepancy.to_dict()")
        try:
            out = cls(**d["settings"])
            out.errors_ = np.asarray(d["errors"], float)
            out.distances_ = np.asarray(d["distances"], float)
            out.hull_ = np.asarray(d.get("hull", np.zeros(len(d["errors"]))), float)
            out.units_ = np.asarray(d["units"], dtype=str)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{_KIND} dict is incomplete or corrupt: {exc}") from exc
        out._posterior()
        return out

    def __repr__(self) -> str:
        if not hasattr(self, "_grid"):
            return f"Discrepancy({self.get_params()})"
        return (f"Discrepancy(folds={self.n_folds_}, targets={self.n_targets_}, b={self.b_:+.4f}, "
                f"s0={self.s0_:.4f}, s1={self.s1_:.4f}, w0={self.w0_:.4f}, w1={self.w1_:.4f}, "
                f"k={self.k_:.4f}, sigma_within={self.sigma_within_:.4f})")
