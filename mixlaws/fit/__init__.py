"""Fitting: the batched robust engine, the three nested stages, the nested and joint models,
their artifact (FIT.json) and cross-validation helpers.
"""
from __future__ import annotations
from ._base import Estimator, clone
from ._engine import GroupSolution, ProfileResult, huber, solve_groups, profile_shared
from ._stages import (StageFit, fit_step_stage, fit_size_stage, fit_mixing_stage, fit_implicit_stage, TIE_BETA, TIE_ALPHA)
from ._nested import NestedMixingLaw, TargetFit
from ._joint import JointMixingLaw
from ._artifact import model_to_dict, model_from_dict, save_model, load_model, content_sha256
from ._families import FAMILIES, Family, family, make_estimator
from ._crossval import holdout_largest_size, leave_mixtures_out, summarise_errors

__all__ = [
    "Estimator",
    "clone",
    "GroupSolution",
    "ProfileResult",
    "huber",
    "solve_groups",
    "profile_shared",
    "StageFit",
    "fit_step_stage",
    "fit_size_stage",
    "fit_mixing_stage",
    "fit_implicit_stage",
    "TIE_BETA",
    "TIE_ALPHA",
    "NestedMixingLaw",
    "TargetFit",
    "JointMixingLaw",
    "model_to_dict",
    "model_from_dict",
    "save_model",
    "load_model",
    "content_sha256",
    "Family",
    "FAMILIES",
    "family",
    "make_estimator",
    "holdout_largest_size",
    "leave_mixtures_out",
    "summarise_errors",
]
