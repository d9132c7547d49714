"""The chosen mixture at a target scale, and the artifact it is written as (MIX.json).

:func:`choose_mixture` is what ``TargetFit.optimize`` and ``mixlaws optimize`` call:
it resolves the constraint file and the baseline against the fit, picks the
objective (the fitted law, its repetition-aware variant, or a posterior objective),
runs :func:`~mixlaws.optimize.optimize_mixture` and returns a :class:`MixtureChoice`
that carries its own actions (``to_dict`` for MIX.json, ``save``, ``export``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from .._version import __version__
from ..errors import ConstraintError, MixlawsError
from ._constraints import Constraints, load_constraints
from ._optimizer import OptimizationResult, optimize_mixture
from . import _repetition
from ._repetition import R_STAR

if TYPE_CHECKING:  # pragma: no cover
    from ..fit import TargetFit
    from ..posterior import PosteriorDraws

__all__ = ["MixtureChoice", "choose_mixture", "resolve_baseline", "risk_report"]

@dataclass(frozen=True, eq=False)
class MixtureChoice:
    """The optimum at a target and everything MIX.json says about it.

    Attributes
    ----------
    result : the optimiser's :class:`~mixlaws.optimize.OptimizationResult`.
    params, tokens, progress : the target ``(N*, D*)`` and the table's progress unit.
    repetition : the repetition-aware summary at the optimum, or None.
    uncertainty : the posterior summary (interval, P(beats baseline)), or None.
    extrapolation : how far the optimum lies from the fitted mixtures
        (:class:`~mixlaws.fit.Extrapolation` as a dict).
    unconstrained : with a trust region (``max_extrapolation``), the optimum without it
        (mixture, predicted loss, extrapolation), reported beside the chosen one.
    """

    result: OptimizationResult
    params: float
    tokens: float
    progress: str
    repetition: dict[str, Any] | None = None
    uncertainty: dict[str, Any] | None = None
    extrapolation: dict[str, Any] | None = None
    unconstrained: dict[str, Any] | None = None

    @property
    def mixture(self) -> dict[str, float]:
        """``{source: share}`` of the optimum."""
        return {s: float(w) for s, w in zip(self.result.sources, self.result.mixture)}

    @property
    def predicted_loss(self) -> float:
        """Objective value at the optimum (the predicted aggregate loss for ``objective=None``)."""
        return float(self.result.loss)

    @property
    def gain(self) -> float | None:
        """Predicted loss of the baseline minus that of the optimum (None without a baseline)."""
        return None if self.result.gain is None else float(self.result.gain)

    def to_dict(self) -> dict[str, Any]:
        """The MIX.json document (JSON-ready, full float precision)."""
        from ..export import MIXTURE_KIND

        d: dict[str, Any] = {"kind": MIXTURE_KIND, "mixlaws_version": __version__,
                             "target": {"params": self.params, "tokens": self.tokens,
                                        "progress": self.progress}}
        d.update(self.result.to_dict())
        d["repetition_aware"] = self.repetition
        d["extrapolation"] = self.extrapolation
        if self.unconstrained is not None:
            d["unconstrained"] = self.unconstrained
        if self.uncertainty is not None:
            d["uncertainty"] = self.uncertainty
        return d

    def dumps(self) -> str:
        """MIX.json as text."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def save(self, path: str | os.PathLike) -> None:
        """Write MIX.json."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.dumps())

    def manifest(self):
        """The canonical :class:`~mixlaws.export.Manifest` of this mixture."""
        from ..export import manifest_from_dict

        return manifest_from_dict(self.to_dict(), path="<mixture>")

    def export(self, fmt: str, *, paths: Mapping[str, Any] | None = None,
               doc_lengths: Mapping[str, float] | None = None) -> str:
        """The mixture in a data loader's format (``megatron``, ``hf``, ``olmo-core``, ...)."""
        from ..export import export

        return export(self.manifest(), fmt, paths=paths, doc_lengths=doc_lengths)


def resolve_baseline(target: "TargetFit", baseline: Any) -> np.ndarray | None:
    """A baseline given as a mapping, ``"a=0.3,b=0.7"``, an array, or the id of a fitted run."""
    from ..runs import as_mixtures

    if baseline is None or (isinstance(baseline, str) and not baseline):
        return None
    if isinstance(baseline, str) and "=" not in baseline:
        return run_mixture(target.model, baseline, "--baseline")
    return as_mixtures(baseline, target.sources)[0][0]


def run_mixture(model: Any, run: str, flag: str) -> np.ndarray:
    """The mixture of run ``run`` of a fitted ``model``'s table (``flag`` names the option)."""
    runs = [] if model is None else list(model.runs_["run"])
    if run not in runs:
        raise MixlawsError(f"{flag} {run!r} is neither a mixture 'source=share,...' nor a run of "
                           f"the table (e.g. {', '.join(runs[:3])})")
    return model.mixtures_[model.runs_["mixture"][runs.index(run)]]


