"""mixlaws: data mixing laws nested with scaling laws.

Fit L_i(r) = c_i + k_i exp(sum_j t_ij r_j) per validation domain, nested with
power laws in training tokens and model size (Ye et al. 2024), predict the
loss of any mixture at a target scale, choose the best mixture under
constraints and export it for a data loader.

Importing mixlaws enables float64 in JAX (see :mod:`mixlaws._config`).
"""

from __future__ import annotations

from . import _config  # noqa: F401  (enables jax_enable_x64 before anything else)
from ._version import __version__
from .errors import (ArtifactError, ChainWarning, ConstraintError, ConvergenceWarning, DataNote,
                     FitError, InfeasibleConstraintsError, InsufficientDataError, MixlawsError,
                     MixtureError, NotFittedError, RunsTableError, ScaleError)
from .fit import JointMixingLaw, NestedMixingLaw, TargetFit, load_model, save_model
from .runs import RunsTable, read_runs, validate_runs

__all__ = [
    "__version__",
    # estimators and their results
    "NestedMixingLaw", "JointMixingLaw", "TargetFit", "load_model", "save_model",
    # data
    "RunsTable", "read_runs", "validate_runs",
    # errors and warnings
    "MixlawsError", "RunsTableError", "InsufficientDataError", "ScaleError", "ConstraintError",
    "InfeasibleConstraintsError", "ArtifactError", "MixtureError", "FitError", "NotFittedError",
    "ConvergenceWarning", "ChainWarning", "DataNote",
]
