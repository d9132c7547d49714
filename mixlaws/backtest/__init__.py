"""Backtests on the user's own sweep and the discrepancy model they calibrate.

:func:`backtest` removes information from a runs table the way the real extrapolation
removes it (:func:`make_folds`: largest size out, late checkpoints out, both, mixtures
out), scores every law family on what was removed (:func:`extrapolation_distance` says how
far each held-out target lies from the fitted data) and returns a :class:`BacktestResult`,
whose :meth:`~BacktestResult.discrepancy` is a :class:`Discrepancy`: a stated model of the family's
error ``log(L_obs / L_pred)`` as a function of the distance ``u`` (an error shared by a fold's
targets and each target's own, both growing with ``u``; optionally a bias ``b u``), which carries
the errors measured at small distances to the target's. :class:`AveragedMixingLaw` stacks the
families and calibrates the stacked prediction the same way (:func:`stacked_discrepancy`).
"""

from __future__ import annotations

from ._folds import *  # noqa: F401,F403
from ._score import *  # noqa: F401,F403
from ._discrepancy import *  # noqa: F401,F403
from ._result import *  # noqa: F401,F403
from ._run import *  # noqa: F401,F403
from ._averaged import *  # noqa: F401,F403
from . import _folds, _score, _discrepancy, _result, _run, _averaged

__all__ = [
    *_folds.__all__,
    *_score.__all__,
    *_discrepancy.__all__,
    *_result.__all__,
    *_run.__all__,
    *_averaged.__all__,
]

# ``--law auto`` is a family like the others (registered here: it is built on the backtests)
from ..fit import FAMILIES as _FAMILIES, Family as _Family  # noqa: E402

_FAMILIES.setdefault("auto", _Family(
    "auto", AveragedMixingLaw, {},
    "the families above averaged by stacking on the sweep's own backtests, with intervals "
    "from the stacked prediction's own backtest errors, carried to the target's "
    "extrapolation distance"))
