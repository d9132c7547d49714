"""A stated model of a law family's extrapolation error, calibrated by backtests.

For a target at extrapolation distances ``(dN, dD)`` (:func:`extrapolation_distance`) let

.. math::

    u = \\sqrt{\\max(dN, 0)^2 + \\max(dD, 0)^2}

(natural-log units; interpolation counts as ``u = 0``).  The error of a family's prediction
of one run's observed loss, ``e = log(L_obs / L_pred)``, is modelled as

.. math::

    e_{fi} \\sim N\\left(b\\,u_{fi},\\; s_0^2 + s_1^2 u_{fi}^2\\right)

for target ``i`` of backtest fold ``f``: a bias that grows linearly with the distance and a
spread that grows with it.  The targets of one fold come from one fit and their errors are
strongly correlated, so the fold, not the run, is the unit of evidence: each target's
log-likelihood is weighted by ``1 / n_f`` (a composite likelihood in which every fold counts
once -- exact when a fold's errors are identical, conservative when they are independent).
The spread is that of one observed run around the prediction: it includes run-to-run noise.

Few folds must not make it over-confident, so ``b, s0, s1`` get weakly-informative priors in
relative-error units -- ``b ~ N(0, prior_b^2)``, ``s0 ~ HalfNormal(prior_s0)``,
``s1 ~ HalfNormal(prior_s1)`` (defaults 0.05, 0.02, 0.05: a few per cent per unit of log
distance, the typical extrapolation errors of the scaling-law literature) -- and are
integrated out: ``b`` analytically (conjugate given ``s0, s1``), ``(s0, s1)`` on an 81 x 81
log grid.  The predictive distribution of ``e`` at distance ``u`` is that posterior mixture,
summarised by its mean (``bias``) and standard deviation (``sd``, moment-matched); the
interval is ``L_pred exp(q)`` with ``q`` its exact central quantiles.  With no folds it is the prior; each fold shrinks it.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm

from ..errors import ArtifactError, MixlawsError

__all__ = ["Discrepancy", "distance"]

_KIND = "mixlaws.Discrepancy"
_VERSION = 1
_GRID = np.geomspace(1e-4, 0.5, 81)


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

    Attributes (after ``fit``)
    --------------------------
    n_folds_, n_targets_ : units of evidence and targets used.
    b_, s0_, s1_ : posterior means of ``b``, ``s0``, ``s1``.
    sigma_within_ : pooled within-fold sd of the errors (a diagnostic: how much of the error
        is run-to-run scatter rather than shared by a fold; 0 when no fold has two targets).
    errors_, distances_, units_ : the data fitted.
    """

    def __init__(self, *, prior_b: float = 0.05, prior_s0: float = 0.02,
                 prior_s1: float = 0.05) -> None:
        for name, v in (("prior_b", prior_b), ("prior_s0", prior_s0), ("prior_s1", prior_s1)):
            if not (np.isfinite(v) and v > 0):
                raise MixlawsError(f"Discrepancy: {name} must be a positive number, not {v}")
        self.prior_b = float(prior_b)
        self.prior_s0 = float(prior_s0)
        self.prior_s1 = float(prior_s1)

    def get_params(self) -> dict[str, float]:
        """The prior settings."""
        return {"prior_b": self.prior_b, "prior_s0": self.prior_s0, "prior_s1": self.prior_s1}

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, log_ratio: Any, dN: Any, dD: Any, unit: Any) -> "Discrepancy":
        """Fit to backtest errors ``log(L_obs / L_pred)`` of targets grouped into folds ``unit``.

        Returns self.  Non-finite errors or distances are an error.
        """
        e = np.asarray(log_ratio, float).ravel()
        u = distance(dN, dD).ravel()
        unit = np.asarray(unit).astype(str).ravel()
        if not (e.size == u.size == unit.size):
            raise MixlawsError("Discrepancy.fit: log_ratio, dN, dD and unit must have one entry "
                               "per target")
        if not (np.all(np.isfinite(e)) and np.all(np.isfinite(u))):
            raise MixlawsError("Discrepancy.fit: errors and distances must be finite")
        self.errors_, self.distances_, self.units_ = e, u, unit
        self._posterior()
        return self

    def _posterior(self) -> None:
        e, u = self.errors_, self.distances_
        labels, inv = np.unique(self.units_, return_inverse=True)
        n = np.bincount(inv, minlength=labels.size).astype(float)
        a = 1.0 / n[inv] if e.size else np.zeros(0)
        ebar = np.bincount(inv, e, labels.size) / np.maximum(n, 1)
        df = float(np.sum(n - 1))
        self.sigma_within_ = (float(np.sqrt(np.sum((e - ebar[inv]) ** 2) / df)) if df > 0
                              else 0.0)
        self.n_folds_, self.n_targets_ = int(labels.size), int(e.size)
        s0, s1 = np.meshgrid(_GRID, _GRID, indexing="ij")
        s0, s1 = s0.ravel(), s1.ravel()
        v = s0[:, None] ** 2 + s1[:, None] ** 2 * u[None, :] ** 2
        tau2 = self.prior_b**2
        P = 1.0 / tau2 + np.sum(a * u**2 / v, axis=1)
        m = np.sum(a * u * e / v, axis=1) / P
        loglik = -0.5 * (np.sum(a * (np.log(2 * np.pi * v) + e**2 / v), axis=1) - m**2 * P
                         + np.log(tau2 * P))
        # half-normal priors on s0, s1; the grid is uniform in log s (Jacobian s)
        logprior = (-0.5 * (s0 / self.prior_s0) ** 2 + np.log(s0)
                    - 0.5 * (s1 / self.prior_s1) ** 2 + np.log(s1))
        logw = loglik + logprior
        w = np.exp(logw - logsumexp(logw))
        self._grid = (s0, s1, w, m, 1.0 / P)
        self.b_ = float(np.sum(w * m))
        self.s0_ = float(np.sum(w * s0))
        self.s1_ = float(np.sum(w * s1))

    def _check_fitted(self) -> None:
        if not hasattr(self, "_grid"):
            raise MixlawsError("this Discrepancy is not fitted yet: call fit(...) or from_dict")

    # -- prediction ---------------------------------------------------------------------------
    def predict(self, dN: Any, dD: Any) -> dict[str, np.ndarray]:
        """Predictive ``bias`` (mean of ``log(L_obs / L_pred)``) and ``sd`` at ``(dN, dD)``.

        The sd is that of one observed run (it includes run-to-run noise; add no new-run
        noise on top).  Returns ``{"bias", "sd", "u"}`` arrays broadcast over the inputs.
        """
        self._check_fitted()
        u = distance(dN, dD)
        s0, s1, w, m, V = self._grid
        flat = np.atleast_1d(u).ravel()
        mean_g = m[:, None] * flat[None, :]
        var_g = (s0[:, None] ** 2 + s1[:, None] ** 2 * flat[None, :] ** 2
                 + V[:, None] * flat[None, :] ** 2)
        bias = w @ mean_g
        second = w @ (var_g + mean_g**2)
        var = np.maximum(second - bias**2, 0.0)
        shape = np.shape(u)
        return {"bias": bias.reshape(shape), "sd": np.sqrt(var).reshape(shape), "u": u}

    def quantiles(self, dN: Any, dD: Any, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval of ``log(L_obs / L_pred)`` at ``(dN, dD)``.

        Exact quantiles of the posterior predictive (a normal mixture over the grid), found by
        bisection.  With few folds the predictive is heavier-tailed than a normal, so at 90 % this
        interval is usually narrower than ``bias ± 1.645 sd`` (and wider far in the tails).
        """
        self._check_fitted()
        if not 0.0 < level < 1.0:
            raise MixlawsError(f"interval level must be in (0, 1), not {level}")
        u = distance(dN, dD)
        uniq, inv = np.unique(np.atleast_1d(u).ravel(), return_inverse=True)
        s0, s1, w, m, V = self._grid
        order = np.argsort(w)[::-1]   # the grid points holding all but 1e-7 of the mass
        keep = order[:int(np.searchsorted(np.cumsum(w[order]), 1.0 - 1e-7)) + 1]
        s0, s1, w, m, V = s0[keep], s1[keep], w[keep] / w[keep].sum(), m[keep], V[keep]
        mu = m[:, None] * uniq[None, :]
        sd = np.sqrt(s0[:, None] ** 2 + (s1[:, None] ** 2 + V[:, None]) * uniq[None, :] ** 2)
        out = []
        for q in (0.5 - level / 2, 0.5 + level / 2):
            lo = mu.min(0) - 12 * sd.max(0)
            hi = mu.max(0) + 12 * sd.max(0)
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                below = w @ norm.cdf((mid[None, :] - mu) / sd) < q
                lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
            out.append((0.5 * (lo + hi))[inv].reshape(np.shape(u)))
        return out[0], out[1]

    def interval(self, loss: Any, dN: Any, dD: Any,
                 level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Interval ``loss exp(q_lo), loss exp(q_hi)`` around predicted losses at ``(dN, dD)``
        (``q`` the predictive quantiles of :meth:`quantiles`)."""
        qlo, qhi = self.quantiles(dN, dD, level)
        loss = np.asarray(loss, float)
        return loss * np.exp(qlo), loss * np.exp(qhi)

    def covers(self, log_ratio: Any, dN: Any, dD: Any, level: float = 0.9) -> np.ndarray:
        """Whether observed errors ``log(L_obs / L_pred)`` fall inside the ``level`` interval."""
        qlo, qhi = self.quantiles(dN, dD, level)
        e = np.asarray(log_ratio, float)
        return (qlo <= e) & (e <= qhi)

    # -- artifacts ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; :meth:`from_dict` rebuilds an identical model."""
        self._check_fitted()
        return {"kind": _KIND, "version": _VERSION, "settings": self.get_params(),
                "errors": self.errors_.tolist(), "distances": self.distances_.tolist(),
                "units": self.units_.tolist(), "b": self.b_, "s0": self.s0_, "s1": self.s1_}

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
            out.units_ = np.asarray(d["units"], dtype=str)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{_KIND} dict is incomplete or corrupt: {exc}") from exc
        out._posterior()
        return out

    def __repr__(self) -> str:
        if not hasattr(self, "_grid"):
            return f"Discrepancy({self.get_params()})"
        return (f"Discrepancy(folds={self.n_folds_}, targets={self.n_targets_}, b={self.b_:+.4f}, "
                f"s0={self.s0_:.4f}, s1={self.s1_:.4f}, sigma_within={self.sigma_within_:.4f})")
