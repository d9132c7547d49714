"""Collapsed likelihoods and the block stretch move: exactness against brute force."""

from __future__ import annotations

import emcee
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from mixlaws.posterior import CHAIN_BYTES, run_blocks
from mixlaws.posterior import (gaussian_marginal, log_box_probability, student_marginal,
                               student_marginal_line)


def _line_data(seed: int, n: int = 8):
    rng = np.random.default_rng(seed)
    x = np.exp(-0.4 * rng.normal(size=n))
    y = 3.0 + 0.5 * x + 0.01 * rng.standard_normal(n)
    return x, y, np.stack([np.ones(n), x], 1)


def test_gaussian_marginal_matches_numerical_integral():
    x, y, X = _line_data(0, 6)
    C = 1e-5 * (0.5 * np.eye(6) + 0.5)                    # correlated measurement errors
    lam, Q = np.linalg.eigh(C)
    sigma = 2e-3
    m = gaussian_marginal(jnp.asarray(X), jnp.asarray(y), jnp.asarray(Q), jnp.asarray(lam),
                          jnp.log(sigma), jnp.ones(6))
    Sigma = np.diag(y) @ (C + sigma**2 * np.eye(6)) @ np.diag(y)
    mvn = stats.multivariate_normal(cov=Sigma)
    mean, sd = np.asarray(m.mean), np.sqrt(np.diag(np.asarray(m.cov)))
    f = lambda a1, a0: mvn.pdf(y - X @ np.array([a0, a1]))  # noqa: E731
    val, _ = integrate.dblquad(f, mean[0] - 8 * sd[0], mean[0] + 8 * sd[0],
                               mean[1] - 8 * sd[1], mean[1] + 8 * sd[1], epsabs=0, epsrel=1e-7)
    assert float(m.log_p) == pytest.approx(np.log(val), abs=1e-5)
    # the gain reproduces the GLS fit of perturbed data
    e = 1e-3 * np.arange(6)
    m2 = gaussian_marginal(jnp.asarray(X), jnp.asarray(y), jnp.asarray(Q), jnp.asarray(lam),
                           jnp.log(sigma), jnp.ones(6))
    W = np.linalg.inv(Sigma)
    gls = np.linalg.solve(X.T @ W @ X, X.T @ W @ (y + e))
    np.testing.assert_allclose(np.asarray(m2.mean) + np.asarray(m2.gain) @ e, gls, rtol=1e-9)


def test_student_marginal_tends_to_gaussian_and_line_form_agrees():
    x, y, X = _line_data(1)
    args = (jnp.asarray(y), jnp.full(8, 1e-6), jnp.log(3e-3), jnp.ones(8))
    g = gaussian_marginal(jnp.asarray(X), jnp.asarray(y), jnp.eye(8), jnp.full(8, 1e-6),
                          jnp.log(3e-3), jnp.ones(8))
    t = student_marginal(jnp.asarray(X), *args, nu=1e9)
    assert float(t.log_p) == pytest.approx(float(g.log_p), abs=1e-4)   # gammaln at nu = 1e9
    np.testing.assert_allclose(np.asarray(t.mean), np.asarray(g.mean), rtol=1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), outlier=st.floats(0.0, 0.3), n_masked=st.integers(0, 3))
def test_line_form_equals_general_form(seed, outlier, n_masked):
    x, y, X = _line_data(seed, 10)
    y = y.copy()
    y[2] += outlier
    w = np.ones(10)
    w[10 - n_masked:] = 0.0
    a = student_marginal(jnp.asarray(X), jnp.asarray(y), jnp.zeros(10), jnp.log(3e-3),
                         jnp.asarray(w))
    b = student_marginal_line(jnp.asarray(x), jnp.asarray(y), jnp.zeros(10), jnp.log(3e-3),
                              jnp.asarray(w))
    for f in a._fields:
        np.testing.assert_allclose(np.asarray(getattr(b, f)), np.asarray(getattr(a, f)),
                                   rtol=1e-7, atol=1e-10)


