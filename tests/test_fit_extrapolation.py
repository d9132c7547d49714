"""Extrapolation in mixture space: measured for every prediction, bounded by the trust region."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixlaws.errors import ExtrapolationWarning
from mixlaws.fit import mixture_extrapolation
from mixlaws.optimize import constraints_from_dict

from _expected import expected_warnings

SOURCES = ("a", "b", "c")
FITTED = np.array([[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6], [0.4, 0.3, 0.3]])


def test_inside_the_hull_is_not_extrapolated() -> None:
    inside = FITTED.mean(0)
    (e,) = mixture_extrapolation(FITTED, inside, SOURCES)
    assert e.max_excess == 0.0 and e.hull_distance == pytest.approx(0.0, abs=1e-9)
    assert e.to_dict()["excess"] == {}


def test_range_excess_and_hull_distance_outside() -> None:
    r = np.array([0.9, 0.05, 0.05])           # a above its max 0.6 by 0.3; b, c below min 0.2
    (e,) = mixture_extrapolation(FITTED, r, SOURCES)
    np.testing.assert_allclose(e.excess, [0.3, 0.15, 0.15], atol=1e-12)
    # nearest hull point is (0.6, 0.2, 0.2): total-variation distance 0.3
    assert e.hull_distance == pytest.approx(0.3, abs=1e-9)
    assert "a by 0.3" in e.describe()


def test_inside_the_range_but_outside_the_hull() -> None:
    # every share within its sampled range, yet no blend of the fitted mixtures gives it
    r = np.array([0.6, 0.4, 0.0])
    (e,) = mixture_extrapolation(FITTED, r, SOURCES)
    assert e.excess[0] == 0.0 and e.excess[2] == pytest.approx(0.2)
    assert e.hull_distance > 0.0


def test_max_extrapolation_key_and_bounds() -> None:
    C = constraints_from_dict({"max_extrapolation": 0.05}, SOURCES)
    assert C.max_extrapolation == 0.05
    from mixlaws.optimize import linear_items

    items = {it.name: it for it in linear_items(C.with_sampled_range(FITTED), None)}
    assert items["max_extrapolation.a.max"].rhs == pytest.approx(0.65)
    assert items["max_extrapolation.a.min"].rhs == pytest.approx(0.15)
    with pytest.raises(Exception, match="max_extrapolation"):
        constraints_from_dict({"max_extrapolation": 2.0}, SOURCES)


@pytest.fixture(scope="module")
def narrow_sweep():
    """A single-scale sweep whose mixtures keep the truth's best sources below 0.15 each."""
    from mixlaws.fit import NestedMixingLaw
    from mixlaws.runs import validate_runs
    from mixlaws.simulate import random_truth, simulate_sweep, true_optimum

    truth = random_truth(("web", "code", "books", "papers", "wiki"), ("d1", "d2"), seed=3)
    best = np.asarray(true_optimum(truth, 1e6, 1e9)[0])
    order = np.argsort(best)[::-1]          # the truth's most useful sources first
    rng = np.random.default_rng(0)
    mixes = rng.dirichlet(np.ones(5), 40)
    cap = 0.15
    for j in order[:2]:                     # squeeze the two best sources into [0, cap]
        mixes[:, j] *= cap
    mixes /= mixes.sum(1, keepdims=True)
    df = simulate_sweep(truth, sizes=(1e6,), tokens_per_param=1000.0, checkpoints=(1.0,),
                        mixtures=mixes, seed=1)
    with expected_warnings():
        model = NestedMixingLaw().fit(validate_runs(df))
    return model.target(1e6, 1e9)


def test_a_far_optimum_is_warned_about_and_the_trust_region_avoids_it(narrow_sweep) -> None:
    at = narrow_sweep
    lo, hi = at.mixtures.min(0), at.mixtures.max(0)
    with pytest.warns(ExtrapolationWarning, match="outside the sampled range"):
        free = at.optimize()
    assert free.extrapolation["max_excess"] > 0.05
    with expected_warnings(ExtrapolationWarning):
        best = at.optimize(max_extrapolation=0.02)
    r = np.array(list(best.mixture.values()))
    assert np.all(r <= hi + 0.02 + 1e-9) and np.all(r >= lo - 0.02 - 1e-9)
    d = best.to_dict()
    assert d["extrapolation"]["max_excess"] <= 0.02 + 1e-9
    assert d["unconstrained"]["predicted_loss"] <= best.predicted_loss + 1e-12
    assert d["unconstrained"]["mixture"] == pytest.approx(free.mixture, abs=1e-6)
    assert any(a.startswith("max_extrapolation.") for a in d["active_constraints"])
    json.dumps(d, allow_nan=False)


@pytest.mark.parametrize("seed", range(4))
def test_hull_distance_by_the_dual_equals_the_primal_and_threads_change_nothing(seed,
                                                                               monkeypatch):
    """The dual LP gives the primal's ``min ½ ||r - X^T lam||_1`` (written out here), for
    mixtures inside the hull (0), on it and outside; the threaded loop over targets gives the
    same distances as the sequential one."""
    from scipy.optimize import linprog

    rng = np.random.default_rng(seed)
    M, n = int(rng.integers(3, 12)), int(rng.integers(15, 60))
    X = rng.dirichlet(np.full(M, 0.7), n)
    R = np.vstack([rng.dirichlet(np.full(M, 0.7), 8),          # mostly outside
                   0.5 * X[:4] + 0.5 * X[4:8],                  # inside
                   X[:2]])                                      # fitted mixtures themselves

    def primal(r):
        c = np.concatenate([np.zeros(n), 0.5 * np.ones(2 * M)])
        A_eq = np.vstack([np.hstack([X.T, np.eye(M), -np.eye(M)]),
                          np.concatenate([np.ones(n), np.zeros(2 * M)])[None]])
        res = linprog(c, A_eq=A_eq, b_eq=np.concatenate([r, [1.0]]), bounds=(0, None),
                      method="highs")
        return max(res.fun, 0.0)

    sources = [f"s{j}" for j in range(M)]
    threaded = [e.hull_distance for e in mixture_extrapolation(X, R, sources)]
    np.testing.assert_allclose(threaded, [primal(r) for r in R], atol=1e-9)
    np.testing.assert_allclose(threaded[8:], 0.0, atol=1e-9)
    monkeypatch.setenv("MIXLAWS_THREADS", "1")
    assert [e.hull_distance for e in mixture_extrapolation(X, R, sources)] == threaded
