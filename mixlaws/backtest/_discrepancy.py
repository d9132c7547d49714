"""A stated model of a law family's extrapolation error, calibrated by backtests.

For a target at extrapolation distances ``(dN, dD)`` (:func:`extrapolation_distance`) let

.. math::

    u = \\sqrt{\\max(dN, 0)^2 + \\max(dD, 0)^2}

(natural-log units; interpolation counts as ``u = 0``) and let ``h`` be the total-variation
distance of its mixture to the hull of the fitted mixtures (:func:`mixlaws.fit.mixture_extrapolation`;
0 for a mixture of the sweep).  The error of a family's prediction of one run's observed loss,
``e = log(L_obs / L_pred)``, is modelled as

.. math::

    e_{fi} \\sim N\\left(b\\,u_{fi},\\; s_0^2 + s_1^2 u_{fi}^2 + k^2 h_{fi}^2\\right)

for target ``i`` of backtest fold ``f``: a bias that grows linearly with the scale distance, a
spread that grows with it, and a spread that grows with the distance in mixture space (the
leave-mixtures-out folds measure ``k``; a mixture far outside the design cannot hide in
``s_0``, where it would widen every interval).  The targets of one fold come from one fit and
their errors are strongly correlated, so the fold, not the run, is the unit of evidence: each
target's log-likelihood is weighted by ``1 / n_f`` (a composite likelihood in which every fold
counts once -- exact when a fold's errors are identical, conservative when they are
independent).  The spread is that of one observed run around the prediction: it includes
run-to-run noise.

Few folds must not make it over-confident, so ``b, s0, s1, k`` get weakly-informative priors in
relative-error units -- ``b ~ N(0, prior_b^2)``, ``s0 ~ HalfNormal(prior_s0)``,
``s1 ~ HalfNormal(prior_s1)``, ``k ~ HalfNormal(prior_k)`` (defaults 0.05, 0.02, 0.02, 0.1: a
few per cent per unit of log distance, the typical extrapolation errors of the scaling-law
literature, and 1 % per 0.1 of the mixture outside the design; ``prior_s1`` was 0.05 until the
out-of-family calibration benchmark showed 98 % coverage of 90 % intervals with it, and 97 %
(nested) / 92 % (joint) with 0.02 -- ``benchmarks/backtest_calibration.py --priors``) -- and are
integrated out:
``b`` analytically (conjugate given the spreads), ``(s0, s1, k)`` on a log grid.  The predictive
distribution of ``e`` at ``(u, h)`` is that posterior mixture, summarised by its mean (``bias``)
and standard deviation (``sd``, moment-matched); the interval is ``L_pred exp(q)`` with ``q``
its exact central quantiles.  With no folds it is the prior; each fold shrinks it.

**The size of the bias is carried to the target, not its sign** (``carry_bias=False``, the
default): the predictive uses the posterior of ``b`` made symmetric about 0,
``(N(m, V) + N(-m, V)) / 2`` for each grid point's conditional ``N(m, V)``, so a bias the
backtests measured widens the interval by ``sqrt(m^2 + V) u`` on both sides and moves no
prediction.  The backtests measure extrapolation over shorter distances than the target's,
and the sign of a law's error can flip with the distance: on Ye et al.'s RedPajama runs (a
100k-step cosine schedule) the laws fitted on 10k-13k steps over-predict the loss at 30k,
while those fitted on 10k-30k under-predict it at 100k -- carrying the first sign to the
second distance moved the prediction the wrong way (``benchmarks/auto_real.py``, the averaged
law's long-horizon errors with the sign carried / not: RedPajama -2.2 / -0.9 %, its members
-0.3 and -1.8 %; Ye et al.'s 5-group table -3.6 / +0.5 %, its members +1.7 and -0.6 %).
``carry_bias=True`` is the linear-bias model as stated above.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

from ..errors import ArtifactError, MixlawsError

__all__ = ["Discrepancy", "distance", "mixture_quantile"]

_KIND = "mixlaws.Discrepancy"
_VERSION = 1
_GRID = np.geomspace(1e-4, 0.5, 33)          # s0, s1
_GRID_K = np.geomspace(1e-3, 3.0, 11)        # k (per unit of hull distance)
_CHUNK = 4096                                # grid points evaluated at once


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


def distance(dN: Any, dD: Any) -> np.ndarray:
    """Extrapolation distance ``u = sqrt(max(dN, 0)^2 + max(dD, 0)^2)`` (natural-log units)."""
    dN = np.maximum(np.asarray(dN, float), 0.0)
    dD = np.maximum(np.asarray(dD, float), 0.0)
    return np.sqrt(dN**2 + dD**2)


class Discrepancy:
    """Predictive model of ``log(L_obs / L_pred)`` as a function of the extrapolation distance.

    Parameters
    ----------
    prior_b : sd of the normal prior on the bias slope ``b`` (per unit of ``u``).
    prior_s0 : scale of the half-normal prior on ``s0`` (sd at ``u = 0``).
    prior_s1 : scale of the half-normal prior on ``s1`` (growth of the sd per unit of ``u``).
    prior_k : scale of the half-normal prior on ``k`` (growth of the sd per unit of ``h``).
    carry_bias : shift predictions by the fitted bias ``b u`` (True) or only widen them by
        its size (False, default; see the module docstring).

    Attributes (after ``fit``)
    --------------------------
    n_folds_, n_targets_ : units of evidence and targets used.
    b_, s0_, s1_, k_ : posterior means of ``b``, ``s0``, ``s1``, ``k``.
    sigma_within_ : pooled within-fold sd of the errors (a diagnostic: how much of the error
        is run-to-run scatter rather than shared by a fold; 0 when no fold has two targets).
    errors_, distances_, hull_, units_ : the data fitted.
    """

    def __init__(self, *, prior_b: float = 0.05, prior_s0: float = 0.02,
                 prior_s1: float = 0.02, prior_k: float = 0.1, carry_bias: bool = False) -> None:
        for name, v in (("prior_b", prior_b), ("prior_s0", prior_s0), ("prior_s1", prior_s1),
                        ("prior_k", prior_k)):
            if not (np.isfinite(v) and v > 0):
                raise MixlawsError(f"Discrepancy: {name} must be a positive number, not {v}")
        self.prior_b = float(prior_b)
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
        a = 1.0 / n[inv] if e.size else np.zeros(0)
        ebar = np.bincount(inv, e, labels.size) / np.maximum(n, 1)
        df = float(np.sum(n - 1))
        self.sigma_within_ = (float(np.sqrt(np.sum((e - ebar[inv]) ** 2) / df)) if df > 0
                              else 0.0)
        self.n_folds_, self.n_targets_ = int(labels.size), int(e.size)
        s0, s1, k = (g.ravel() for g in np.meshgrid(_GRID, _GRID, _GRID_K, indexing="ij"))
        tau2 = self.prior_b**2
        P = np.empty(s0.size)
        m = np.empty(s0.size)
        loglik = np.empty(s0.size)
        for lo in range(0, s0.size, _CHUNK):      # chunks keep memory at _CHUNK x n_targets
            sl = slice(lo, lo + _CHUNK)
            v = (s0[sl, None] ** 2 + s1[sl, None] ** 2 * u[None, :] ** 2
                 + k[sl, None] ** 2 * h[None, :] ** 2)
            P[sl] = 1.0 / tau2 + np.sum(a * u**2 / v, axis=1)
            m[sl] = np.sum(a * u * e / v, axis=1) / P[sl]
            loglik[sl] = -0.5 * (np.sum(a * (np.log(2 * np.pi * v) + e**2 / v), axis=1)
                                 - m[sl] ** 2 * P[sl] + np.log(tau2 * P[sl]))
        # half-normal priors; the grid is uniform in log s (Jacobian s)
        logprior = sum(-0.5 * (g / scale) ** 2 + np.log(g) for g, scale in
                       ((s0, self.prior_s0), (s1, self.prior_s1), (k, self.prior_k)))
        logw = loglik + logprior
        w = np.exp(logw - logsumexp(logw))
        keep = w > 1e-12 * w.max()     # drop grid points with no mass (prediction cost)
        w = w[keep] / w[keep].sum()
        self._grid = (s0[keep], s1[keep], k[keep], w, m[keep], 1.0 / P[keep])
        self.b_ = float(np.sum(w * m[keep]))
        self.s0_ = float(np.sum(w * s0[keep]))
        self.s1_ = float(np.sum(w * s1[keep]))
        self.k_ = float(np.sum(w * k[keep]))

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
        s0, s1, k, w, m, V = self._grid
        fu, fh = np.atleast_1d(u).ravel(), np.atleast_1d(h).ravel()
        mean_g = m[:, None] * fu[None, :]
        var_g = (s0[:, None] ** 2 + (s1[:, None] ** 2 + V[:, None]) * fu[None, :] ** 2
                 + k[:, None] ** 2 * fh[None, :] ** 2)
        second = w @ (var_g + mean_g**2)       # the same for either sign of b
        # symmetric in the sign of b unless it is carried: mean 0
        bias = w @ mean_g if self.carry_bias else np.zeros(fu.size)
        var = np.maximum(second - bias**2, 0.0)
        shape = np.shape(u)
        return {"bias": bias.reshape(shape), "sd": np.sqrt(var).reshape(shape), "u": u}

    def quantiles(self, dN: Any, dD: Any, level: float = 0.9,
                  hull: Any = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval of ``log(L_obs / L_pred)`` at ``(dN, dD, hull)``.

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
        s0, s1, k, w, m, V = self._grid
        order = np.argsort(w)[::-1]   # the grid points holding all but 1e-7 of the mass
        keep = order[:int(np.searchsorted(np.cumsum(w[order]), 1.0 - 1e-7)) + 1]
        s0, s1, k, w, m, V = (x[keep] for x in (s0, s1, k, w, m, V))
        w = w / w.sum()
        uu, hh = uniq[:, 0], uniq[:, 1]
        mu = m[:, None] * uu[None, :]
        sd = np.sqrt(s0[:, None] ** 2 + (s1[:, None] ** 2 + V[:, None]) * uu[None, :] ** 2
                     + k[:, None] ** 2 * hh[None, :] ** 2)
        if not self.carry_bias:        # each grid point's bias with either sign, half each
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
                "s0": self.s0_, "s1": self.s1_, "k": self.k_}

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
                f"s0={self.s0_:.4f}, s1={self.s1_:.4f}, k={self.k_:.4f}, sigma_within={self.sigma_within_:.4f})")
