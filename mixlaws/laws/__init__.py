"""The laws: pure JAX functions whose signatures name their parameters, and their registry.
"""
from __future__ import annotations
from ._functions import (Array, step_law, step_law_log, size_law, size_law_log, mixing_law, implicit_mixing_law, joint_law, explicit_aggregate, sum_zero_basis, MIXING_THETA, mixing_theta, mixing_params, mixing_terms, Law, LAWS)
from ._priors import (EXPONENT_MAX, NU, STEP_LOG_SIGMA, RUN_LOG_TAU, SCATTER_LOG_SIGMA,
                      SCATTER_SCALE, EFFECT_PRIOR_SD, PRIORS)

__all__ = [
    "Array",
    "step_law",
    "step_law_log",
    "size_law",
    "size_law_log",
    "mixing_law",
    "implicit_mixing_law",
    "joint_law",
    "explicit_aggregate",
    "sum_zero_basis",
    "MIXING_THETA",
    "mixing_theta",
    "mixing_params",
    "mixing_terms",
    "Law",
    "LAWS",
    "EXPONENT_MAX",
    "NU",
    "STEP_LOG_SIGMA",
    "RUN_LOG_TAU",
    "SCATTER_LOG_SIGMA",
    "SCATTER_SCALE",
    "EFFECT_PRIOR_SD",
    "PRIORS",
]