def risk_report(draws: "PosteriorDraws", mixture: np.ndarray, baseline: np.ndarray | None,
                objective: str, level: float = 0.9) -> dict[str, Any]:
    """Posterior summary of an optimised mixture: interval, P(beats baseline), gain interval."""
    from ..posterior import predict_intervals
    from ._risk import compare_to_baseline

    iv = predict_intervals(draws, mixture[None], level, seed=draws.seed)
    out: dict[str, Any] = {"objective": objective, "posterior": draws.method,
                           "loss": float(iv.loss[0]), "lower": float(iv.new_lower[0]),
                           "upper": float(iv.new_upper[0]),
                           "mean_interval": [float(iv.lower[0]), float(iv.upper[0])],
                           "level": level}
    if baseline is not None:
        out["versus_baseline"] = compare_to_baseline(draws, mixture, baseline, level)
    elif objective == "p-better":
        raise MixlawsError("--objective p-better needs --baseline")
    return out


def choose_mixture(target: "TargetFit", *, constraints: "Constraints | str | os.PathLike | None" = None,
                   baseline: Any = None, objective: str | None = None,
                   draws: "PosteriorDraws | None" = None, repetition_aware: bool = False,
                   r_star: float = R_STAR, n_starts: int = 16, seed: int = 0,
                   max_extrapolation: float | None = None) -> MixtureChoice:
    """Optimise the mixture at ``target``; see :meth:`mixlaws.fit.TargetFit.optimize`."""
    from ..fit import mixture_extrapolation, warn_extrapolation

    if n_starts < 1:
        raise MixlawsError(f"n_starts must be ≥ 1, not {n_starts}")
    if isinstance(constraints, (str, os.PathLike)):
        constraints = load_constraints(constraints, target.sources)
    total = None if constraints is None else constraints.total_tokens
    if total is not None and target.progress == "tokens" and \
            abs(total - target.tokens) > 1e-6 * max(total, target.tokens):
        raise ConstraintError(f"{constraints.path}: total_tokens={total:g} disagrees with the "
                              f"target's tokens {target.tokens:g} (--tokens); make them equal or "
                              f"drop total_tokens", path=constraints.path)
    free = constraints
    if max_extrapolation is not None or (constraints is not None
                                         and constraints.max_extrapolation is not None):
        if max_extrapolation is not None and not 0.0 <= max_extrapolation <= 1.0:
            raise MixlawsError(f"max_extrapolation must be in [0, 1], not {max_extrapolation}")
        base_c = Constraints.none(target.sources) if constraints is None else constraints
        free = dataclasses.replace(base_c, max_extrapolation=None)
        constraints = base_c.with_sampled_range(target.mixtures, max_extrapolation)
    base = resolve_baseline(target, baseline)
    objective_fn, dlosses, rep = target.loss, target.domain_losses, None
    if repetition_aware:
        rep = _repetition.repetition_aware(target.model, target.params, target.tokens, constraints,
                               r_star=r_star)
        objective_fn, dlosses = rep.loss, rep.domain_losses
    if objective is not None:
        from ._risk import risk_objective

        if draws is None:
            raise MixlawsError(f"objective {objective!r} needs posterior draws: run "
                               f"`mixlaws sample` (or pass draws=sample_posterior(...))")
        objective_fn = risk_objective(draws, objective, base)
    def solve(cons: Constraints | None) -> OptimizationResult:
        return optimize_mixture(objective_fn, target.sources, constraints=cons,
                                total_tokens=target.tokens if target.progress == "tokens" else None,
                                baseline=base, domain_losses=dlosses, domains=target.domains,
                                n_starts=n_starts, seed=seed)

    result = solve(constraints)
    ext = mixture_extrapolation(target.mixtures, result.mixture, target.sources)[0]
    unconstrained = None
    if free is not constraints:          # a trust region: report the optimum without it too
        alt = solve(free)
        alt_ext = mixture_extrapolation(target.mixtures, alt.mixture, target.sources)[0]
        unconstrained = {"mixture": {s: float(w) for s, w in zip(alt.sources, alt.mixture)},
                         "predicted_loss": float(alt.loss), "extrapolation": alt_ext.to_dict()}
    warn_extrapolation(ext, "the optimum")
    if objective is not None:
        uncertainty = risk_report(draws, result.mixture, base, objective)
    elif hasattr(target, "uncertainty"):     # a model-averaged target: structural intervals
        uncertainty = target.uncertainty(result.mixture, base)
    else:
        uncertainty = None
    return MixtureChoice(result=result, params=target.params, tokens=target.tokens,
                         progress=target.progress,
                         repetition=None if rep is None else rep.summary(result.mixture),
                         uncertainty=uncertainty, extrapolation=ext.to_dict(),
                         unconstrained=unconstrained)
