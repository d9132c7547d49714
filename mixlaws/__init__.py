"""mixlaws: data mixing laws nested with scaling laws.

Fit L_i(r) = c_i + k_i exp(sum_j t_ij r_j) per validation domain, nested with
power laws in training tokens and model size (Ye et al. 2024), predict the
loss of any mixture at a target scale, choose the best mixture under
constraints and export it for a data loader.

Importing mixlaws enables float64 in JAX (see :mod:`mixlaws._config`).

The flow runs table -> laws -> fits -> target -> posterior -> optimiser ->
export -> report, one subpackage each (:mod:`mixlaws.runs`, :mod:`mixlaws.laws`,
:mod:`mixlaws.fit`, :mod:`mixlaws.posterior`, :mod:`mixlaws.optimize`,
:mod:`mixlaws.export`, :mod:`mixlaws.report`; :mod:`mixlaws.simulate` draws
known-truth sweeps, :mod:`mixlaws.cli` is the command line).

Examples
--------
>>> import mixlaws as ml
>>> model = ml.NestedMixingLaw(tie_beta="all").fit("fixtures/sweep.csv")
>>> at = model.target(params=1e9, tokens=2e10)
>>> round(at.predict({"web": 0.6, "code": 0.1, "books": 0.1, "papers": 0.1, "wiki": 0.1}), 3)
3.239
"""

from __future__ import annotations

from . import _config  # noqa: F401  (enables jax_enable_x64 before anything else)
from ._version import __version__
from .errors import (ArtifactError, ChainWarning, ConstraintError, ConvergenceWarning, DataNote,
                     ExtrapolationWarning, FitError, InfeasibleConstraintsError, InsufficientDataError, MixlawsError,
                     MixtureError, NotFittedError, RunsTableError, ScaleError)
from .backtest import AveragedMixingLaw, BacktestResult
from .fit import (FAMILIES, JointMixingLaw, NestedMixingLaw, TargetFit, clone, load_model,
                  make_estimator, save_model)
from .optimize import MixtureChoice, load_constraints
from .posterior import PosteriorDraws, predict_intervals, sample_posterior
from .runs import RunsTable, read_runs, validate_runs

__all__ = [
    "__version__",
    # estimators, their results and artifacts
    "NestedMixingLaw", "JointMixingLaw", "AveragedMixingLaw", "TargetFit", "MixtureChoice",
    "FAMILIES", "BacktestResult",
    "make_estimator", "clone", "load_model", "save_model",
    # data and constraints
    "RunsTable", "read_runs", "validate_runs", "load_constraints",
    # uncertainty
    "sample_posterior", "predict_intervals", "PosteriorDraws",
    # errors and warnings
    "MixlawsError", "RunsTableError", "InsufficientDataError", "ScaleError", "ConstraintError",
    "InfeasibleConstraintsError", "ArtifactError", "MixtureError", "FitError", "NotFittedError",
    "ConvergenceWarning", "ChainWarning", "ExtrapolationWarning", "DataNote",
]
