"""Experimental design: which small runs to train next (``mixlaws suggest``).
"""
from __future__ import annotations
from ._candidates import (FLOPS_PER_PARAM_TOKEN, run_flops, ProposedRun, Candidate, TableSummary, summarise_table, feasible_mask, mixture_cloud, tidy_mixtures, farthest_points, build_candidates)
from ._ensemble import Ensemble, perturbed_table, run_noise, fit_ensemble, family_settings
from ._criterion import Fantasies, expected_regret, optimum_spread, greedy_batch, GreedyStep
from ._suggest import Suggestion, suggest_runs, PROPOSAL_COLUMNS
from ._report import suggestion_figure, suggestion_report

__all__ = [
    "FLOPS_PER_PARAM_TOKEN",
    "run_flops",
    "ProposedRun",
    "Candidate",
    "TableSummary",
    "summarise_table",
    "feasible_mask",
    "mixture_cloud",
    "tidy_mixtures",
    "farthest_points",
    "build_candidates",
    "Ensemble",
    "perturbed_table",
    "run_noise",
    "fit_ensemble",
    "family_settings",
    "Fantasies",
    "expected_regret",
    "optimum_spread",
    "greedy_batch",
    "GreedyStep",
    "Suggestion",
    "suggest_runs",
    "PROPOSAL_COLUMNS",
    "suggestion_figure",
    "suggestion_report",
]
