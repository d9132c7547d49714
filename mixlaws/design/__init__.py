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

from ._candidates import *  # noqa: F401,F403
from ._ensemble import *  # noqa: F401,F403
from ._criterion import *  # noqa: F401,F403
from ._suggest import *  # noqa: F401,F403
from ._report import *  # noqa: F401,F403
from . import _candidates, _ensemble, _criterion, _suggest, _report

__all__ = [
    *_candidates.__all__,
    *_ensemble.__all__,
    *_criterion.__all__,
    *_suggest.__all__,
    *_report.__all__,
]
