"""mixlaws: data mixing laws nested with scaling laws.

Fit L_i(r) = c_i + k_i exp(sum_j t_ij r_j) per validation domain, nested with
power laws in training tokens and model size (Ye et al. 2024), predict the
loss of any mixture at a target scale, choose the best mixture under
constraints and export it for a data loader.

Importing mixlaws enables float64 in JAX (see :mod:`mixlaws._config`).
"""

from __future__ import annotations

from . import _config  # noqa: F401  (enables jax_enable_x64 before anything else)
from .errors import MixlawsError

__version__ = "0.1.0"

__all__ = ["MixlawsError", "__version__"]