def test_student_fit_resists_a_spike():
    x, y, X = _line_data(2, 12)
    y_spiked = y.copy()
    y_spiked[5] += 0.3                                     # a 10 % checkpoint spike
    t = student_marginal_line(jnp.asarray(x), jnp.asarray(y_spiked), jnp.zeros(12),
                              jnp.log(3e-3), jnp.ones(12))
    clean = np.linalg.lstsq(X, y, rcond=None)[0]
    ls = np.linalg.lstsq(X, y_spiked, rcond=None)[0]
    assert np.abs(np.asarray(t.mean) - clean).max() < 0.2 * np.abs(ls - clean).max()


def test_log_box_probability():
    mean, cov = jnp.array([0.5, -1.0]), jnp.diag(jnp.array([0.04, 1.0]))
    got = float(log_box_probability(mean, cov, jnp.array([0.0, 0.0]), jnp.array([1.0, jnp.inf])))
    want = np.log((stats.norm.cdf(2.5) - stats.norm.cdf(-2.5)) * stats.norm.sf(1.0))
    assert got == pytest.approx(want, rel=1e-10)
    far = float(log_box_probability(jnp.array([-40.0]), jnp.eye(1), jnp.array([0.0]),
                                    jnp.array([1.0])))
    assert np.isfinite(far) and far == pytest.approx(stats.norm.logsf(40.0), rel=1e-3)


@pytest.mark.parametrize("bound", [None, 2.0, 0.5])
def test_block_stretch_move_samples_each_block_like_emcee(bound):
    """Five independent 2-D Gaussians sampled in one emcee run: each block has the right mean
    and sd, and the same autocorrelation time as emcee's own stretch move on that block. With a
    memory bound of ``bound`` blocks' chains, the blocks are sampled in groups (2.0: three emcee
    runs; 0.5: five, and the kept samples thinned) and every block still passes, under its
    own name."""
    mu = np.array([[0.0, 1.0], [5.0, -2.0], [1e-3, 2e-3], [-3.0, 3.0], [10.0, 0.0]])
    sd = np.array([[1.0, 0.1], [2.0, 2.0], [1e-4, 1e-3], [0.5, 5.0], [3.0, 0.3]])
    rho = 0.9

    def lp_block(X, idx=np.arange(5)):                    # (n, R, 2) -> (n, R)
        z = (np.asarray(X) - mu[idx]) / sd[idx]
        return -0.5 * (z[..., 0]**2 - 2 * rho * z[..., 0] * z[..., 1] + z[..., 1]**2) / (1 - rho**2)

    def lp_for(idx):
        return lambda X: lp_block(X, idx)
    rng = np.random.default_rng(0)
    x0 = mu + 0.1 * sd * rng.standard_normal((16, 5, 2))
    per_block = 2 * 4000 * 16 * 2 * 8                    # bytes of one block's chain, with its copy
    chains = run_blocks(lp_for, x0, names=[str(i) for i in range(5)], seed=3, min_steps=2000,
                        max_steps=4000, settle=0.0,
                        max_bytes=CHAIN_BYTES if bound is None else bound * per_block)
    assert [c.diagnostics.name for c in chains] == [str(i) for i in range(5)]
    thinned = [c.samples.shape[0] < c.diagnostics.n_steps - c.diagnostics.burn for c in chains]
    assert all(thinned) if bound == 0.5 else not any(thinned)
    for b, ch in enumerate(chains):
        s = ch.flat()
        assert ch.diagnostics.converged and ch.diagnostics.ess > 500
        np.testing.assert_allclose(s.mean(0), mu[b], atol=0.15 * sd[b].max())
        np.testing.assert_allclose(s.std(0), sd[b], rtol=0.15)
        c = np.corrcoef(s.T)[0, 1]
        assert c == pytest.approx(rho, abs=0.05)
    # emcee's own stretch move on block 1 mixes at the same rate (tau within a factor 1.6)
    sampler = emcee.EnsembleSampler(16, 2, lambda X: lp_block(np.repeat(X[:, None], 5, 1))[:, 1],
                                    vectorize=True)
    sampler.random_state = np.random.RandomState(1).get_state()
    sampler.run_mcmc(x0[:, 1], 4000, progress=False)
    tau_emcee = emcee.autocorr.integrated_time(sampler.get_chain()[800:], quiet=True).max()
    tau_block = chains[1].diagnostics.tau.max()
    assert 1 / 1.6 < tau_block / tau_emcee < 1.6
