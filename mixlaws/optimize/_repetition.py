r"""Repetition-aware prediction: repeated tokens are worth less (Muennighoff et al. 2023).

A source with ``U`` unique tokens that is drawn ``D = U (1 + R)`` times (``R`` repetitions
beyond the first epoch) is worth the *effective* data (Muennighoff et al. 2023, "Scaling
Data-Constrained Language Models", NeurIPS 2023, arXiv 2305.16264, eq. 5)

.. math:: D' = U + U R^* \left(1 - e^{-R / R^*}\right), \qquad R = \max(D/U - 1, 0),

with the fitted constant :math:`R^*_D \approx 15.4` (:data:`R_STAR`; a parameter here).
Below one epoch ``D' = D``; ``D' <= D`` always; ``D'`` increases with ``D`` and tends to
``U (1 + R^*)``: a source is worth at most ~16 epochs of its unique tokens.

How it enters the prediction
----------------------------
At the target ``(N*, D*)`` the mixture ``r`` draws ``D_j = r_j D`` tokens of source ``j``
(``D`` the total tokens of the constraint file, else the target tokens).  Each source is
replaced by its effective tokens ``D'_j`` (``D'_j = D_j`` when its availability is unknown),
which defines the **effective mixture** and the **effective token ratio**

.. math:: r'_j = D'_j / \textstyle\sum_k D'_k, \qquad \rho = \sum_k D'_k / D \in (0, 1].

The predicted loss is that of a run trained on ``r'`` for ``rho D*`` fresh tokens.  Refitting
the nested law at ``rho D*`` (``NestedMixingLaw.target``) is not differentiable in ``r``, so the
token dependence is carried by the step law's data term ``B(r) D^{-beta}``: with the fits at
``D*`` (:math:`L_*`) and at a reference ``D_0 = D*/k`` below it (:math:`L_0`),
:math:`B(r') D_*^{-\beta} = (L_0(r') - L_*(r')) / (k^\beta - 1)`, hence

.. math:: L(r) = L_*(r') + \bigl(L_0(r') - L_*(r')\bigr)\,
          \frac{\rho^{-\beta} - 1}{k^{\beta} - 1},

with ``beta`` the median fitted step exponent.  This is exact when every run's step law has
the exponent ``beta`` and interpolates (``rho >= 1/k``) or extrapolates a power law otherwise;
with ``rho = 1`` (no repetition) it is exactly the plain prediction ``L_*(r)``.  The same
correction is applied to every validation domain.  Everything is JAX, so the wrapper's
:meth:`RepetitionAwareFit.loss` is a drop-in objective for
:func:`mixlaws.optimize.optimize_mixture`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax.numpy as jnp
import numpy as np

from .. import _config  # noqa: F401
from ._constraints import Constraints, resolve_total_tokens
from ..errors import ConstraintError, MixlawsError, ScaleError

if TYPE_CHECKING:  # pragma: no cover
    from ..fit import NestedMixingLaw, TargetFit

__all__ = ["R_STAR", "effective_tokens", "RepetitionAwareFit", "repetition_aware"]

R_STAR = 15.4
"""Muennighoff et al. (2023)'s fitted :math:`R^*_D` (15.39): repetitions at which the value of
repeated data has decayed by ``1/e``."""


def effective_tokens(tokens: Any, unique: Any, r_star: float = R_STAR) -> jnp.ndarray:
    r"""Effective data :math:`D' = \min(D, U) + U R^* (1 - e^{-R/R^*})`, :math:`R = \max(D/U-1, 0)`.

    Parameters
    ----------
    tokens : tokens drawn ``D`` (array, ``>= 0``).
    unique : unique tokens ``U`` (broadcast against ``tokens``); ``nan`` or ``inf`` means
        unknown availability, for which ``D' = D``.
    r_star : the decay constant :math:`R^*` (> 0).

    Returns
    -------
    ``D'`` with the broadcast shape (JAX; differentiable, with ``dD'/dD = 1`` at ``D = U``).
    """
    if not r_star > 0:
        raise MixlawsError(f"r_star must be > 0, not {r_star}")
    D = jnp.asarray(tokens, dtype=float)
    U = jnp.asarray(unique, dtype=float)
    known = jnp.isfinite(U) & (U > 0)
    Us = jnp.where(known, U, 1.0)
    R = jnp.maximum(D / Us - 1.0, 0.0)
    eff = jnp.minimum(D, Us) + Us * r_star * -jnp.expm1(-R / r_star)
    return jnp.where(known, eff, D)


@dataclass(frozen=True)
class RepetitionAwareFit:
    r"""The nested law's prediction corrected for repeated tokens (see the module docstring).

    Attributes
    ----------
    target, reference : the :class:`~mixlaws.fit.TargetFit` at ``D*`` and at ``D*/k``.
    beta : step exponent of the token correction (median of the fitted ``beta``).
    total_tokens : ``D``, tokens the mixture draws in total (for ``D_j = r_j D``).
    available_tokens : ``(M,)`` unique tokens per source, ``nan`` where unknown.
    r_star : Muennighoff's :math:`R^*`.
    sources : source names (order of ``r``).
    """

    target: TargetFit
    reference: TargetFit
    beta: float
    total_tokens: float
    available_tokens: np.ndarray
    r_star: float
    sources: tuple[str, ...]

    @property
    def k(self) -> float:
        """Ratio ``D*/D_0`` of the target and reference tokens."""
        return self.target.tokens / self.reference.tokens

    def effective(self, r: Any) -> tuple[jnp.ndarray, jnp.ndarray]:
        r"""Effective mixture ``r' (..., M)`` and token ratio :math:`\rho` ``(...,)`` of ``r``."""
        r = jnp.asarray(r, dtype=float)
        eff = effective_tokens(r * self.total_tokens, jnp.asarray(self.available_tokens),
                               self.r_star)
        tot = jnp.sum(eff, axis=-1)
        return eff / tot[..., None], tot / self.total_tokens

    def _factor(self, rho: jnp.ndarray) -> jnp.ndarray:
        return (rho ** -self.beta - 1.0) / (self.k ** self.beta - 1.0)

    def loss(self, r: Any) -> jnp.ndarray:
        """Repetition-aware aggregate loss of mixtures ``r (..., M)`` (JAX, differentiable)."""
        re, rho = self.effective(r)
        at = self.target.loss(re)
        return at + (self.reference.loss(re) - at) * self._factor(rho)

    def domain_losses(self, r: Any) -> jnp.ndarray:
        """Repetition-aware per-domain losses ``(..., n_domains)`` (JAX, differentiable)."""
        re, rho = self.effective(r)
        at = self.target.domain_losses(re)
        return at + (self.reference.domain_losses(re) - at) * self._factor(rho)[..., None]

    def summary(self, r: Any) -> dict[str, Any]:
        """JSON-ready record of the correction at ``r`` (``MIX.json["repetition_aware"]``)."""
        r = np.asarray(r, dtype=float)
        re, rho = (np.asarray(x, dtype=float) for x in self.effective(r))
        eff = re * float(rho) * self.total_tokens

        def num(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        return {"method": "Muennighoff et al. 2023 effective data", "r_star": self.r_star,
                "beta": self.beta, "reference_tokens": self.reference.tokens,
                "effective_total_tokens": float(rho) * self.total_tokens,
                "effective_token_ratio": float(rho),
                "sources": {s: {"effective_tokens": float(eff[j]),
                                "effective_weight": float(re[j]),
                                "available_tokens": num(self.available_tokens[j])}
                            for j, s in enumerate(self.sources)}}


def _beta(model: NestedMixingLaw) -> float:
    step = getattr(model, "step_", None)
    if step is None:
        raise ScaleError("repetition-aware prediction needs step laws (runs with several "
                         "checkpoints): without them the loss cannot follow the effective tokens")
    return float(np.median(np.asarray(step.params["beta"], dtype=float)))


def repetition_aware(model: NestedMixingLaw, params: float, tokens: float,
                     constraints: Constraints | None, *, total_tokens: float | None = None,
                     r_star: float = R_STAR, reference_fraction: float = 0.25
                     ) -> RepetitionAwareFit:
    """Build the repetition-aware predictor of a fitted model at ``(params, tokens)``.

    Parameters
    ----------
    model : a fitted :class:`~mixlaws.fit.NestedMixingLaw` with step laws.
    params, tokens : target ``N*`` and ``D*`` (``D*`` in the table's progress unit).
    constraints : resolved constraints declaring ``available_tokens`` for ≥ 1 source.
    total_tokens : tokens ``D`` the mixture draws (the file's ``total_tokens`` wins; default
        ``tokens`` when the table's progress unit is tokens).
    r_star : Muennighoff's :math:`R^*` (default :data:`R_STAR`).
    reference_fraction : ``1/k``; the reference fit is at ``reference_fraction * tokens``.

    Raises
    ------
    ConstraintError : no constraints, no ``available_tokens``, or no total tokens.
    ScaleError : the model has no step law.
    """
    if constraints is None or np.all(np.isnan(constraints.available_tokens)):
        where = "no constraint file was given" if constraints is None else \
            f"{constraints.path} declares no sources.<name>.available_tokens"
        raise ConstraintError(f"repetition-aware prediction needs the unique tokens of the "
                              f"sources, but {where}; give a constraints file with available_tokens",
                              key="available_tokens")
    if tuple(constraints.sources) != tuple(model.sources_):
        raise ConstraintError(f"{constraints.path}: constraints were resolved for sources "
                              f"{list(constraints.sources)}, not {list(model.sources_)}; "
                              f"reload them",
                              path=constraints.path)
    if not 0.0 < reference_fraction < 1.0:
        raise MixlawsError(f"reference_fraction must be in (0, 1), not {reference_fraction}")
    if not r_star > 0:
        raise MixlawsError(f"r_star must be > 0, not {r_star}")
    if total_tokens is None and getattr(model, "progress_", "tokens") == "tokens":
        total_tokens = float(tokens)
    D = resolve_total_tokens(constraints, total_tokens)
    if D is None:
        raise ConstraintError(f"{constraints.path}: repetition-aware prediction needs the total "
                              f"tokens; set total_tokens in the file", path=constraints.path,
                              key="total_tokens")
    beta = _beta(model)
    fit = model.target(params, tokens)
    ref = model.target(params, reference_fraction * float(tokens))
    return RepetitionAwareFit(target=fit, reference=ref, beta=beta, total_tokens=float(D),
                              available_tokens=np.asarray(constraints.available_tokens, float),
                              r_star=float(r_star), sources=tuple(model.sources_))
