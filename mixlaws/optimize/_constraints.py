r"""Constraints on the mixture: a small YAML/JSON language and its linear feasibility.

A constraint file restricts the mixture ``r`` (one weight per source, ``r_j >= 0``,
``sum_j r_j = 1``) that :func:`mixlaws.optimize.optimize_mixture` may choose::

    total_tokens: 1.0e11        # optional; default = the target tokens given to the optimiser
    max_epochs: 4               # optional global cap for every source that declares available_tokens
    sources:
      CommonCrawl: {min: 0.2, max: 0.7, available_tokens: 3.0e12}
      Books:       {available_tokens: 2.6e10, max_epochs: 2}
      Wikipedia:   {fixed: 0.05}
    groups:
      - {name: code, sources: [GitHub, StackExchange], max: 0.25}
      - {name: reference, sources: [Wikipedia, ArXiv], min: 0.1}
    loss_caps:                  # caps on individual validation-domain losses
      - {domain: Github, max_increase: 0.01, relative_to: baseline}
      - {domain: ArXiv, max_loss: 2.1}

Every key is optional.  Semantics:

* ``sources.X.min`` / ``max`` bound ``r_X``; ``fixed`` pins it (and excludes min/max).
* ``groups`` bound the sum of the weights of their sources.
* Availability: a source used for ``r_j D`` of the ``D`` total tokens may be repeated at most
  ``max_epochs_j`` times, so ``r_j D <= max_epochs_j * available_tokens_j``, i.e.
  ``r_j <= max_epochs_j * available_tokens_j / D``.  ``max_epochs_j`` is the source's own value,
  else the global ``max_epochs``, else **1** (no repetition) when neither is given.
  ``max_epochs`` on a source without ``available_tokens`` is an error (it would do nothing).
* ``D`` is ``total_tokens`` from the file when present, otherwise the optimiser's target tokens.
* ``loss_caps``: ``max_loss`` caps the predicted loss of a validation domain;
  ``max_increase`` caps its increase over the baseline mixture (``relative_to: baseline``, the
  only reference supported).  Domain names are checked by the optimiser.

YAML 1.1 reads ``1e11`` (no dot) as a string; numeric strings are therefore accepted as numbers.

The linear part (bounds, fixed, groups, availability, sum to 1) is checked with
:func:`scipy.optimize.linprog`; when it is infeasible :func:`check_feasible` raises
:class:`~mixlaws.errors.InfeasibleConstraintsError` naming the smallest conflicting set of items.
"""

from __future__ import annotations

import itertools
import math
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.optimize import linprog

from ..errors import ConstraintError, InfeasibleConstraintsError

__all__ = ["Constraints", "Group", "LossCap", "LinearItem", "load_constraints",
           "constraints_from_dict", "availability_upper", "linear_items", "check_feasible",
           "is_feasible", "minimal_conflict", "resolve_total_tokens"]

_TOP_KEYS = {"total_tokens", "max_epochs", "sources", "groups", "loss_caps", "max_extrapolation"}
_SOURCE_KEYS = {"min", "max", "fixed", "available_tokens", "max_epochs"}
_GROUP_KEYS = {"name", "sources", "min", "max"}
_CAP_KEYS = {"domain", "max_increase", "max_loss", "relative_to"}
_IIS_BUDGET = 400  # LP solves spent looking for a conflict smaller than the deletion filter's


@dataclass(frozen=True, eq=False)
class Group:
    """A group-sum constraint ``lo <= sum_{j in indices} r_j <= hi``."""

    name: str
    indices: np.ndarray
    lo: float | None
    hi: float | None


@dataclass(frozen=True)
class LossCap:
    """A cap on one validation domain: ``L_d(r) <= max_loss`` and/or ``L_d(r) <= L_d(b) + max_increase``."""

    domain: str
    max_loss: float | None = None
    max_increase: float | None = None
    relative_to: str = "baseline"


