"""The laws: pure JAX functions whose signatures name their parameters, and their registry.
"""

from __future__ import annotations

from ._functions import *  # noqa: F401,F403
from ._priors import *  # noqa: F401,F403
from . import _functions, _priors

__all__ = [*_functions.__all__, *_priors.__all__]
