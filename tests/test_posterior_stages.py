"""emcee posteriors of the step and mixing laws on data with known truth."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mixlaws.laws import sum_zero_basis
from mixlaws.posterior import sample_mixing_stage
from mixlaws.errors import ChainWarning
from mixlaws.posterior import sample_step_stage

BETA, E, B = 0.35, np.array([2.0, 2.6]), np.array([40.0, 55.0])


def _runs(seed: int, n_runs: int = 6, noise: float = 2e-3):
    rng = np.random.default_rng(seed)
    out = []
    for g in range(n_runs):
        t = np.geomspace(1e8, 1e9, 10) * (1 + g)
        L = (E + B * t[:, None] ** -BETA) * (1 + noise * rng.standard_normal((10, 2)))
        out.append((t, L))
    return out


@pytest.mark.slow
@pytest.mark.statistical
def test_step_posterior_covers_the_truth_and_is_deterministic():
    ck = _runs(0)
    Dstar = 3e10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChainWarning)
        sp = sample_step_stage([f"r{g}" for g in range(6)], ck, np.full(6, 0.3), "run", Dstar,
                               seed=5)
        again = sample_step_stage([f"r{g}" for g in range(6)], ck, np.full(6, 0.3), "run", Dstar,
                                  seed=5)
    np.testing.assert_array_equal(sp.cov, again.cov)
    truth = E + B * Dstar ** -BETA
    sd = np.sqrt(np.diagonal(sp.cov, axis1=1, axis2=2))
    z = (np.log(sp.mean) - np.log(truth)) / sd
    assert np.mean(np.abs(z) < 1.645) >= 0.7, z                 # 90 % intervals, 12 of them
    assert np.all((sd > 1e-4) & (sd < 0.05))
    # learned checkpoint noise (a t_4 scale: below the Gaussian sd it stands in for)
    assert 1e-3 < np.median(sp.sigma) < 2.5e-3
    d = sp.diagnostics
    assert d.name.startswith("step stage: 6 chain(s)") and d.ess > 0 and 0.2 < d.acceptance < 0.9


def test_step_posterior_shared_exponent():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChainWarning)
        sp = sample_step_stage([f"r{g}" for g in range(6)], _runs(1), np.full(6, 0.3), "all",
                               3e10, seed=2)
    assert "shared by all runs" in sp.diagnostics.name
    assert np.all(np.isfinite(sp.cov))
    np.testing.assert_allclose(sp.mean, np.broadcast_to(E + B * 3e10 ** -BETA, (6, 2)), rtol=0.01)


def test_short_step_chains_warn():
    with pytest.warns(ChainWarning, match="shorter than 50"):
        sample_step_stage(["a", "b"], _runs(3, 2), np.full(2, 0.3), "run", 3e10, seed=0,
                          max_steps=300)


def _mixing_replicate(seed: int, S: int = 800):
    """Stage data with a known mixing law, and upstream draws with a known covariance."""
    rng = np.random.default_rng(seed)
    M, nd, n = 3, 2, 14
    H = sum_zero_basis(M)
    R = rng.dirichlet(np.ones(M), n)
    c, k = np.array([2.0, 1.5]), np.array([0.8, 1.2])
    t = np.array([[-1.0, 0.4, 0.6], [0.5, -1.5, 1.0]])
    law = lambda r: c + k * np.exp(r @ t.T)                          # noqa: E731
    # upstream relative errors: a common mode (shared size exponent) + independent parts
    common = 0.01 * rng.standard_normal((S + 1, 1, 1))
    own = 0.003 * rng.standard_normal((S + 1, n, nd))
    dev = common + own
    y = law(R) * np.exp(dev[0])                                      # the observed stage data
    dlog = dev[1:] - dev[0]                                          # draws of truth - data
    th = np.c_[c, np.log(k), t @ H]
    return R, H, y, dlog, th, law


@pytest.mark.slow
@pytest.mark.statistical
def test_mixing_posterior_intervals_cover_the_truth():
    cover, widths = [], []
    for seed in range(6):
        R, H, y, dlog, th, law = _mixing_replicate(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ChainWarning)
            mp = sample_mixing_stage(R @ H, y, dlog, th, seed=seed, labels=("a", "b"),
                                     max_steps=4000, min_ess=400)
        test = np.array([[1 / 3, 1 / 3, 1 / 3], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
        tt = mp.theta[..., 2:] @ H.T                                 # (S, nd, M)
        pred = mp.theta[:, None, :, 0] + np.exp(mp.theta[:, None, :, 1]) * np.exp(
            np.einsum("mj,sdj->smd", test, tt))
        lo, hi = np.quantile(pred, [0.05, 0.95], axis=0)
        true = law(test)
        cover.append((lo <= true) & (true <= hi))
        widths.append(np.median((hi - lo) / true))
    assert 0.75 <= np.mean(cover) <= 1.0, np.mean(cover)
    assert 0.01 < np.median(widths) < 0.1                            # ≈ ±1.645 x 1 % common mode


def test_mixing_posterior_keeps_the_cross_domain_coupling():
    R, H, y, dlog, th, _ = _mixing_replicate(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChainWarning)
        mp = sample_mixing_stage(R @ H, y, dlog, th, seed=0, labels=("a", "b"), max_steps=4000,
                                 min_ess=400)
    r = np.array([1 / 3, 1 / 3, 1 / 3])
    dom = mp.theta[..., 0] + np.exp(mp.theta[..., 1] + mp.theta[..., 2:] @ (H.T @ r))
    # the 1 % common-mode upstream error moves both domains together
    assert np.corrcoef(dom.T)[0, 1] > 0.5
    assert mp.unphysical == 0 and len(mp.chains) == 2
