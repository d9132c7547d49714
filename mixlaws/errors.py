"""Exception and warning hierarchy of mixlaws.

Every error a user can cause by their input derives from :class:`MixlawsError`.
The command-line interface turns these into a one-line message and exit code 2;
anything else is a bug and keeps its traceback.

Errors carry their data (file, run, column, ...) as attributes so that
callers can act on them programmatically, not only print them.
"""

from __future__ import annotations

__all__ = [
    "MixlawsError",
    "RunsTableError",
    "InsufficientDataError",
    "ScaleError",
    "ConstraintError",
    "InfeasibleConstraintsError",
    "ArtifactError",
    "MixtureError",
    "FitError",
    "NotFittedError",
    "ConvergenceWarning",
    "ChainWarning",
    "ExtrapolationWarning",
    "DataNote",
]


class MixlawsError(Exception):
    """Base class of every error caused by user input or an impossible request."""

    def __init__(self, message: str, **data: object) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        for key, value in data.items():
            setattr(self, key, value)

    def __str__(self) -> str:  # one line, always
        return " ".join(self.message.split())


class RunsTableError(MixlawsError):
    """The runs table is malformed. Attributes: ``path``, ``run``, ``column``, ``row``."""


class InsufficientDataError(MixlawsError):
    """A fitting stage lacks data (sizes, mixtures, checkpoints); says how many are needed and found."""


class ScaleError(MixlawsError):
    """A prediction was asked at a scale the fitted laws cannot reach."""


class ConstraintError(MixlawsError):
    """The constraint file is malformed or names unknown sources."""


class InfeasibleConstraintsError(ConstraintError):
    """No mixture satisfies the constraints. Attribute ``conflict``: the smallest conflicting set."""


class ArtifactError(MixlawsError):
    """A fit or mixture artifact cannot be read (wrong kind, other version, corrupt)."""


class MixtureError(MixlawsError):
    """A mixture given by the user is malformed (unknown source, not on the simplex)."""


class FitError(MixlawsError):
    """A law could not be fitted at all (no finite start, all starts failed)."""


class NotFittedError(MixlawsError):
    """An estimator was used before ``fit`` (or ``from_dict``)."""


class ConvergenceWarning(UserWarning):
    """An optimiser did not report convergence, or a fit hit a parameter bound."""


class ChainWarning(UserWarning):
    """An MCMC chain is shorter than ``min_tau_multiple`` autocorrelation times, or its draws
    left the physical region."""


class ExtrapolationWarning(UserWarning):
    """A prediction or optimum lies outside the range of mixtures (or sizes, tokens) the laws saw."""


class DataNote(UserWarning):
    """A visible note about an input change the tool made (e.g. renormalised rounding)."""
