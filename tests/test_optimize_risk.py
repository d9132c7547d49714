"""The smoothed quantile objective (mixlaws.optimize.risk_objective): limit, gradient, properties, optimum."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from mixlaws.cli import main
from mixlaws.optimize import optimize_mixture
from mixlaws.optimize import risk_objective, silverman_bandwidth, smoothed_quantile
from mixlaws.posterior import load_draws
from _expected import expected_warnings

BASELINE = "web=0.6,code=0.1,books=0.1,papers=0.1,wiki=0.1"
TARGET = ["--params", "1e9", "--tokens", "2e10"]


def _empirical_set(x: np.ndarray, level: float) -> tuple[float, float]:
    """The set of empirical ``level``-quantiles ``{q : F_S(q-) <= level <= F_S(q)}``."""
    xs, k = np.sort(x), level * x.size
    lo, hi = int(np.ceil(k - 1e-9)) - 1, min(int(np.floor(k + 1e-9)), x.size - 1)
    return float(xs[lo]), float(xs[hi])


@pytest.mark.parametrize("S, level", [(299, 0.9), (300, 0.9), (2000, 0.95), (500, 0.5)])
def test_converges_to_empirical_quantile(S, level):
    """h -> 0 gives the inverted empirical CDF; the default h moves it by a fraction of h."""
    x = 3.0 + 0.01 * np.random.default_rng(S).standard_t(5, size=S)  # loss-like, heavy tails
    lo, hi = _empirical_set(x, level)
    gap = hi - lo if hi > lo else np.diff(np.sort(x)).max()
    dist = []
    for h in 0.01 * np.logspace(-1, -11, 6):
        q = float(smoothed_quantile(x, level, h))
        dist.append(max(lo - q, q - hi, 0.0))
        # |bias| <= h |z_level| + O(h) tails: within a few h of the empirical quantile set
        assert dist[-1] <= 5 * h, (h, q, lo, hi)
    assert dist[-1] <= 1e-12
    # numpy's default (linear interpolation) lies within one order-statistic gap of that set
    assert abs(float(smoothed_quantile(x, level, 1e-13)) - np.quantile(x, level)) <= gap
    # the default bandwidth: the shift from the empirical quantile is h-order (here <= h / 2;
    # the smoothing bias h^2 |f'/f| / 2 is ~0.2 h for Gaussian-like draws at S ~ 300-2000)
    h = silverman_bandwidth(x)
    assert abs(float(smoothed_quantile(x, level, h)) - np.quantile(x, level)) <= 0.5 * h


def test_gradient_matches_implicit_formula_and_finite_differences():
    rng = np.random.default_rng(0)
    x = jnp.asarray(3.0 + 0.01 * rng.standard_normal(400))
    h = silverman_bandwidth(x)
    g = np.asarray(jax.grad(lambda L: smoothed_quantile(L, 0.9, h))(x))
    q = float(smoothed_quantile(x, 0.9, h))
    phi = norm.pdf((q - np.asarray(x)) / h)
    np.testing.assert_allclose(g, phi / phi.sum(), rtol=1e-10, atol=1e-15)   # implicit formula
    assert g.sum() == pytest.approx(1.0)                                      # translation
    eps = 1e-3 * h                     # truncation error ~ (eps/h)^2, round-off ~ 1e-16 / eps
    for i in np.argsort(-g)[:3]:
        e = np.zeros(x.size)
        e[i] = eps
        fd = (float(smoothed_quantile(x + e, 0.9, h))
              - float(smoothed_quantile(x - e, 0.9, h))) / (2 * eps)
        assert fd == pytest.approx(g[i], rel=1e-5)
    # derivatives in level and h, also implicit (dQ/dlevel = 1 / smoothed density)
    for arg, dflt, step in ((1, 0.9, 1e-6), (2, h, 1e-4 * h)):
        f = ((lambda a: smoothed_quantile(x, a, h)) if arg == 1
             else (lambda a: smoothed_quantile(x, 0.9, a)))
        fd = (float(f(dflt + step)) - float(f(dflt - step))) / (2 * step)
        assert float(jax.grad(f)(dflt)) == pytest.approx(fd, rel=1e-5)


@pytest.mark.slow
def test_objective_gradient_in_mixture(posterior_fit):
    """grad_r of the objective = sum_s w_s grad_r L_s(r), and matches finite differences."""
    draws = load_draws(posterior_fit["npz"])
    base = np.array([0.6, 0.1, 0.1, 0.1, 0.1])
    f = risk_objective(draws, "quantile:0.9", base)
    r = np.array([0.3, 0.1, 0.1, 0.3, 0.2])
    g = np.asarray(jax.grad(f)(jnp.asarray(r)))
    L = np.asarray(draws.loss_draws(r))
    phi = norm.pdf((float(f(r)) - L) / f.bandwidth)
    J = np.asarray(jax.jacfwd(draws.loss_draws)(jnp.asarray(r)))               # (S, M)
    np.testing.assert_allclose(g, (phi / phi.sum()) @ J, rtol=1e-9)
    eps = 1e-6
    fd = [(float(f(r + eps * e)) - float(f(r - eps * e))) / (2 * eps) for e in np.eye(r.size)]
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(x=st.lists(st.floats(1.0, 5.0), min_size=1, max_size=12),
       l1=st.floats(0.01, 0.99), l2=st.floats(0.01, 0.99), h=st.floats(1e-4, 1.0),
       shift=st.floats(-2.0, 2.0), scale=st.floats(0.1, 10.0))
@pytest.mark.slow
def test_properties(x, l1, l2, h, shift, scale):
    x = np.asarray(x)
    lo_l, hi_l = min(l1, l2), max(l1, l2)
    q1, q2 = float(smoothed_quantile(x, lo_l, h)), float(smoothed_quantile(x, hi_l, h))
    assert q1 <= q2 + 1e-12                                                    # monotone in level
    for lvl, q in ((lo_l, q1), (hi_l, q2)):
        z = norm.ppf(lvl)
        assert x.min() + h * z - 1e-12 <= q <= x.max() + h * z + 1e-12      # bracket
        assert abs(norm.cdf((q - x) / h).mean() - lvl) <= 1e-9               # it is the root
    assert float(smoothed_quantile(x + shift, hi_l, h)) == pytest.approx(q2 + shift, abs=1e-9)
    assert float(smoothed_quantile(scale * x, hi_l, scale * h)) == pytest.approx(scale * q2,
                                                                                  rel=1e-9)


@pytest.fixture(scope="module")
def posterior_fit(fixture_posterior):
    """The fixture fitted and sampled (300 draws) through the CLI, once per session (conftest)."""
    return fixture_posterior


def _optimize_cli(posterior_fit, objective, capsys):
    out = str(posterior_fit["dir"] / f"mix_{objective.replace(':', '_')}.json")
    capsys.readouterr()
    assert main(["optimize", posterior_fit["fit"], *TARGET, "--objective", objective,
                 "--baseline", BASELINE, "--n-starts", "4", "-o", out]) == 0
    return json.loads(Path(out).read_text()), capsys.readouterr().err


@pytest.mark.slow
def test_cli_quantile_optimum_converges_and_is_risk_averse(posterior_fit, capsys):
    draws = load_draws(posterior_fit["npz"])
    src = draws.sources
    base = np.array([0.6, 0.1, 0.1, 0.1, 0.1])
    mq, err = _optimize_cli(posterior_fit, "quantile:0.9", capsys)
    assert mq["converged"] is True, mq["message"]
    assert "did not converge" not in err and "KKT" not in err, err
    assert "KKT residual" in mq["message"]
    mm, _ = _optimize_cli(posterior_fit, "mean", capsys)
    r_q = np.array([mq["mixture"][s] for s in src])
    r_m = np.array([mm["mixture"][s] for s in src])

    def q90(r):
        return float(np.quantile(np.asarray(draws.loss_draws(r)), 0.9))

    assert q90(r_q) <= q90(r_m)                            # risk-averse beats the mean optimum
    # the old objective (empirical quantile, kinked): optimise it directly for comparison
    with expected_warnings():
        old = optimize_mixture(lambda r: jnp.quantile(draws.loss_draws(r), 0.9), src,
                               baseline=base, n_starts=4)
    r_e = old.mixture
    f = risk_objective(draws, "quantile:0.9", base)
    assert float(f(r_q)) <= float(f(r_e)) + 1e-9          # r_q minimises the smoothed quantile
    # so Q_emp(r_q) <= Q_h(r_q) + |d(r_q)| <= Q_h(r_e) + |d(r_q)|
    #               <= Q_emp(r_e) + |d(r_e)| + |d(r_q)|
    # with d = Q_h - Q_emp the smoothing shift (h-order); in practice it is a fraction of h
    shift = abs(float(f(r_q)) - q90(r_q)) + abs(float(f(r_e)) - q90(r_e))
    assert q90(r_q) <= q90(r_e) + shift + 1e-12
    assert q90(r_q) <= q90(r_e) + 0.25 * f.bandwidth, (q90(r_q), q90(r_e), f.bandwidth)
