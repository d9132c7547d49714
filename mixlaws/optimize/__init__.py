"""Choosing the mixture: constraints, the simplex optimiser, risk-aware objectives and
repetition-aware (data-constrained) prediction.
"""

from __future__ import annotations

from ._constraints import *  # noqa: F401,F403
from ._optimizer import *  # noqa: F401,F403
from ._risk import *  # noqa: F401,F403
from ._repetition import *  # noqa: F401,F403
from ._choice import *  # noqa: F401,F403
from . import _constraints, _optimizer, _risk, _repetition, _choice

__all__ = [
    *_constraints.__all__,
    *_optimizer.__all__,
    *_risk.__all__,
    *_repetition.__all__,
    *_choice.__all__,
]
