"""Invariants of the laws (hypothesis) and the float64 configuration."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import mixlaws  # noqa: F401
from mixlaws._config import x64_enabled
from mixlaws.laws import (
    LAWS,
    explicit_aggregate,
    implicit_mixing_law,
    joint_law,
    mixing_law,
    size_law,
    step_law,
    sum_zero_basis,
)

finite = st.floats(-3, 3, allow_nan=False)


def simplex(m: int):
    return arrays(np.float64, m, elements=st.floats(0.0, 1.0)).filter(lambda v: v.sum() > 1e-3).map(
        lambda v: v / v.sum())


def test_x64_is_enabled():
    assert x64_enabled()
    assert jnp.asarray(1.0).dtype == jnp.float64


@given(st.integers(1, 12))
def test_sum_zero_basis_is_orthonormal_and_sum_free(m):
    H = sum_zero_basis(m)
    assert H.shape == (m, m - 1)
    np.testing.assert_allclose(H.T @ H, np.eye(m - 1), atol=1e-12)
    np.testing.assert_allclose(H.sum(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(H @ H.T, np.eye(m) - 1.0 / m, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 7).flatmap(lambda m: st.tuples(simplex(m), arrays(np.float64, m, elements=finite))),
       st.floats(-5, 5), st.floats(0.01, 5), st.floats(0.01, 2))
def test_mixing_law_gauge(rt, a, c, k):
    """Adding a to every t_j and dividing k by e^a leaves the law unchanged on the simplex."""
    r, t = rt
    v1 = mixing_law(jnp.asarray(r), c, k, jnp.asarray(t))
    v2 = mixing_law(jnp.asarray(r), c, k * np.exp(-a), jnp.asarray(t + a))
    np.testing.assert_allclose(float(v1), float(v2), rtol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.floats(0.5, 4), st.floats(1, 1e4), st.floats(0.05, 1.5), st.floats(1e6, 1e12))
def test_power_laws_decrease_towards_their_floor(E, B, beta, D):
    lo, hi = float(step_law(D, E, B, beta)), float(step_law(2 * D, E, B, beta))
    assert E <= hi <= lo
    if B * D**-beta > 1e-9 * E:  # resolvable in float64
        assert E < hi < lo
    assert float(size_law(D, E, B, beta)) == lo


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6).flatmap(lambda m: st.tuples(simplex(m), arrays(np.float64, m, elements=finite))),
       st.floats(1e7, 1e10), st.floats(1e8, 1e12))
def test_joint_law_is_a_mixing_law_at_fixed_scale(rt, N, D):
    r, t = rt
    c, k, A, alpha, B, beta = 1.7, 0.4, 400.0, 0.34, 410.0, 0.28
    j = joint_law(jnp.asarray(r), N, D, c, k, jnp.asarray(t), A, alpha, B, beta)
    c_eff = c + A * N**-alpha + B * D**-beta
    np.testing.assert_allclose(float(j), float(mixing_law(jnp.asarray(r), c_eff, k, jnp.asarray(t))),
                               rtol=1e-12)


def test_implicit_law_with_one_latent_domain_is_a_mixing_law():
    r = jnp.asarray([0.2, 0.3, 0.5])
    t = jnp.asarray([[0.5, -1.0, 0.5]])
    np.testing.assert_allclose(float(implicit_mixing_law(r, 2.0, jnp.asarray([np.log(0.3)]), t)),
                               float(mixing_law(r, 2.0, 0.3, t[0])), rtol=1e-14)


@given(arrays(np.float64, 5, elements=st.floats(0, 1)).filter(lambda w: w.sum() > 0))
def test_explicit_aggregate_of_a_constant(w):
    w = w / w.sum()
    np.testing.assert_allclose(float(explicit_aggregate(jnp.full(5, 3.2), jnp.asarray(w))), 3.2,
                               rtol=1e-12)


def test_registry_documents_every_law():
    assert set(LAWS) == {"step", "size", "mixing", "implicit", "joint", "joint-mix"}
    for law in LAWS.values():
        assert law.func.__doc__ and "math::" in law.func.__doc__
        assert set(law.positive) <= set(law.params)


def test_readme_prior_table_matches_the_prior_constants() -> None:
    """The README's prior table states the values defined once in mixlaws.laws."""
    import re
    from pathlib import Path

    from mixlaws.laws import EFFECT_PRIOR_SD, EXPONENT_MAX, NU, SCATTER_SCALE

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme[readme.index("| stage | likelihood"):]
    table = table[:table.index("\n\n")]
    rows = [r for r in table.splitlines()[2:] if r.startswith("|")]
    assert len(rows) == 4
    for row in rows:
        for hi in re.findall(r"[αβ] ~ U\(0, ([0-9.]+)\)|α, β ~ U\(0, ([0-9.]+)\)", row):
            assert float(next(h for h in hi if h)) == EXPONENT_MAX, row
        for nu in re.findall(r"ν = ([0-9.]+)", row):
            assert float(nu) == NU, row
        for sd in re.findall(r"t ~ N\(0, ([0-9.]+)²\)", row):
            assert float(sd) == EFFECT_PRIOR_SD, row
        for sc in re.findall(r"half-Cauchy\(([0-9.]+)\)", row):
            assert float(sc) == SCATTER_SCALE, row
    assert "half-Cauchy(" in table and "ν = " in table and "U(0, " in table
