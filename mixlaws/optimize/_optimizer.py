r"""Choose the best mixture on the simplex under constraints.

Solve

.. math:: \min_r f(r) \quad \text{s.t.} \quad r_j \ge 0,\ \sum_j r_j = 1,\
          \ell_j \le r_j \le u_j,\ \mathrm{lo}_g \le \sum_{j \in g} r_j \le \mathrm{hi}_g,\
          r_j \le e_j a_j / D,\ L_d(r) \le \mathrm{cap}_d

where ``f`` is the predicted aggregate loss (a JAX function), the linear part comes from a
:class:`~mixlaws.optimize.Constraints` and the loss caps use the per-domain predictor
``L(r)``.  Fixed sources are eliminated; the remaining weights are optimised by SLSQP with exact
JAX gradients and Jacobians from several feasible starts (a central point, the baseline when it is
feasible, random convex combinations of LP vertices).  Each solution is cleaned (clipped into its
bounds, summed to 1 exactly), checked against every constraint (tolerance 1e-9) and against the
first-order KKT conditions (non-negative multipliers of active constraints, solved by bounded
least squares); the best converged one is returned.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linprog, lsq_linear, minimize

from .. import _config  # noqa: F401
from ._constraints import Constraints, LinearItem, check_feasible, resolve_total_tokens
from ..errors import (ConstraintError, ConvergenceWarning, FitError, InfeasibleConstraintsError,
                     MixtureError)

__all__ = ["OptimizationResult", "optimize_mixture", "feasible_points"]

_FEAS_TOL = 1e-9   # every constraint must hold to this at the returned mixture
_ACTIVE_TOL = 1e-6  # a constraint with slack below this is reported active
_KKT_TOL = 1e-6     # relative stationarity residual accepted as converged


@dataclass(frozen=True, eq=False)
class OptimizationResult:
    """The optimal mixture and what it implies (see :meth:`to_dict` for the MIX.json shape)."""

    sources: tuple[str, ...]
    mixture: np.ndarray
    loss: float
    baseline: np.ndarray | None
    baseline_loss: float | None
    gain: float | None
    active_constraints: tuple[str, ...]
    total_tokens: float | None
    tokens: np.ndarray | None
    epochs: np.ndarray | None
    domain_losses: dict[str, float] | None
    converged: bool
    n_starts: int
    message: str
    available_tokens: np.ndarray | None = None
    max_epochs: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: Python floats at full precision, ``None`` instead of NaN."""
        def num(x: Any) -> float | None:
            return None if x is None or not math.isfinite(float(x)) else float(x)

        def at(arr: np.ndarray | None, j: int) -> float | None:
            return None if arr is None else num(arr[j])

        per_source = {s: {"weight": float(self.mixture[j]), "tokens": at(self.tokens, j),
                          "available_tokens": at(self.available_tokens, j),
                          "max_epochs": at(self.max_epochs, j), "epochs": at(self.epochs, j)}
                      for j, s in enumerate(self.sources)}
        base = None if self.baseline is None else {
            "mixture": {s: float(w) for s, w in zip(self.sources, self.baseline)},
            "predicted_loss": num(self.baseline_loss)}
        return {"mixture": {s: float(w) for s, w in zip(self.sources, self.mixture)},
                "unit": "tokens", "predicted_loss": num(self.loss), "baseline": base,
                "gain": num(self.gain), "active_constraints": list(self.active_constraints),
                "total_tokens": num(self.total_tokens), "sources": per_source,
                "domain_losses": None if self.domain_losses is None else
                {k: num(v) for k, v in self.domain_losses.items()},
                "converged": bool(self.converged), "n_starts": int(self.n_starts),
                "message": self.message}


