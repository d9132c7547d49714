"""Uncertainty: the emcee driver and diagnostics, its moves, the collapsed marginal
likelihoods, one module per stage posterior, and the nested orchestration.
"""

from __future__ import annotations

from ._mcmc import *  # noqa: F401,F403
from ._moves import *  # noqa: F401,F403
from ._marginal import *  # noqa: F401,F403
from ._size import *  # noqa: F401,F403
from ._step import *  # noqa: F401,F403
from ._mixing import *  # noqa: F401,F403
from ._mixing_refit import *  # noqa: F401,F403
from ._joint import *  # noqa: F401,F403
from ._nested import *  # noqa: F401,F403
from . import _mcmc, _moves, _marginal, _size, _step, _mixing, _mixing_refit, _joint, _nested

__all__ = [
    *_mcmc.__all__,
    *_moves.__all__,
    *_marginal.__all__,
    *_size.__all__,
    *_step.__all__,
    *_mixing.__all__,
    *_mixing_refit.__all__,
    *_joint.__all__,
    *_nested.__all__,
]
