"""Choosing the mixture: constraints, the simplex optimiser, risk-aware objectives and
repetition-aware (data-constrained) prediction.
"""
from __future__ import annotations
from ._constraints import (Constraints, Group, LossCap, LinearItem, load_constraints, constraints_from_dict, availability_upper, linear_items, check_feasible, is_feasible, minimal_conflict, resolve_total_tokens)
from ._optimizer import OptimizationResult, optimize_mixture, feasible_points
from ._risk import (parse_objective, risk_objective, compare_to_baseline, smoothed_quantile, silverman_bandwidth)
from ._repetition import R_STAR, effective_tokens, RepetitionAwareFit, repetition_aware
from ._choice import MixtureChoice, choose_mixture, resolve_baseline, risk_report

__all__ = [
    "MixtureChoice",
    "choose_mixture",
    "resolve_baseline",
    "risk_report",
    "Constraints",
    "Group",
    "LossCap",
    "LinearItem",
    "load_constraints",
    "constraints_from_dict",
    "availability_upper",
    "linear_items",
    "check_feasible",
    "is_feasible",
    "minimal_conflict",
    "resolve_total_tokens",
    "OptimizationResult",
    "optimize_mixture",
    "feasible_points",
    "parse_objective",
    "risk_objective",
    "compare_to_baseline",
    "smoothed_quantile",
    "silverman_bandwidth",
    "R_STAR",
    "effective_tokens",
    "RepetitionAwareFit",
    "repetition_aware",
]