@dataclass(frozen=True, eq=False)
class Constraints:
    """Constraints resolved against an ordered list of sources (arrays in source order).

    ``lower``/``upper`` hold the declared bounds (0 and 1 where undeclared; the fixed value for
    fixed sources); availability is folded in at optimisation time by :func:`availability_upper`.
    ``max_epochs`` is resolved per source (nan where ``available_tokens`` is unknown).
    """

    sources: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    fixed: np.ndarray
    declared_min: np.ndarray
    declared_max: np.ndarray
    groups: tuple[Group, ...] = ()
    available_tokens: np.ndarray | None = None
    max_epochs: np.ndarray | None = None
    loss_caps: tuple[LossCap, ...] = ()
    total_tokens: float | None = None
    path: str = "<dict>"
    max_extrapolation: float | None = None
    sampled_lower: np.ndarray | None = None
    sampled_upper: np.ndarray | None = None

    @classmethod
    def none(cls, sources: Sequence[str]) -> "Constraints":
        """No constraint beyond the simplex."""
        return constraints_from_dict({}, sources)

    def with_sampled_range(self, mixtures: np.ndarray,
                           max_extrapolation: float | None = None) -> "Constraints":
        """These constraints with the trust region resolved against the fitted ``mixtures``.

        Each share ``r_j`` may leave the sampled range ``[min_i r_ij, max_i r_ij]`` by at most
        ``max_extrapolation`` (the file's key unless given here); without either, unchanged.
        """
        delta = self.max_extrapolation if max_extrapolation is None else float(max_extrapolation)
        if delta is None:
            return self
        X = np.atleast_2d(np.asarray(mixtures, float))
        return dataclasses.replace(self, max_extrapolation=delta, sampled_lower=X.min(0),
                                   sampled_upper=X.max(0))


@dataclass(frozen=True, eq=False)
class LinearItem:
    """One named linear constraint ``coef @ r  (sense)  rhs`` with sense in ``<=``, ``>=``, ``==``."""

    name: str
    label: str
    coef: np.ndarray
    sense: str
    rhs: float


def _fmt(x: float) -> str:
    """Short number: 2.6e10, 0.52, 1e11."""
    s = f"{x:.4g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return s