def _lp_vertex(items: Sequence[LinearItem], M: int, c: np.ndarray) -> np.ndarray | None:
    A_ub = [it.coef if it.sense == "<=" else -it.coef for it in items if it.sense != "=="]
    b_ub = [it.rhs if it.sense == "<=" else -it.rhs for it in items if it.sense != "=="]
    eq = [it for it in items if it.sense == "=="]
    res = linprog(c, A_ub=np.array(A_ub).reshape(-1, M) if A_ub else None,
                  b_ub=np.array(b_ub) if b_ub else None,
                  A_eq=np.array([it.coef for it in eq]), b_eq=np.array([it.rhs for it in eq]),
                  bounds=[(0.0, 1.0)] * M, method="highs")
    return np.asarray(res.x, dtype=float) if res.status == 0 else None


def feasible_points(constraints: Constraints, total_tokens: float | None, n: int,
                    rng: np.random.Generator) -> np.ndarray:
    r"""``n`` points satisfying the linear constraints, shape ``(n, M)``.

    Row 0 is a central point :math:`c`, the mean of the LP vertices that minimise and maximise
    each weight; row ``i > 0`` is :math:`\lambda v_i + (1-\lambda) c` with :math:`v_i` the vertex
    minimising a random linear function and :math:`\lambda \sim U(0, 1)` (feasible by convexity).
    """
    M = len(constraints.sources)
    items = check_feasible(constraints, total_tokens)
    corners = [v for j in range(M) for sign in (1.0, -1.0)
               if (v := _lp_vertex(items, M, sign * np.eye(M)[j])) is not None]
    center = np.mean(corners, axis=0)
    out = np.empty((n, M))
    for i in range(n):
        if i == 0:
            out[i] = center
            continue
        v = _lp_vertex(items, M, rng.standard_normal(M))
        lam = rng.uniform()
        out[i] = center if v is None else lam * v + (1.0 - lam) * center
    return out


def _split(items: Sequence[LinearItem], M: int) -> tuple[np.ndarray, np.ndarray, list[LinearItem]]:
    """Bounds ``lb, ub`` from single-source items (and the simplex) and the remaining rows."""
    lb, ub, rows = np.zeros(M), np.ones(M), []
    for it in items:
        nz = np.flatnonzero(it.coef)
        if len(nz) == 1 and it.coef[nz[0]] == 1.0 and it.name != "sum to 1":
            j = nz[0]
            if it.sense in (">=", "=="):
                lb[j] = max(lb[j], it.rhs)
            if it.sense in ("<=", "=="):
                ub[j] = min(ub[j], it.rhs)
        else:
            rows.append(it)
    return lb, np.maximum(ub, lb), rows


def _slack(it: LinearItem, r: np.ndarray) -> float:
    v = float(it.coef @ r)
    return {"<=": it.rhs - v, ">=": v - it.rhs, "==": -abs(v - it.rhs)}[it.sense]


