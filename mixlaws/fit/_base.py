"""scikit-learn's estimator conventions for the law families: ``get_params``, ``set_params``, ``clone``.

Settings are the keyword arguments of ``__init__`` and are stored unchanged as
attributes of the same name; fitted state ends in ``_``.  ``clone`` returns an
unfitted copy with the same settings — what backtests and bootstraps refit.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, TypeVar

from ..errors import MixlawsError

__all__ = ["Estimator", "clone"]

E = TypeVar("E", bound="Estimator")


class Estimator:
    """Base class of mixlaws' estimators (settings in ``__init__``, fitted state in ``*_``)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor settings of this estimator (copies when ``deep``)."""
        out = {name: getattr(self, name) for name in self._param_names()}
        return copy.deepcopy(out) if deep else out

    def set_params(self: E, **params: Any) -> E:
        """Change settings; return self.  Unknown names are an error."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise MixlawsError(f"{type(self).__name__} has no setting {name!r}; "
                                   f"settings are {', '.join(sorted(valid))}")
            setattr(self, name, value)
        return self

    # -- artifact and report, shared by every family (each defines ``to_dict``) -----------------
    def dumps(self) -> str:
        """FIT.json as text."""
        import json

        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

    def save(self, path: Any) -> None:
        """Write FIT.json to ``path``."""
        from ._artifact import save_model

        save_model(self, path)

    def fit_report(self, target: Any = None) -> str:
        """The text fit report (parameters, errors, correlations, residuals, convergence)."""
        from ..report import fit_report

        return fit_report(self, target)

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        shown = [f"{k}={v!r}" for k, v in self.get_params(deep=False).items()
                 if sig.parameters[k].default is inspect.Parameter.empty
                 or v != sig.parameters[k].default]
        return f"{type(self).__name__}({', '.join(shown)})"


def clone(estimator: E) -> E:
    """An unfitted estimator of the same class with the same settings (deep-copied)."""
    return type(estimator)(**estimator.get_params(deep=True))