def _number(value: Any, where: str, path: str, *, lo: float = 0.0, hi: float = math.inf,
            positive: bool = False) -> float:
    """Validate a number in [lo, hi] (``> 0`` when ``positive``)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConstraintError(f"{path}: {where} must be a finite number, got {value!r}; fix the value",
                              path=path, key=where)
    value = float(value)
    if value < lo or value > hi or (positive and value <= 0):
        rng = "> 0" if positive and hi == math.inf else f"in [{_fmt(lo)}, {_fmt(hi)}]"
        what = "must not be negative" if value < 0 else f"must be {rng}"
        raise ConstraintError(f"{path}: {where} = {_fmt(value)} {what}; fix the value",
                              path=path, key=where)
    return value


def _mapping(value: Any, where: str, path: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConstraintError(f"{path}: {where} must be a mapping, got {type(value).__name__}",
                              path=path, key=where)
    unknown = sorted(set(map(str, value)) - allowed)
    if unknown:
        key = unknown[0] if where == "<top level>" else f"{where}.{unknown[0]}"
        raise ConstraintError(f"{path}: unknown key {key}; allowed keys are "
                              f"{', '.join(sorted(allowed))}", path=path, key=key)
    return value


def _source_index(name: Any, where: str, path: str, sources: Sequence[str]) -> int:
    if name not in sources:
        raise ConstraintError(f"{path}: unknown source {name!r} in {where}; known sources are "
                              f"{', '.join(sources)}", path=path, key=where, source=name)
    return list(sources).index(name)


def load_constraints(path: str | Path, sources: Sequence[str]) -> Constraints:
    """Read a YAML (or ``.json``) constraint file and resolve it against ``sources``."""
    import yaml

    p = Path(path)
    from .._yaml import json_loads, safe_load

    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConstraintError(f"{p}: cannot read the constraint file ({exc.strerror}); check the path",
                              path=str(p)) from exc
    except UnicodeDecodeError as exc:
        raise ConstraintError(f"{p}: not UTF-8 text (byte {exc.start}); save the constraint file "
                              "as UTF-8", path=str(p)) from exc
    try:
        data = json_loads(text) if p.suffix.lower() == ".json" else safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        msg = getattr(exc, "problem", None) or (str(exc).splitlines()[0] if str(exc)
                                                else type(exc).__name__)
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConstraintError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}"
                              f"{where} ({msg}); fix the syntax", path=str(p)) from exc
    return constraints_from_dict({} if data is None else data, sources, path=str(p))


def constraints_from_dict(d: Mapping[str, Any], sources: Sequence[str], *,
                          path: str = "<dict>") -> Constraints:
    """Validate a constraint mapping (schema in the module docstring) against ``sources``."""
    sources = tuple(str(s) for s in sources)
    M = len(sources)
    if M == 0:
        raise ConstraintError(f"{path}: no sources to constrain", path=path)
    d = _mapping(d, "<top level>", path, _TOP_KEYS)
    total = d.get("total_tokens")
    total = None if total is None else _number(total, "total_tokens", path, positive=True)
    gmax = d.get("max_epochs")
    gmax = None if gmax is None else _number(gmax, "max_epochs", path, positive=True)

    lower, upper = np.zeros(M), np.ones(M)
    fixed, dmin, dmax = np.zeros(M, bool), np.zeros(M, bool), np.zeros(M, bool)
    avail, epochs = np.full(M, np.nan), np.full(M, np.nan)
    srcs = d.get("sources") or {}
    srcs = _mapping(srcs, "sources", path, set(map(str, srcs)) if isinstance(srcs, Mapping) else set())
    for name, spec in srcs.items():
        j = _source_index(name, f"sources.{name}", path, sources)
        key = f"sources.{name}"
        spec = _mapping(spec or {}, key, path, _SOURCE_KEYS)
        if "fixed" in spec:
            if "min" in spec or "max" in spec:
                raise _err(path, key, f"{key} has both fixed and min/max; keep only one")
            lower[j] = upper[j] = _number(spec["fixed"], f"{key}.fixed", path, hi=1.0)
            fixed[j] = True
        if "min" in spec:
            lower[j], dmin[j] = _number(spec["min"], f"{key}.min", path, hi=1.0), True
        if "max" in spec:
            upper[j], dmax[j] = _number(spec["max"], f"{key}.max", path, hi=1.0), True
        if lower[j] > upper[j]:
            raise _err(path, f"{key}.min", f"{key}.min = {_fmt(lower[j])} exceeds {key}.max = "
                       f"{_fmt(upper[j])}; lower the min or raise the max")
        if "max_epochs" in spec and "available_tokens" not in spec:
            raise _err(path, f"{key}.max_epochs",
                       f"{key}.max_epochs needs {key}.available_tokens; add it or remove max_epochs")
        if "available_tokens" in spec:
            avail[j] = _number(spec["available_tokens"], f"{key}.available_tokens", path, positive=True)
            own = spec.get("max_epochs")
            epochs[j] = (_number(own, f"{key}.max_epochs", path, positive=True) if own is not None
                         else gmax if gmax is not None else 1.0)

    groups = _parse_groups(d.get("groups"), path, sources)
    caps = _parse_caps(d.get("loss_caps"), path)
    trust = d.get("max_extrapolation")
    trust = None if trust is None else _number(trust, "max_extrapolation", path, hi=1.0)

    return Constraints(sources, lower, upper, fixed, dmin, dmax, groups, avail, epochs, caps, total,
                       path, trust)


def _err(path: str, key: str, msg: str) -> ConstraintError:
    return ConstraintError(f"{path}: {msg}", path=path, key=key)


def _list(raw: Any, key: str, path: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _err(path, key, f"{key} must be a list of mappings")
    return raw


def _parse_groups(raw: Any, path: str, sources: tuple[str, ...]) -> tuple[Group, ...]:
    """Validate ``groups`` (a list of ``{name, sources, min?, max?}``)."""
    groups: list[Group] = []
    for g, spec in enumerate(_list(raw, "groups", path)):
        spec = _mapping(spec, f"groups[{g}]", path, _GROUP_KEYS)
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise _err(path, f"groups[{g}].name", f"groups[{g}] needs a name")
        key = f"groups.{name}"
        if any(grp.name == name for grp in groups):
            raise _err(path, key, f"group name {name!r} is used twice; rename one")
        members = spec.get("sources")
        if not isinstance(members, list) or not members:
            raise _err(path, f"{key}.sources", f"{key}.sources must be a non-empty list of sources")
        idx = [_source_index(s, f"{key}.sources", path, sources) for s in members]
        if len(set(idx)) != len(idx):
            raise _err(path, f"{key}.sources", f"{key}.sources lists a source twice; list each once")
        lo = None if spec.get("min") is None else _number(spec["min"], f"{key}.min", path, hi=1.0)
        hi = None if spec.get("max") is None else _number(spec["max"], f"{key}.max", path, hi=1.0)
        if lo is None and hi is None:
            raise _err(path, key, f"{key} has neither min nor max; give one or remove the group")
        if lo is not None and hi is not None and lo > hi:
            raise _err(path, f"{key}.min", f"{key}.min = {_fmt(lo)} exceeds {key}.max = {_fmt(hi)}; "
                       f"lower the min or raise the max")
        groups.append(Group(name, np.asarray(idx, dtype=int), lo, hi))
    return tuple(groups)


def _parse_caps(raw: Any, path: str) -> tuple[LossCap, ...]:
    """Validate ``loss_caps`` (a list of ``{domain, max_loss?, max_increase?, relative_to?}``)."""
    caps: list[LossCap] = []
    for c, spec in enumerate(_list(raw, "loss_caps", path)):
        spec = _mapping(spec, f"loss_caps[{c}]", path, _CAP_KEYS)
        dom = spec.get("domain")
        if not isinstance(dom, str) or not dom:
            raise _err(path, f"loss_caps[{c}].domain", f"loss_caps[{c}] needs a domain")
        key = f"loss_caps.{dom}"
        ml = (None if spec.get("max_loss") is None
              else _number(spec["max_loss"], f"{key}.max_loss", path, positive=True))
        mi = (None if spec.get("max_increase") is None
              else _number(spec["max_increase"], f"{key}.max_increase", path))
        if ml is None and mi is None:
            raise _err(path, key, f"{key} needs max_loss or max_increase")
        rel = spec.get("relative_to", "baseline")
        if rel != "baseline":
            raise _err(path, f"{key}.relative_to",
                       f"{key}.relative_to = {rel!r} is not supported; use baseline")
        caps.append(LossCap(dom, ml, mi, rel))
    return tuple(caps)


def resolve_total_tokens(constraints: Constraints, total_tokens: float | None) -> float | None:
    """Total tokens ``D``: the file's ``total_tokens`` if given, else the optimiser's target."""
    return constraints.total_tokens if constraints.total_tokens is not None else total_tokens


def availability_upper(constraints: Constraints, total_tokens: float | None) -> np.ndarray:
    r"""Upper bounds from availability, :math:`r_j \le e_j a_j / D` (inf where unknown).

    Raises :class:`ConstraintError` when availability is declared but ``D`` is unknown.
    """
    D = resolve_total_tokens(constraints, total_tokens)
    avail = constraints.available_tokens
    known = ~np.isnan(avail)
    if known.any() and (D is None or not D > 0):
        j = int(np.flatnonzero(known)[0])
        raise ConstraintError(f"{constraints.path}: sources.{constraints.sources[j]}.available_tokens "
                              f"needs the total tokens; set total_tokens in the file or give target "
                              f"tokens", path=constraints.path, key="total_tokens")
    out = np.full(len(constraints.sources), np.inf)
    out[known] = constraints.max_epochs[known] * avail[known] / float(D) if known.any() else 0.0
    return out


def linear_items(constraints: Constraints, total_tokens: float | None) -> list[LinearItem]:
    """All named linear constraints (the simplex's ``0 <= r <= 1`` is implicit, not an item)."""
    C, M = constraints, len(constraints.sources)
    D = resolve_total_tokens(C, total_tokens)
    cap = availability_upper(C, total_tokens)
    items: list[LinearItem] = []

    def unit(j: int) -> np.ndarray:
        e = np.zeros(M)
        e[j] = 1.0
        return e

    for j, s in enumerate(C.sources):
        if C.fixed[j]:
            n = f"sources.{s}.fixed"
            items.append(LinearItem(n, f"{n} = {_fmt(C.lower[j])}", unit(j), "==", float(C.lower[j])))
        if C.declared_min[j]:
            n = f"sources.{s}.min"
            items.append(LinearItem(n, n, unit(j), ">=", float(C.lower[j])))
        if C.declared_max[j]:
            n = f"sources.{s}.max"
            items.append(LinearItem(n, n, unit(j), "<=", float(C.upper[j])))
        if np.isfinite(cap[j]):
            n = f"availability.{s}"
            lab = (f"{n} ({_fmt(C.max_epochs[j])} epochs × {_fmt(C.available_tokens[j])} tokens / "
                   f"{_fmt(D)} = {_fmt(cap[j])})")
            items.append(LinearItem(n, lab, unit(j), "<=", float(cap[j])))
    for g in C.groups:
        coef = np.zeros(M)
        coef[g.indices] = 1.0
        if g.lo is not None:
            items.append(LinearItem(f"groups.{g.name}.min", f"groups.{g.name}.min", coef, ">=", g.lo))
        if g.hi is not None:
            items.append(LinearItem(f"groups.{g.name}.max", f"groups.{g.name}.max", coef, "<=", g.hi))
    if C.max_extrapolation is not None and C.sampled_lower is not None:
        d = C.max_extrapolation
        for j, s in enumerate(C.sources):
            hi, lo = C.sampled_upper[j] + d, C.sampled_lower[j] - d
            if hi < 1.0:
                n = f"max_extrapolation.{s}.max"
                items.append(LinearItem(n, f"{n} (sampled max {_fmt(C.sampled_upper[j])} + "
                                        f"{_fmt(d)})", unit(j), "<=", float(hi)))
            if lo > 0.0:
                n = f"max_extrapolation.{s}.min"
                items.append(LinearItem(n, f"{n} (sampled min {_fmt(C.sampled_lower[j])} - "
                                        f"{_fmt(d)})", unit(j), ">=", float(lo)))
    items.append(LinearItem("sum to 1", "sum to 1", np.ones(M), "==", 1.0))
    return items


def _lp_arrays(items: Sequence[LinearItem], M: int) -> tuple[np.ndarray | None, ...]:
    ub = [(it.coef if it.sense == "<=" else -it.coef, it.rhs if it.sense == "<=" else -it.rhs)
          for it in items if it.sense != "=="]
    eq = [(it.coef, it.rhs) for it in items if it.sense == "=="]
    A_ub = np.array([a for a, _ in ub]).reshape(-1, M) if ub else None
    b_ub = np.array([b for _, b in ub]) if ub else None
    A_eq = np.array([a for a, _ in eq]).reshape(-1, M) if eq else None
    b_eq = np.array([b for _, b in eq]) if eq else None
    return A_ub, b_ub, A_eq, b_eq


def is_feasible(items: Sequence[LinearItem], M: int) -> bool:
    """Whether some ``r`` in ``[0, 1]^M`` satisfies every item (LP feasibility)."""
    A_ub, b_ub, A_eq, b_eq = _lp_arrays(items, M)
    res = linprog(np.zeros(M), A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=[(0.0, 1.0)] * M,
                  method="highs")
    return res.status == 0


def minimal_conflict(items: Sequence[LinearItem], M: int) -> list[LinearItem]:
    """Smallest set of items that cannot hold together (an irreducible infeasible subsystem).

    A deletion filter gives an irreducible conflict; then subsets smaller than it are searched
    exhaustively, by increasing size, within a budget of LP solves, so that the reported set is
    the smallest one whenever the search completes.
    """
    kept = list(items)
    for it in list(kept):
        trial = [k for k in kept if k is not it]
        if not is_feasible(trial, M):
            kept = trial
    budget = _IIS_BUDGET
    for size in range(1, len(kept)):
        n_comb = math.comb(len(items), size)
        if n_comb > budget:
            break
        budget -= n_comb
        for combo in itertools.combinations(items, size):
            if not is_feasible(combo, M):
                return list(combo)
    return kept


def check_feasible(constraints: Constraints, total_tokens: float | None) -> list[LinearItem]:
    """Return the linear items, or raise :class:`InfeasibleConstraintsError` naming the conflict."""
    M = len(constraints.sources)
    items = linear_items(constraints, total_tokens)
    if is_feasible(items, M):
        return items
    conflict = [it.label for it in minimal_conflict(items, M)]
    raise InfeasibleConstraintsError(
        f"{constraints.path}: no mixture satisfies the constraints; these conflict: "
        f"{'; '.join(conflict)}. Relax one of them", path=constraints.path, conflict=conflict)