def _clean(r: np.ndarray, lb: np.ndarray, ub: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Clip into the bounds and make the weights sum to 1 using the free weights' slack."""
    r = np.clip(np.asarray(r, dtype=float), lb, ub)
    # weights within 1e-10 of a bound are the optimiser's round-off: put them on the bound
    # (so a source the optimum drops is exactly 0, which loaders such as Megatron require)
    r = np.where(r - lb < 1e-10, lb, np.where(ub - r < 1e-10, ub, r))
    interior = free & (r > lb) & (r < ub)
    movable = interior if interior.any() else free
    for _ in range(3):
        resid = 1.0 - r.sum()
        if resid == 0.0 or not free.any():
            break
        slack = np.where(movable, (ub - r) if resid > 0 else (r - lb), 0.0)
        if slack.sum() <= 0:
            slack = np.where(free, (ub - r) if resid > 0 else (r - lb), 0.0)
        if slack.sum() <= 0:
            break
        r = np.clip(r + resid * slack / slack.sum(), lb, ub)
    resid = 1.0 - r.sum()
    if resid != 0.0 and free.any():
        k = int(np.argmax(np.where(movable, r, -np.inf)))
        r[k] = min(max(r[k] + resid, lb[k]), ub[k])
    return r


def _baseline(baseline: Any, sources: tuple[str, ...]) -> np.ndarray | None:
    if baseline is None:
        return None
    b = np.asarray(baseline, dtype=float).reshape(-1)
    if b.shape != (len(sources),) or not np.all(np.isfinite(b)):
        raise MixtureError(f"baseline mixture must have {len(sources)} finite weights "
                           f"({', '.join(sources)}); got shape {b.shape}", sources=sources)
    if b.min() < -1e-12 or abs(b.sum() - 1.0) > 1e-6:
        raise MixtureError(f"baseline mixture must be >= 0 and sum to 1 (sum {b.sum():.6g}, min "
                           f"{b.min():.3g}); fix the baseline weights", sources=sources)
    b = np.clip(b, 0.0, None)
    return b / b.sum()


def _caps(C: Constraints, dl: Callable | None, domains: Sequence[str] | None,
          base: np.ndarray | None) -> list[tuple[str, int, float]]:
    """Loss caps as ``(name, domain index, limit)`` with ``L_d(r) <= limit``."""
    if not C.loss_caps:
        return []
    if dl is None or domains is None:
        raise ConstraintError(f"{C.path}: loss_caps need per-domain predictions; give the domain "
                              f"loss predictor and its domain names", path=C.path, key="loss_caps")
    domains = list(domains)
    base_losses = None if base is None else np.asarray(dl(jnp.asarray(base)), dtype=float)
    out = []
    for cap in C.loss_caps:
        key = f"loss_caps.{cap.domain}"
        if cap.domain not in domains:
            raise ConstraintError(f"{C.path}: unknown domain {cap.domain!r} in {key}; known domains "
                                  f"are {', '.join(domains)}", path=C.path, key=key, domain=cap.domain)
        d = domains.index(cap.domain)
        if cap.max_loss is not None:
            out.append((f"{key}.max_loss", d, cap.max_loss))
        if cap.max_increase is not None:
            if base_losses is None:
                raise ConstraintError(f"{C.path}: {key}.max_increase is relative to the baseline; "
                                      f"give a baseline mixture", path=C.path, key=key)
            out.append((f"{key}.max_increase", d, float(base_losses[d]) + cap.max_increase))
    return out


def _kkt_residual(g: np.ndarray, grads: list[np.ndarray], signed: list[bool]) -> float:
    r"""Relative residual :math:`\min_\lambda \|g - \sum_i \lambda_i \nabla c_i\| / (1 + \|g\|)`
    with :math:`\lambda_i \ge 0` for active inequalities :math:`c_i \ge 0`, free for equalities."""
    if not grads:
        return float(np.linalg.norm(g) / (1.0 + np.linalg.norm(g)))
    A = np.column_stack(grads)
    lo = np.where(signed, 0.0, -np.inf)
    res = lsq_linear(A, g, bounds=(lo, np.full(len(grads), np.inf)), method="bvls")
    return float(np.linalg.norm(A @ res.x - g) / (1.0 + np.linalg.norm(g)))


def optimize_mixture(objective: Callable, sources: Sequence[str], *,
                     constraints: Constraints | None = None, total_tokens: float | None = None,
                     baseline: np.ndarray | None = None, domain_losses: Callable | None = None,
                     domains: Sequence[str] | None = None, n_starts: int = 16,
                     seed: int = 0) -> OptimizationResult:
    """Minimise ``objective(r)`` over the simplex under ``constraints``.

    Parameters
    ----------
    objective : JAX-traceable ``r (M,) -> scalar``, the predicted aggregate loss.
    sources : source names, in the order of ``r``.
    constraints : resolved against the same ``sources``; ``None`` means the simplex only.
    total_tokens : target tokens ``D`` (the constraint file's ``total_tokens`` wins if given).
    baseline : reference mixture for the gain and ``max_increase`` loss caps.
    domain_losses, domains : JAX ``r -> (n_domains,)`` and the domain names, for loss caps and
        for reporting per-domain losses at the optimum.
    n_starts : number of SLSQP starts; seed : seed of ``numpy.random.default_rng``.
    """
    sources = tuple(str(s) for s in sources)
    M = len(sources)
    C = Constraints.none(sources) if constraints is None else constraints
    if C.sources != sources:
        raise ConstraintError(f"{C.path}: constraints were resolved for sources {list(C.sources)}, "
                              f"not {list(sources)}; reload them", path=C.path)
    if n_starts < 1:
        raise ValueError("n_starts must be >= 1")
    items = check_feasible(C, total_tokens)
    D = resolve_total_tokens(C, total_tokens)
    base = _baseline(baseline, sources)
    caps = _caps(C, domain_losses, domains, base)
    lb, ub, rows = _split(items, M)
    free = ub - lb > 1e-15
    fidx = np.flatnonzero(free)
    r0 = np.where(free, 0.0, lb)

    def embed(x: jnp.ndarray) -> jnp.ndarray:
        return jnp.asarray(r0).at[fidx].set(x)

    f_vg = jax.jit(jax.value_and_grad(lambda x: objective(embed(x))))
    full_vg = jax.jit(jax.value_and_grad(lambda r: objective(r)))
    if caps:
        cap_idx = np.array([d for _, d, _ in caps])
        cap_lim = np.array([lim for _, _, lim in caps])
        dl = jax.jit(lambda r: domain_losses(r)[cap_idx])
        dl_jac = jax.jit(jax.jacfwd(lambda r: domain_losses(r)[cap_idx]))
    rows = [it for it in rows if np.any(it.coef[fidx] != 0)]
    slsqp_cons = []
    for sense in ("==", "<=", ">="):
        sel = [it for it in rows if it.sense == sense]
        if not sel:
            continue
        sgn = -1.0 if sense == "<=" else 1.0
        A = sgn * np.array([it.coef[fidx] for it in sel])
        b = sgn * np.array([it.rhs - it.coef @ r0 for it in sel])
        slsqp_cons.append({"type": "eq" if sense == "==" else "ineq",
                           "fun": (lambda x, A=A, b=b: A @ x - b), "jac": (lambda x, A=A: A)})
    if caps:
        slsqp_cons.append({"type": "ineq",
                           "fun": lambda x: cap_lim - np.asarray(dl(embed(x))),
                           "jac": lambda x: -np.asarray(dl_jac(embed(x)))[:, fidx]})

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = f_vg(jnp.asarray(x))
        return float(v), np.asarray(g, dtype=float)

    def cap_slack(r: np.ndarray) -> np.ndarray:
        return cap_lim - np.asarray(dl(jnp.asarray(r))) if caps else np.zeros(0)

    rng = np.random.default_rng(seed)
    starts = feasible_points(C, total_tokens, n_starts, rng)
    if base is not None and all(_slack(it, base) >= -_FEAS_TOL for it in items):
        starts = np.vstack([base, starts[:-1]]) if n_starts > 1 else base[None, :]
    cands = []  # (loss, r, message, worst violation, from SLSQP)
    for p in starts:
        r_start = _clean(p, lb, ub, free)
        if fidx.size:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = minimize(fun, r_start[fidx], jac=True, method="SLSQP",
                               bounds=list(zip(lb[fidx], ub[fidx])), constraints=slsqp_cons,
                               options={"ftol": 1e-12, "maxiter": 1000})
            tried = [(_clean(np.asarray(embed(jnp.asarray(res.x))), lb, ub, free), res.message, True),
                     (r_start, "start point (SLSQP did not improve on it)", False)]
        else:
            tried = [(r_start, "all weights are fixed", True)]
        for r, msg, solved in tried:
            loss = float(full_vg(jnp.asarray(r))[0])
            viol = max([0.0] + [-_slack(it, r) for it in items] + list(-cap_slack(r)))
            if math.isfinite(loss):
                cands.append((loss, r, str(msg), viol, solved))
    feas = [c for c in cands if c[3] <= _FEAS_TOL]
    if not feas:
        if not cands:
            raise FitError("the objective is not finite at any feasible mixture; check the fitted "
                           "predictor")
        best = min(cands, key=lambda c: c[3])
        conflict = [name for (name, _, _), s in zip(caps, cap_slack(best[1])) if s < -_FEAS_TOL]
        conflict = conflict or [name for name, _, _ in caps]
        raise InfeasibleConstraintsError(
            f"{C.path}: no mixture found that satisfies the loss caps {', '.join(conflict)} with the "
            f"linear constraints; relax a cap", path=C.path, conflict=conflict)

    def kkt(r: np.ndarray) -> float:
        g = np.asarray(full_vg(jnp.asarray(r))[1], dtype=float)[fidx]
        grads, signed = [], []
        eye = np.eye(fidx.size)
        for k, j in enumerate(fidx):
            if r[j] - lb[j] <= _ACTIVE_TOL:
                grads.append(eye[k])
                signed.append(True)
            if ub[j] - r[j] <= _ACTIVE_TOL:
                grads.append(-eye[k])
                signed.append(True)
        for it in rows:
            if it.sense == "==" or _slack(it, r) <= _ACTIVE_TOL:
                grads.append(it.coef[fidx] * (-1.0 if it.sense == "<=" else 1.0))
                signed.append(it.sense != "==")
        if caps:
            J = np.asarray(dl_jac(jnp.asarray(r)))[:, fidx]
            for k, s in enumerate(cap_slack(r)):
                if s <= _ACTIVE_TOL:
                    grads.append(-J[k])
                    signed.append(True)
        return _kkt_residual(g, grads, signed) if fidx.size else 0.0

    scored = sorted(((c[0], kkt(c[1]), c) for c in feas), key=lambda t: t[0])
    good = [t for t in scored if t[1] <= _KKT_TOL]
    loss, resid, (_, r, msg, _, _) = good[0] if good else scored[0]
    converged = bool(good)
    n_good = sum(1 for t in good if t[2][4])
    message = (f"{msg}; KKT residual {resid:.1e}; {n_good} of {len(starts)} starts converged"
               if converged else
               f"no start reached a KKT point (best residual {resid:.2e}); last message: {msg}")
    if not converged:
        warnings.warn(f"mixture optimisation did not converge: {message}", ConvergenceWarning,
                      stacklevel=2)

    active = [it.name for it in items if it.name != "sum to 1"
              and (it.sense == "==" or _slack(it, r) <= _ACTIVE_TOL)]
    active += [f"sources.{s}.zero" for j, s in enumerate(sources)
               if r[j] <= _ACTIVE_TOL and not C.declared_min[j] and not C.fixed[j]]
    active += [name for (name, _, _), s in zip(caps, cap_slack(r)) if s <= _ACTIVE_TOL]
    base_loss = None if base is None else float(full_vg(jnp.asarray(base))[0])
    dlosses = None
    if domain_losses is not None:
        vals = np.asarray(domain_losses(jnp.asarray(r)), dtype=float).reshape(-1)
        names = list(domains) if domains is not None else [f"domain{i}" for i in range(len(vals))]
        if len(names) != len(vals):
            raise ValueError(f"domain_losses returns {len(vals)} values for {len(names)} domains")
        dlosses = {n: float(v) for n, v in zip(names, vals)}
    has_avail = ~np.isnan(C.available_tokens)
    tokens = None if D is None else r * float(D)
    safe_avail = np.where(has_avail, C.available_tokens, 1.0)
    epochs = None if tokens is None else np.where(has_avail, tokens / safe_avail, np.nan)
    return OptimizationResult(
        sources=sources, mixture=r, loss=loss, baseline=base, baseline_loss=base_loss,
        gain=None if base_loss is None else base_loss - loss, active_constraints=tuple(active),
        total_tokens=None if D is None else float(D), tokens=tokens, epochs=epochs,
        domain_losses=dlosses, converged=converged, n_starts=len(starts), message=message,
        available_tokens=np.where(has_avail, C.available_tokens, np.nan),
        max_epochs=np.where(has_avail, C.max_epochs, np.nan))
