"""Fitting: the batched robust engine, the three nested stages, the nested and joint models,
their artifact (FIT.json) and cross-validation helpers.
"""

from __future__ import annotations

from ._base import *  # noqa: F401,F403
from ._engine import *  # noqa: F401,F403
from ._stages import *  # noqa: F401,F403
from ._nested import *  # noqa: F401,F403
from ._joint import *  # noqa: F401,F403
from ._artifact import *  # noqa: F401,F403
from ._families import *  # noqa: F401,F403
from ._crossval import *  # noqa: F401,F403
from ._extrapolation import *  # noqa: F401,F403
from ._target import *  # noqa: F401,F403
from ._joint_mix import *  # noqa: F401,F403
from . import _base, _engine, _stages, _nested, _joint, _artifact, _families, _crossval, _extrapolation, _target, _joint_mix

__all__ = [
    *_base.__all__,
    *_engine.__all__,
    *_stages.__all__,
    *_nested.__all__,
    *_joint.__all__,
    *_artifact.__all__,
    *_families.__all__,
    *_crossval.__all__,
    *_extrapolation.__all__,
    *_target.__all__,
    *_joint_mix.__all__,
]
