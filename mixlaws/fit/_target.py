"""What every fitted law offers at a target scale ``(N*, D*)``: predict, measure, optimise.

A target object (:class:`~mixlaws.fit.TargetFit` of the nested family,
:class:`~mixlaws.fit.JointTarget` of the joint ones) defines ``loss(r)`` and
``domain_losses(r)`` (JAX, differentiable) and the attributes ``params, tokens, sources,
domains, progress, mixtures`` (the fitted mixtures) and ``model``; :class:`TargetActions`
builds the user-facing actions on them once, so that every family predicts, reports its
extrapolation and optimises the same way.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

__all__ = ["TargetActions", "check_scale"]


def check_scale(params: Any, tokens: Any) -> tuple[float, float]:
    """A target ``(N*, D*)`` as floats; a :class:`~mixlaws.errors.ScaleError` unless both > 0."""
    from ..errors import ScaleError

    params, tokens = float(params), float(tokens)
    if not (np.isfinite(params) and params > 0 and np.isfinite(tokens) and tokens > 0):
        raise ScaleError(f"target params and tokens must be positive numbers, "
                         f"got params={params}, tokens={tokens}")
    return params, tokens


class TargetActions:
    """Mixin: ``predict``, ``extrapolation`` and ``optimize`` of a law at a target scale."""

    def predict(self, mixtures: Any, *, per_domain: bool = False) -> Any:
        """Predicted aggregate loss at this target.

        Parameters
        ----------
        mixtures : one mixture — a mapping ``{source: share}`` (sources not named are 0) or
            ``"a=0.3,b=0.7"`` — or several: an ``(n, M)`` array or a DataFrame with
            ``mix:<source>`` (or ``<source>``) columns.  Shares must sum to 1.
        per_domain : also return the per-domain losses.

        Returns
        -------
        A float for one mixture, an ``(n,)`` array for several; with ``per_domain``, a pair
        (that, per-domain losses ``(n_domains,)`` / ``(n, n_domains)``).
        """
        from ..runs import as_mixtures

        r, one = as_mixtures(mixtures, self.sources)
        rj = jnp.asarray(r)
        loss = np.asarray(self.loss(rj))
        dom = np.asarray(self.domain_losses(rj))
        if one:
            loss, dom = float(loss[0]), dom[0]
        return (loss, dom) if per_domain else loss

    def extrapolation(self, mixtures: Any) -> list:
        """How far each mixture lies from those the law was fitted on
        (:class:`~mixlaws.fit.Extrapolation`: range excess per source, hull distance)."""
        from ..runs import as_mixtures
        from ._extrapolation import mixture_extrapolation

        return mixture_extrapolation(self.mixtures, as_mixtures(mixtures, self.sources)[0],
                                     self.sources)

    def fit_report(self) -> str:
        """The text fit report of the model and of its laws at this target."""
        from ..report import fit_report

        return fit_report(self.model, self)

    def optimize(self, *, constraints: Any = None, baseline: Any = None,
                 objective: str | None = None, draws: Any = None,
                 repetition_aware: bool = False, r_star: float | None = None,
                 n_starts: int = 16, seed: int = 0, max_extrapolation: float | None = None) -> Any:
        """The best mixture at this target, as a :class:`~mixlaws.optimize.MixtureChoice`.

        Parameters
        ----------
        constraints : a constraint file path or :class:`~mixlaws.optimize.Constraints`.
        baseline : mixture (mapping, ``"a=0.3,..."``, array) or the id of a fitted run.
        objective : None (the fitted law's loss) or ``"mean"``, ``"quantile:Q"``,
            ``"p-better"`` on posterior ``draws``.
        repetition_aware, r_star : value repeated tokens by Muennighoff et al. (2023)
            (nested family only: it needs step laws).
        n_starts, seed : optimiser starts and their seed.
        max_extrapolation : trust region: each share stays within this of the range the fitted
            mixtures sampled (overrides the constraint file's ``max_extrapolation``); the optimum
            without it is reported beside (``MixtureChoice.unconstrained``).
        """
        from ..optimize import R_STAR, choose_mixture

        return choose_mixture(self, constraints=constraints, baseline=baseline,
                              objective=objective, draws=draws,
                              repetition_aware=repetition_aware,
                              r_star=R_STAR if r_star is None else r_star,
                              n_starts=n_starts, seed=seed, max_extrapolation=max_extrapolation)
