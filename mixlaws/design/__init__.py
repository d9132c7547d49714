"""Experimental design: which small runs to train next (``mixlaws suggest``).

:func:`suggest_runs` proposes up to ``batch`` runs (new mixtures, existing mixtures at new
sizes, continuations) within a FLOP budget, ranked by the expected reduction of the regret of
the target optimum per FLOP under a perturbed-observation ensemble of refits of one or more law
families (importance-reweighted fantasies, greedy batches).  Tables that cannot predict the
target yet get a design rule (space-filling mixtures, then second sizes).
:func:`suggestion_report` is the hook for ``mixlaws report``: the proposals table and a figure
of how the optimum's uncertainty would shrink.
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
