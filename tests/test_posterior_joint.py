"""The emcee posterior of the joint law L(r, N, D): collapsed likelihood, coverage, diagnostics."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixlaws.errors import MixlawsError
from mixlaws.fit import JointMixingLaw
from mixlaws.posterior._joint import (JointPosterior, _box, _data, _design, _log_prior,
                                     design_effect, joint_intervals, joint_log_prob,
                                     sample_joint_posterior, tempered_marginal)
from mixlaws.laws import sum_zero_basis
from mixlaws.errors import ChainWarning
from mixlaws.runs import validate_runs
from mixlaws.simulate import random_truth, sample_mixtures, simulate_sweep
from _expected import expected_warnings

SOURCES = ("web", "code", "books")
DOMAINS = ("web", "code")
TARGET = (1e9, 2e10)
N_REP = 4


def _sweep(seed: int):
    """A sweep drawn from the joint law (shared alpha, beta; 0.3 % checkpoint, 0.2 % run noise)."""
    truth = random_truth(SOURCES, DOMAINS, seed=seed)
    runs = validate_runs(simulate_sweep(truth, n_mixtures=8, seed=seed,
                                        checkpoints=(0.2, 0.4, 0.6, 0.8, 1.0)))
    with expected_warnings():
        model = JointMixingLaw().fit(runs)
    return truth, runs, model


@pytest.fixture(scope="module")
def replicates():
    out = []
    for seed in range(N_REP):
        truth, runs, model = _sweep(seed)
        post = sample_joint_posterior(model, runs, n_draws=400, seed=seed)
        out.append((truth, runs, model, post))
    return out


@pytest.mark.slow
@pytest.mark.statistical
def test_posterior_covers_the_truth(replicates):
    """90 % intervals of alpha, beta (per domain) and of the target-scale mean law."""
    hit_exp, hit_pred, n_exp, n_pred = 0, 0, 0, 0
    for truth, _, model, post in replicates:
        for name in ("alpha", "beta"):
            lo, hi = np.quantile(getattr(post, name), [0.05, 0.95], axis=0)
            val = getattr(truth, name)
            hit_exp += int(np.sum((lo <= val) & (val <= hi)))
            n_exp += lo.size
        test = sample_mixtures(3, len(SOURCES), seed=77)
        iv = joint_intervals(post, test, *TARGET, 0.9)
        true = truth.aggregate(test, *TARGET)
        hit_pred += int(np.sum((iv.lower <= true) & (true <= iv.upper)))
        n_pred += true.size
        # the posterior mean stays close to the best fit (relative 0.5 %)
        np.testing.assert_allclose(iv.loss, model.predict(test, *TARGET)["loss"], rtol=5e-3)
    assert hit_exp >= 0.75 * n_exp, (hit_exp, n_exp)
    assert hit_pred >= 0.75 * n_pred, (hit_pred, n_pred)


def test_draws_shapes_gauge_and_diagnostics(replicates):
    truth, _, model, post = replicates[0]
    S = post.n_draws
    assert isinstance(post, JointPosterior) and S == 400
    for name in ("c", "k", "A", "alpha", "B", "beta", "sigma"):
        assert getattr(post, name).shape == (S, 2), name
    assert post.t.shape == (S, 2, 3)
    np.testing.assert_allclose(post.t.sum(-1), 0.0, atol=1e-9)
    assert np.all(post.c > 0) and np.all(post.k > 0) and np.all(post.A > 0) and np.all(post.B > 0)
    assert np.all((post.alpha < 2) & (post.beta < 2))
    # run noise 0.2 % + checkpoint noise 0.3 % -> a relative scale of a few 1e-3
    assert np.all((np.median(post.sigma, 0) > 5e-4) & (np.median(post.sigma, 0) < 1e-2))
    assert np.all((post.temper > 0) & (post.temper <= 1)) and np.all(post.rho >= 0)
    for d in post.diagnostics:
        assert d.tau.shape == (5,) and np.all(d.tau > 0)
        assert d.ess >= S and 0.05 < d.acceptance < 0.95 and d.converged
        assert d.steps_per_tau == pytest.approx(d.n_steps / np.max(d.tau))
    assert np.all(post.weight_ess > S / 2)


def test_intervals_nest_and_new_runs_are_wider(replicates):
    _, _, model, post = replicates[1]
    r = sample_mixtures(5, len(SOURCES), seed=3)
    i50, i90 = joint_intervals(post, r, *TARGET, 0.5), joint_intervals(post, r, *TARGET, 0.9)
    assert np.all(i90.lower <= i50.lower) and np.all(i50.upper <= i90.upper)
    assert np.all((i90.lower < i90.loss) & (i90.loss < i90.upper))
    assert np.all(i90.new_upper - i90.new_lower > i90.upper - i90.lower)
    assert i90.domain_new_lower.shape == (5, 2)
    np.testing.assert_allclose(post.loss_draws(r, *TARGET).mean(0), i90.loss)
    with pytest.raises(MixlawsError):
        joint_intervals(post, r, *TARGET, 1.2)


def test_sampling_is_deterministic_and_warns_on_short_chains(replicates):
    _, runs, model, post = replicates[2]
    with pytest.warns(ChainWarning, match="shorter than 50 autocorrelation times"):
        a = sample_joint_posterior(model, runs, n_draws=100, seed=9, max_steps=60)
    assert not any(d.converged for d in a.diagnostics)
    assert all(d.n_steps == 60 for d in a.diagnostics)
    with expected_warnings():
        b = sample_joint_posterior(model, runs, n_draws=100, seed=9, max_steps=60)
        c = sample_joint_posterior(model, runs, n_draws=100, seed=10, max_steps=60)
        d = sample_joint_posterior(model, runs, n_draws=100, seed=9, max_steps=60, workers=1)
    for name in ("c", "k", "t", "A", "alpha", "B", "beta", "sigma"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        np.testing.assert_array_equal(getattr(a, name), getattr(d, name))   # 1 thread: same
    assert not np.array_equal(a.alpha, c.alpha)
    with pytest.raises(MixlawsError, match="temper"):
        sample_joint_posterior(model, runs, temper=1.5)


def test_tempered_marginal_matches_brute_force_integration():
    """Gaussian limit (nu -> inf): Laplace is exact, and so is the box for one constraint."""
    rng = np.random.default_rng(0)
    x = np.linspace(0.2, 1.5, 12)
    y = (2.0 + 0.7 * x) * (1 + 0.01 * rng.standard_normal(12))
    X = np.stack([np.ones_like(x), x], 1)
    ls, lam, nu = np.log(0.01), 0.3, 1e9
    s = 0.01
    for lower0 in (-np.inf, None):
        m0 = tempered_marginal(jnp.asarray(X), jnp.asarray(y), jnp.asarray(ls), jnp.asarray(lam),
                               jnp.array([-np.inf, -np.inf]), jnp.array([np.inf, np.inf]), nu)[1]
        cov = np.asarray(m0.cov) / lam
        lo = np.asarray(m0.mean)[0] + 0.3 * np.sqrt(cov[0, 0]) if lower0 is None else lower0
        lp, _ = tempered_marginal(jnp.asarray(X), jnp.asarray(y), jnp.asarray(ls),
                                  jnp.asarray(lam), jnp.array([lo, -np.inf]),
                                  jnp.array([np.inf, np.inf]), nu)
        sd = np.sqrt(np.diagonal(cov))
        g0 = np.linspace(max(lo, m0.mean[0] - 9 * sd[0]), m0.mean[0] + 9 * sd[0], 601)
        g1 = np.linspace(m0.mean[1] - 9 * sd[1], m0.mean[1] + 9 * sd[1], 601)
        A0, A1 = np.meshgrid(g0, g1, indexing="ij")
        pred = A0[..., None] + A1[..., None] * x
        z = (y - pred) / (y * s)
        ll = lam * np.sum(-0.5 * z * z - 0.5 * np.log(2 * np.pi) - np.log(y * s), -1)
        top = ll.max()
        brute = top + np.log(np.trapezoid(np.trapezoid(np.exp(ll - top), g1, axis=1), g0))
        assert float(lp) == pytest.approx(brute, abs=1e-4)


def test_fast_log_prob_equals_the_general_collapsed_marginal(replicates):
    _, runs, model, post = replicates[0]
    R, xN, xD, Y, _ = _data(model, runs)
    RH = jnp.asarray(R @ sum_zero_basis(3))
    args = (RH, jnp.asarray(xN), jnp.asarray(xD), jnp.asarray(Y[:, 1]), jnp.asarray(0.4))

    def general(th):
        ok, prior = _log_prior(th, 2)
        lp, _ = tempered_marginal(_design(th, *args[:3]), args[3], th[-1], args[4],
                                  *_box(args[3]))
        return lp + prior

    th = np.column_stack([post.t[:50, 1] @ sum_zero_basis(3), np.log(post.alpha[:50, 1]),
                          np.log(post.beta[:50, 1]), np.log(post.sigma[:50, 1])])
    th[:25, -1] += 0.7                              # away from the mode too
    fast = np.asarray(jax.vmap(lambda t: joint_log_prob(t, *args))(jnp.asarray(th)))
    ref = np.asarray(jax.vmap(general)(jnp.asarray(th)))
    np.testing.assert_allclose(fast, ref, rtol=1e-8)
    assert np.all(np.isfinite(fast))


def test_design_effect_of_equicorrelated_runs():
    rng = np.random.default_rng(1)
    n_runs, m, icc = 400, 10, 0.5
    e = (np.sqrt(icc) * rng.standard_normal((n_runs, 1, 2))
         + np.sqrt(1 - icc) * rng.standard_normal((n_runs, m, 2))).reshape(-1, 2) * 1e-3
    lam, rho = design_effect(e, np.repeat(np.arange(n_runs), m))
    np.testing.assert_allclose(rho, icc, atol=0.05)
    np.testing.assert_allclose(lam, 1 / (1 + (m - 1) * rho))
    lam0, rho0 = design_effect(rng.standard_normal((400, 1)), np.repeat(np.arange(40), 10))
    assert rho0[0] < 0.1 and lam0[0] > 0.5
