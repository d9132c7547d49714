r"""Risk-aware objectives on posterior draws, for :func:`mixlaws.optimize.optimize_mixture`.

With draws ``L^(s)(r)``, ``s = 1..S`` of the aggregate loss at the target
(:class:`~mixlaws.uncertainty.PosteriorDraws`):

* ``mean``: :math:`f(r) = \frac1S \sum_s L^{(s)}(r)`;
* ``quantile:q``: :math:`f(r) = Q_q\{L^{(s)}(r)\}` (risk-averse for ``q > 0.5``);
* ``p-better``: maximise :math:`P(L(r) < L(b)) \approx \frac1S \sum_s
  \Phi\big((L^{(s)}(b) - L^{(s)}(r))/h\big)`, smoothed with a bandwidth ``h``
  (a tenth of the posterior sd of the baseline's loss) so that it has gradients;
  the objective is its negative.

:func:`compare_to_baseline` reports, for any mixture, ``P(L(r) < L(b))`` (unsmoothed)
and the interval of the gain ``L(b) - L(r)`` over the same draws (paired).
"""

from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp
import jax.scipy.stats as jstats
import numpy as np

from . import _config  # noqa: F401
from .errors import MixlawsError
from .uncertainty import PosteriorDraws

__all__ = ["parse_objective", "risk_objective", "compare_to_baseline"]


def parse_objective(text: str) -> tuple[str, float | None]:
    """``"mean"``, ``"quantile:0.9"`` or ``"p-better"`` -> (kind, quantile)."""
    if text in ("mean", "p-better"):
        return text, None
    if text.startswith("quantile:"):
        try:
            q = float(text.split(":", 1)[1])
        except ValueError:
            q = -1.0
        if 0.0 < q < 1.0:
            return "quantile", q
    raise MixlawsError(f"--objective must be mean, quantile:Q with 0 < Q < 1, or p-better; "
                       f"got {text!r}")


def risk_objective(draws: PosteriorDraws, objective: str,
                   baseline: np.ndarray | None = None) -> Callable[[Any], Any]:
    """JAX objective ``r (M,) -> scalar`` to minimise (see the module docstring)."""
    kind, q = parse_objective(objective)
    if kind == "mean":
        return lambda r: jnp.mean(draws.loss_draws(r))
    if kind == "quantile":
        return lambda r: jnp.quantile(draws.loss_draws(r), q)
    if baseline is None:
        raise MixlawsError("--objective p-better needs --baseline MIX (the mixture to beat)")
    lb = np.asarray(draws.loss_draws(np.asarray(baseline, float)))
    h = max(0.1 * float(np.std(lb)), 1e-6)
    lbj = jnp.asarray(lb)
    return lambda r: -jnp.mean(jstats.norm.cdf((lbj - draws.loss_draws(r)) / h))


def compare_to_baseline(draws: PosteriorDraws, r: np.ndarray, baseline: np.ndarray,
                        level: float = 0.9) -> dict[str, float]:
    """``P(L(r) < L(b))``, mean gain ``L(b) - L(r)`` and its central ``level`` interval."""
    lr = np.asarray(draws.loss_draws(np.asarray(r, float)))
    lb = np.asarray(draws.loss_draws(np.asarray(baseline, float)))
    gain = lb - lr
    lo, hi = np.quantile(gain, [(1 - level) / 2, (1 + level) / 2])
    return {"p_better": float(np.mean(gain > 0)), "gain": float(gain.mean()),
            "gain_lower": float(lo), "gain_upper": float(hi), "level": float(level)}
