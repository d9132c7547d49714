"""The law families mixlaws can predict with, registered once by name.

A *family* is an estimator class plus fixed settings.  Every family's
estimator follows one protocol, so that backtests, model averaging, the CLI's
``--law`` and the report treat them alike:

* ``fit(runs) -> self`` on a :class:`~mixlaws.runs.RunsTable`;
* ``predict(mixtures (n, M), params, tokens) -> {"loss": (n,), "domains": (n, n_domains)}``;
* fitted ``sources_``, ``domains_``, ``weights_``; ``get_params``/``set_params``/``clone``.

Registered here:

``nested``
    Ye et al. (2024)'s Algorithm 1, step law per run with ``beta`` shared by a run's
    domains -> size law per mixture -> mixing law per domain
    (:class:`~mixlaws.fit.NestedMixingLaw`, ``tie_beta="run"``).
``nested-tied``
    the same with one step exponent for every run (``tie_beta="all"``): steadier when
    short runs are extrapolated far in tokens.
``nested-sum``
    as ``nested``, with a mixing law of two exponential terms per domain,
    ``L_d(r) = c_d + exp(a_d1 + t_d1 . r) + exp(a_d2 + t_d2 . r)`` (``mixing_terms=2``): a
    domain that responds to the sources like a blend of two sub-domains; needs
    ``2M + 2`` distinct mixtures.  Its fit costs ~2 s per domain on RegMix's 17 sources
    and 512 mixtures and grows with ``(2M + 1)^2``: ``--law auto`` passes it over above
    32 sources (64 sources x 110 domains: > 10 minutes).
``joint``
    ``L_d(r, N, D) = c_d + k_d exp(t_d . r) + A_d N^(-alpha_d) + B_d D^(-beta_d)``
    (:class:`~mixlaws.fit.JointMixingLaw`), fitted to every checkpoint at once; any table
    shape whose scales identify the size and data terms (final-loss tables, one source).
``joint-mix``
    ``L_d = c_d + k_d exp(t_d . r) + exp(a_d + p_d . r) N^(-alpha_d) + exp(b_d + q_d . r) D^(-beta_d)``
    (:class:`~mixlaws.fit.JointMixMixingLaw`): size and data amplitudes depend on the mixture.

Every joint-family estimator also has ``target(params, tokens)`` (``loss(r)`` and
``domain_losses(r)`` in JAX, for the optimiser) and ``to_dict``/``from_dict`` (FIT.json).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import MixlawsError
from ._joint import JointMixingLaw
from ._joint_mix import JointMixMixingLaw
from ._nested import NestedMixingLaw

__all__ = ["FAMILIES", "Family", "family", "make_estimator"]


@dataclass(frozen=True)
class Family:
    """A registered law family: a name, the estimator class and the settings that define it."""

    name: str
    estimator: Callable[..., Any]
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    auto_max_sources: int | None = None
    """``--law auto`` passes this family over on tables with more sources (its fit's cost)."""

    def make(self, **settings: Any) -> Any:
        """A fresh estimator of this family; ``settings`` add to (not override) the family's own."""
        clash = sorted(set(settings) & set(self.settings))
        if clash:
            raise MixlawsError(f"law family {self.name!r} fixes {', '.join(clash)}; "
                               f"choose another family instead of overriding it")
        return self.estimator(**self.settings, **settings)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("nested", NestedMixingLaw, {"tie_beta": "run"},
           "step law per run (beta shared by a run's domains) -> size law -> mixing law"),
    Family("nested-tied", NestedMixingLaw, {"tie_beta": "all"},
           "as nested, one step exponent for every run"),
    Family("nested-sum", NestedMixingLaw, {"tie_beta": "run", "mixing_terms": 2},
           "as nested, mixing law c_d + exp(a_d1 + t_d1 . r) + exp(a_d2 + t_d2 . r) per domain",
           auto_max_sources=32),
    Family("joint", JointMixingLaw, {},
           "L_d(r,N,D) = c_d + k_d exp(t_d . r) + A_d N^-alpha_d + B_d D^-beta_d"),
    Family("joint-mix", JointMixMixingLaw, {},
           "as joint, with size and data amplitudes exp(a_d + p_d . r), exp(b_d + q_d . r)"),
)}


def family(name: str) -> Family:
    """The registered family ``name`` (a clear error naming the known ones otherwise)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise MixlawsError(f"unknown law family {name!r}; known: {', '.join(FAMILIES)}",
                           law=name) from None


def make_estimator(name: str, **settings: Any) -> Any:
    """A fresh, unfitted estimator of family ``name`` with extra ``settings``."""
    return family(name).make(**settings)
