"""Ground-truth sweeps for tests, fixtures and benchmarks (``python -m mixlaws.simulate``).
"""

from __future__ import annotations

from ._truth import *  # noqa: F401,F403
from ._sweep import *  # noqa: F401,F403
from ._chinchilla import *  # noqa: F401,F403
from ._schedule import *  # noqa: F401,F403
from ._shift import *  # noqa: F401,F403
from . import _truth, _sweep, _chinchilla, _schedule, _shift

__all__ = [
    *_truth.__all__,
    *_sweep.__all__,
    *_chinchilla.__all__,
    *_schedule.__all__,
    *_shift.__all__,
]
