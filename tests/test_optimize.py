"""Tests of the constrained mixture optimiser."""

from __future__ import annotations

import json
import math
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


from mixlaws.optimize import constraints_from_dict
from mixlaws.errors import (ConstraintError, ConvergenceWarning, InfeasibleConstraintsError,
                            MixtureError)
from mixlaws.optimize import feasible_points, optimize_mixture

S3 = ["A", "B", "C"]
S4 = ["A", "B", "C", "D"]


def quad(q):
    q = jnp.asarray(q, dtype=float)
    return lambda r: jnp.sum((r - q) ** 2)


def project_simplex(v):
    """Euclidean projection onto the probability simplex (sort-based closed form)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.nonzero(u - css / np.arange(1, len(v) + 1) > 0)[0][-1]
    return np.maximum(v - css[k] / (k + 1), 0.0)


T = np.array([[-1.2, 0.4, 0.8], [0.5, -0.9, 0.4], [0.3, 0.6, -0.9]])
K = np.array([0.6, 0.4, 0.5])


def domain_losses(r):
    return 1.5 + jnp.asarray(K) * jnp.exp(jnp.asarray(T) @ r)


def mixing_objective(r):
    return jnp.sum(domain_losses(r))


def assert_on_simplex(r):
    assert r.min() >= 0.0 and abs(r.sum() - 1.0) <= 1e-12


def test_interior_quadratic_optimum():
    q = np.array([0.2, 0.3, 0.1, 0.4])
    res = optimize_mixture(quad(q), S4)
    np.testing.assert_allclose(res.mixture, q, atol=1e-6)
    assert res.converged and res.active_constraints == () and res.n_starts == 16
    assert res.loss == pytest.approx(0.0, abs=1e-12)
    assert_on_simplex(res.mixture)


def test_boundary_quadratic_optimum_is_the_projection():
    q = np.array([0.9, 0.6, -0.3, 0.1])
    res = optimize_mixture(quad(q), S4)
    np.testing.assert_allclose(res.mixture, project_simplex(q), atol=1e-6)
    assert "sources.C.zero" in res.active_constraints and res.converged
    assert_on_simplex(res.mixture)


def test_mixing_law_objective_beats_dense_grid():
    n = 400
    a, b = np.meshgrid(np.arange(n + 1) / n, np.arange(n + 1) / n, indexing="ij")
    keep = a + b <= 1 + 1e-12
    grid = np.stack([a[keep], b[keep], np.clip(1 - a[keep] - b[keep], 0, None)], axis=1)
    vals = (1.5 + K * np.exp(grid @ T.T)).sum(axis=1)
    res = optimize_mixture(mixing_objective, S3)
    assert res.loss - vals.min() < 1e-6
    assert np.abs(res.mixture - grid[np.argmin(vals)]).max() < 2.0 / n
    assert res.converged
    assert res.loss == pytest.approx(float(mixing_objective(jnp.asarray(res.mixture))), abs=0)


@pytest.mark.parametrize("spec, q, active", [
    ({"sources": {"A": {"max": 0.3}}}, [0.6, 0.2, 0.2], "sources.A.max"),
    ({"sources": {"A": {"min": 0.5}}}, [0.2, 0.4, 0.4], "sources.A.min"),
    ({"groups": [{"name": "g", "sources": ["A", "B"], "max": 0.4}]}, [0.4, 0.4, 0.2], "groups.g.max"),
    ({"groups": [{"name": "g", "sources": ["A", "B"], "min": 0.8}]}, [0.3, 0.3, 0.4], "groups.g.min"),
    ({"total_tokens": 1e10, "sources": {"A": {"available_tokens": 1e9, "max_epochs": 3}}},
     [0.6, 0.2, 0.2], "availability.A"),
])
def test_each_linear_constraint_is_active_when_binding(spec, q, active):
    c = constraints_from_dict(spec, S3)
    res = optimize_mixture(quad(q), S3, constraints=c)
    assert active in res.active_constraints and res.converged
    free = optimize_mixture(quad(q), S3)
    assert active not in free.active_constraints
    assert res.loss > free.loss + 1e-6  # the constraint costs something
    assert_on_simplex(res.mixture)


def test_inactive_constraints_are_not_reported():
    c = constraints_from_dict({"sources": {"A": {"max": 0.9}, "B": {"min": 0.05}},
                               "groups": [{"name": "g", "sources": ["B", "C"], "max": 0.99}]}, S3)
    res = optimize_mixture(quad([0.3, 0.3, 0.4]), S3, constraints=c)
    assert res.active_constraints == ()
    np.testing.assert_allclose(res.mixture, [0.3, 0.3, 0.4], atol=1e-6)


def test_fixed_source_is_exact():
    c = constraints_from_dict({"sources": {"B": {"fixed": 0.123456789}}}, S4)
    res = optimize_mixture(mixing_objective_4, S4, constraints=c)
    assert res.mixture[1] == 0.123456789
    assert "sources.B.fixed" in res.active_constraints
    assert_on_simplex(res.mixture)


def mixing_objective_4(r):
    return mixing_objective(r[:3] / (1.0 - r[3] + 1e-3)) + (r[3] - 0.2) ** 2


def test_all_fixed():
    c = constraints_from_dict({"sources": {"A": {"fixed": 0.25}, "B": {"fixed": 0.75}}}, ["A", "B"])
    res = optimize_mixture(quad([1.0, 0.0]), ["A", "B"], constraints=c, n_starts=2)
    np.testing.assert_array_equal(res.mixture, [0.25, 0.75])
    assert res.converged


def test_availability_tokens_and_epochs():
    c = constraints_from_dict({"max_epochs": 2, "sources": {
        "A": {"available_tokens": 1e9}, "B": {"available_tokens": 1e12, "max_epochs": 4}}}, S3)
    res = optimize_mixture(quad([0.7, 0.2, 0.1]), S3, constraints=c, total_tokens=1e10)
    assert res.mixture[0] == pytest.approx(0.2, abs=1e-9) and res.mixture[0] <= 0.2
    assert res.total_tokens == 1e10
    np.testing.assert_allclose(res.tokens, res.mixture * 1e10)
    assert res.epochs[0] == pytest.approx(2.0) and np.isnan(res.epochs[2])
    d = res.to_dict()
    assert d["sources"]["A"]["max_epochs"] == 2.0 and d["sources"]["B"]["max_epochs"] == 4.0
    assert d["sources"]["C"]["available_tokens"] is None and d["sources"]["C"]["epochs"] is None
    assert "availability.A" in res.active_constraints


def test_loss_caps_are_honoured():
    free = optimize_mixture(mixing_objective, S3, domain_losses=domain_losses, domains=["x", "y", "z"])
    cap = free.domain_losses["x"] - 0.05
    c = constraints_from_dict({"loss_caps": [{"domain": "x", "max_loss": cap}]}, S3)
    res = optimize_mixture(mixing_objective, S3, constraints=c, domain_losses=domain_losses,
                           domains=["x", "y", "z"])
    assert float(domain_losses(jnp.asarray(res.mixture))[0]) <= cap + 1e-9
    assert "loss_caps.x.max_loss" in res.active_constraints and res.converged
    assert res.loss >= free.loss

    base = np.array([0.9, 0.05, 0.05])
    base_x = float(domain_losses(jnp.asarray(base))[0])
    assert free.domain_losses["x"] > base_x + 1e-3  # so that the cap binds
    c2 = constraints_from_dict({"loss_caps": [{"domain": "x", "max_increase": 0.0}]}, S3)
    res2 = optimize_mixture(mixing_objective, S3, constraints=c2, domain_losses=domain_losses,
                            domains=["x", "y", "z"], baseline=base)
    assert res2.domain_losses["x"] <= base_x + 1e-9
    assert "loss_caps.x.max_increase" in res2.active_constraints
    assert res2.gain == pytest.approx(res2.baseline_loss - res2.loss) and res2.gain > 0


def test_unreachable_loss_cap_is_infeasible():
    c = constraints_from_dict({"loss_caps": [{"domain": "y", "max_loss": 1.6}]}, S3)
    with pytest.raises(InfeasibleConstraintsError) as info:
        optimize_mixture(mixing_objective, S3, constraints=c, domain_losses=domain_losses,
                         domains=["x", "y", "z"], n_starts=4)
    assert info.value.conflict == ["loss_caps.y.max_loss"]


def test_cap_and_baseline_errors():
    c = constraints_from_dict({"loss_caps": [{"domain": "Github", "max_loss": 2.0}]}, S3)
    with pytest.raises(ConstraintError, match="unknown domain 'Github'"):
        optimize_mixture(mixing_objective, S3, constraints=c, domain_losses=domain_losses,
                         domains=["x", "y", "z"])
    with pytest.raises(ConstraintError, match="per-domain predictions"):
        optimize_mixture(mixing_objective, S3, constraints=c)
    c2 = constraints_from_dict({"loss_caps": [{"domain": "x", "max_increase": 0.01}]}, S3)
    with pytest.raises(ConstraintError, match="give a baseline"):
        optimize_mixture(mixing_objective, S3, constraints=c2, domain_losses=domain_losses,
                         domains=["x", "y", "z"])
    with pytest.raises(ConstraintError, match="resolved for sources"):
        optimize_mixture(mixing_objective, ["A", "B", "Z"], constraints=c2)
    with pytest.raises(MixtureError):
        optimize_mixture(mixing_objective, S3, baseline=[0.5, 0.6, 0.1])
    with pytest.raises(MixtureError):
        optimize_mixture(mixing_objective, S3, baseline=[0.5, 0.5])


def test_infeasible_linear_constraints_name_minimal_conflict():
    c = constraints_from_dict({"sources": {"A": {"min": 0.6}, "B": {"min": 0.6}, "C": {"max": 0.3}},
                               "groups": [{"name": "g", "sources": ["C", "D"], "max": 0.5}]}, S4)
    with pytest.raises(InfeasibleConstraintsError) as info:
        optimize_mixture(quad([0.25] * 4), S4, constraints=c)
    assert sorted(info.value.conflict) == ["sources.A.min", "sources.B.min", "sum to 1"]


def test_deterministic_and_seed_matters_only_for_starts():
    c = constraints_from_dict({"sources": {"A": {"max": 0.4}}}, S3)
    r1 = optimize_mixture(mixing_objective, S3, constraints=c, seed=3)
    r2 = optimize_mixture(mixing_objective, S3, constraints=c, seed=3)
    np.testing.assert_array_equal(r1.mixture, r2.mixture)
    assert r1.loss == r2.loss and r1.message == r2.message
    p1 = feasible_points(c, None, 5, np.random.default_rng(1))
    p2 = feasible_points(c, None, 5, np.random.default_rng(1))
    np.testing.assert_array_equal(p1, p2)
    assert p1.shape == (5, 3) and np.all(p1[:, 0] <= 0.4 + 1e-9)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, atol=1e-9)


def test_to_dict_is_json_ready_without_nan():
    c = constraints_from_dict({"sources": {"A": {"available_tokens": 1e9}}}, S3)
    res = optimize_mixture(mixing_objective, S3, constraints=c, total_tokens=1e10,
                           baseline=[1 / 3] * 3, domain_losses=domain_losses, domains=["x", "y", "z"])
    d = res.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back == d
    assert back["mixture"] == {s: float(w) for s, w in zip(S3, res.mixture)}
    assert back["predicted_loss"] == res.loss and back["unit"] == "tokens"
    assert back["baseline"]["predicted_loss"] == res.baseline_loss
    assert back["sources"]["B"]["epochs"] is None and back["converged"] is True
    assert set(back) >= {"gain", "active_constraints", "total_tokens", "domain_losses", "n_starts",
                         "message"}
    free = optimize_mixture(mixing_objective, S3, n_starts=2).to_dict()
    json.dumps(free, allow_nan=False)
    assert free["baseline"] is None and free["gain"] is None and free["total_tokens"] is None


def test_warns_when_no_start_converges(monkeypatch):
    monkeypatch.setattr("mixlaws.optimize._optimizer._KKT_TOL", -1.0)
    with pytest.warns(ConvergenceWarning):
        res = optimize_mixture(mixing_objective, S3, n_starts=2)
    assert not res.converged and "no start" in res.message
    assert_on_simplex(res.mixture)


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 5).flatmap(lambda m: st.tuples(
    st.lists(st.tuples(st.floats(0, 0.5), st.floats(0, 1)), min_size=m, max_size=m),
    st.lists(st.floats(-3, 3), min_size=m, max_size=m), st.integers(0, 2**16))))
def test_property_feasible_simplex_result(args):
    boxes, t, seed = args
    m = len(boxes)
    lo = np.array([a for a, _ in boxes])
    hi = np.maximum(lo, [b for _, b in boxes])
    if lo.sum() > 1 - 1e-6 or hi.sum() < 1 + 1e-6:
        return  # not (robustly) feasible
    names = [f"s{j}" for j in range(m)]
    c = constraints_from_dict({"sources": {n: {"min": float(a), "max": float(b)}
                                           for n, a, b in zip(names, lo, hi)}}, names)
    tv = jnp.asarray(t)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        res = optimize_mixture(lambda r: 2.0 + jnp.exp(tv @ r) + jnp.sum(r ** 2), names,
                               constraints=c, n_starts=4, seed=seed)
    r = res.mixture
    assert r.min() >= 0.0 and abs(r.sum() - 1.0) <= 1e-12
    assert np.all(r >= lo - 1e-9) and np.all(r <= hi + 1e-9)
    assert res.converged and math.isfinite(res.loss)


def test_sources_the_optimum_drops_are_exactly_zero():
    """Round-off from the optimiser must not leave 1e-17 weights (Megatron rejects them)."""
    import jax.numpy as jnp

    t = jnp.asarray([-1.0, -0.5, 0.8, 0.7])
    res = optimize_mixture(lambda r: 2.0 + 0.5 * jnp.exp(r @ t) + 0.3 * jnp.sum((r - 0.3) ** 2),
                           ["a", "b", "c", "d"], seed=0)
    dropped = res.mixture[2:]
    assert np.all(dropped == 0.0), dropped
    assert res.mixture.sum() == 1.0 or abs(res.mixture.sum() - 1.0) < 1e-15
