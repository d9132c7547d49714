"""Uncertainty: the emcee driver and diagnostics, its moves, the collapsed marginal
likelihoods, one module per stage posterior, and the nested orchestration.
"""
from __future__ import annotations
from ._mcmc import ChainDiagnostics, Chain, run_ensemble, integrated_time
from ._moves import BlockStretchMove, run_blocks
from ._marginal import (Marginal, gaussian_marginal, student_marginal, student_marginal_line, log_box_probability, log_invariant_prior)
from ._size import size_log_marginal, sample_size_stage
from ._step import StepPosterior, sample_step_stage, step_log_prob
from ._mixing import MixingPosterior, mixing_log_prob, sample_mixing_stage
from ._mixing_refit import mixing_response, mixing_refit
from ._joint import JointPosterior, sample_joint_posterior, joint_intervals, design_effect
from ._nested import (PosteriorDraws, Intervals, step_predictive, step_predictive_cov, sample_posterior, bootstrap_posterior, predict_intervals, save_draws, load_draws)

__all__ = [
    "ChainDiagnostics",
    "Chain",
    "run_ensemble",
    "integrated_time",
    "BlockStretchMove",
    "run_blocks",
    "Marginal",
    "gaussian_marginal",
    "student_marginal",
    "student_marginal_line",
    "log_box_probability",
    "log_invariant_prior",
    "size_log_marginal",
    "sample_size_stage",
    "StepPosterior",
    "sample_step_stage",
    "step_log_prob",
    "MixingPosterior",
    "mixing_log_prob",
    "sample_mixing_stage",
    "mixing_response",
    "mixing_refit",
    "JointPosterior",
    "sample_joint_posterior",
    "joint_intervals",
    "design_effect",
    "PosteriorDraws",
    "Intervals",
    "step_predictive",
    "step_predictive_cov",
    "sample_posterior",
    "bootstrap_posterior",
    "predict_intervals",
    "save_draws",
    "load_draws",
]
