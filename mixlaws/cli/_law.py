"""``--law``: the law family a fit uses, and what the commands do with each family.

``mixlaws fit RUNS.csv --law auto|nested|nested-tied|joint|joint-mix`` picks an entry of
:data:`mixlaws.fit.FAMILIES` (the choices are that registry's names, so a family
registered there, or a model-averaging choice such as ``auto``, appears here by
adding it to :func:`law_choices`).  Fit options a family does not take are an error
when the user gave them (``--implicit`` with ``--law joint``), never silently dropped;
options it does take win over the family's preset (``--law nested --tie-beta all`` is
what ``nested-tied`` presets, as ``mixlaws fit --tie-beta all`` always was).  Without
``--law`` the default is ``auto`` (families averaged on the sweep's own backtests, with
structural intervals), except that an option only the nested laws take (``--implicit``,
``--tie-beta``, ``--tie-alpha``) given without ``--law`` selects ``nested``: those options
have always meant the nested law.  Never prints.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import MixlawsError

__all__ = ["DEFAULT_LAW", "law_choices", "add_law_option", "resolve_law", "estimator_from_args",
           "is_nested",
           "require_nested", "fit_summary"]

DEFAULT_LAW = "auto"
"""The law family of ``fit``/``run`` when neither ``--law`` nor a nested-only option is given."""

#: fit options of the CLI -> estimator setting they set (None in ``args``: not given)
_OPTIONAL = {"implicit": "--implicit", "tie_beta": "--tie-beta", "tie_alpha": "--tie-alpha"}


def law_choices() -> list[str]:
    """Names accepted by ``--law``: the registered families."""
    from ..fit import FAMILIES

    return list(FAMILIES)


def add_law_option(p: argparse.ArgumentParser) -> None:
    """Add ``--law`` to a fitting command."""
    from ..fit import FAMILIES

    p.add_argument("--law", choices=law_choices(), default=None,
                   help="law family: " + "; ".join(f"{f.name}: {f.description}"
                                                   for f in FAMILIES.values())
                   + f" (default {DEFAULT_LAW}; nested when --implicit, --tie-beta or "
                     "--tie-alpha is given)")


def resolve_law(args: argparse.Namespace) -> str:
    """The family ``args`` ask for (see the module docstring); stored back in ``args.law``."""
    law = getattr(args, "law", None)
    if law is None:
        nested_only = any(getattr(args, name, None) is not None for name in _OPTIONAL)
        law = "nested" if nested_only else DEFAULT_LAW
    args.law = law
    return law


def estimator_from_args(args: argparse.Namespace, val_weights: dict[str, float] | None) -> Any:
    """A fresh estimator of ``args.law`` with the fit options the user gave."""
    from ..fit import family

    fam = family(resolve_law(args))
    takes = set(fam.estimator._param_names())
    settings: dict[str, Any] = dict(fam.settings)
    settings.update(val_weights=val_weights, warmup=args.warmup, seed=args.seed)
    for name, flag in _OPTIONAL.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if name not in takes:
            raise MixlawsError(f"{flag} does not apply to --law {fam.name} ({fam.description}); "
                               f"drop it or use --law nested")
        settings[name] = value   # an explicit option wins over the family's preset
    return fam.estimator(**{k: v for k, v in settings.items() if k in takes})


def is_nested(model: Any) -> bool:
    """True for the nested families (step -> size -> mixing stages)."""
    from ..fit import NestedMixingLaw

    return isinstance(model, NestedMixingLaw)


def require_nested(model: Any, what: str) -> None:
    """A clear error when ``what`` exists only for the nested families."""
    if not is_nested(model):
        raise MixlawsError(f"{what} is available for the nested law families only; this fit "
                           f"artifact holds a {getattr(model, 'family', type(model).__name__)!r} "
                           f"fit: refit with `mixlaws fit --law nested` for it")


def fit_summary(model: Any, target: Any) -> dict[str, Any]:
    """Residuals and convergence of the fit behind a target, for ``run``'s summary."""
    if is_nested(model):
        stages = [s for s in (model.step_, target.size, target.mixing) if s is not None]
        return {"law": model.family, "step_rmse": None if model.step_ is None else model.step_.rmse,
                "size_rmse": None if target.size is None else target.size.rmse,
                "mixing_rmse": target.mixing.rmse,
                "converged": bool(all(s.converged.all() for s in stages))}
    if getattr(model, "family", None) == "auto":
        return {"law": "auto", "weights": dict(model.law_weights_),
                "members": {f: fit_summary(model.members_[f], t)
                            for f, t in zip(target.families, target.members)}}
    return {"law": model.family, "rmse": model.fit_.rmse,
            "max_abs_residual": model.fit_.max_abs_residual,
            "converged": bool(model.fit_.converged.all())}
