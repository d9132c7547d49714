"""Tests of posterior sampling, propagation, intervals, risk objectives and the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from mixlaws.cli import main
from mixlaws.errors import MixlawsError
from mixlaws.fit import NestedMixingLaw
from mixlaws.errors import ChainWarning
from mixlaws.posterior import run_ensemble, size_log_marginal
from mixlaws.optimize import (compare_to_baseline, parse_objective, risk_objective,
                          silverman_bandwidth, smoothed_quantile)
from mixlaws.runs import validate_runs
from mixlaws.simulate import random_truth, simulate_sweep
from mixlaws.posterior import (bootstrap_posterior, load_draws, predict_intervals,
                                 sample_posterior, save_draws)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import calibration  # noqa: E402
from _expected import expected_warnings

TARGET = calibration.TARGET


@pytest.fixture(scope="module")
def small():
    truth = random_truth(calibration.SOURCES, calibration.DOMAINS, seed=3)
    runs = validate_runs(simulate_sweep(truth, n_mixtures=10, seed=3,
                                        checkpoints=(0.2, 0.4, 0.6, 0.8, 1.0)))
    with expected_warnings():
        model = NestedMixingLaw(tie_beta="all").fit(runs)
        draws = sample_posterior(model, runs, *TARGET, n_draws=500, seed=1)
    return truth, runs, model, draws


@pytest.mark.slow
@pytest.mark.statistical
def test_calibration_small():
    """Coverage of the target-scale mean law over 8 replicate sweeps (32 intervals)."""
    res = calibration.study(8, n_draws=400)
    assert 0.75 <= res["cover90"] <= 1.0, res
    assert 0.30 <= res["cover50"] <= 0.75, res
    assert res["rel_width90"] < 0.05, res


@pytest.mark.slow
def test_draws_are_reproducible_and_shaped(small):
    truth, runs, model, draws = small
    assert draws.c.shape == (500, 2) and draws.t.shape == (500, 2, 3)
    np.testing.assert_allclose(draws.t.sum(-1), 0.0, atol=1e-9)      # gauge kept
    with expected_warnings():
        again = sample_posterior(model, runs, *TARGET, n_draws=500, seed=1)
    np.testing.assert_array_equal(again.c, draws.c)
    names = [d["name"] for d in draws.diagnostics]
    assert names[0].startswith("step stage") and names[1].startswith("size stage")
    assert all(n.startswith("mixing stage, domain") for n in names[2:]) and len(names) == 4
    d = draws.diagnostics[1]
    assert d["ess"] > 0 and 0 < d["acceptance"] < 1
    assert d["steps_per_tau"] == pytest.approx(d["n_steps"] / max(d["tau"]))


def test_intervals_nest_and_contain_mean(small):
    _, _, model, draws = small
    iv50 = predict_intervals(draws, model.mixtures_, 0.5)
    iv90 = predict_intervals(draws, model.mixtures_, 0.9)
    assert np.all(iv90.lower <= iv50.lower) and np.all(iv50.upper <= iv90.upper)
    # run-to-run noise widens the interval: on average over the mixtures strictly, and for each
    # one up to the Monte Carlo error of two quantiles of 500 draws (a few per cent)
    new, mean = iv90.new_upper - iv90.new_lower, iv90.upper - iv90.lower
    assert new.mean() > mean.mean() and np.all(new >= 0.95 * mean)
    assert np.all((iv90.lower < iv90.loss) & (iv90.loss < iv90.upper))
    assert iv90.domain_lower.shape == (len(model.mixtures_), 2)
    with pytest.raises(MixlawsError):
        predict_intervals(draws, model.mixtures_, 1.5)


def test_save_load_roundtrip(small, tmp_path):
    draws = small[3]
    save_draws(draws, tmp_path / "p.npz")
    back = load_draws(tmp_path / "p.npz")
    for a in ("c", "k", "t", "run_noise", "weights"):
        np.testing.assert_array_equal(getattr(back, a), getattr(draws, a))
    assert back.diagnostics == draws.diagnostics and back.method == "mcmc"


def test_short_chain_warns_and_long_chain_does_not():
    lp = lambda x: -0.5 * jnp.sum(x * x, axis=1)  # noqa: E731
    x0 = np.random.default_rng(0).normal(size=(16, 2)) * 0.1
    with pytest.warns(ChainWarning, match="autocorrelation times"):
        ch = run_ensemble(lp, x0, name="short", seed=0, min_steps=60, max_steps=60)
    assert not ch.diagnostics.converged
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChainWarning)
        ch = run_ensemble(lp, x0, name="long", seed=0, min_steps=500, max_steps=6000)
    assert ch.diagnostics.converged and ch.diagnostics.n_steps >= 50 * max(ch.diagnostics.tau)
    s = ch.flat()
    assert abs(s.mean()) < 0.1 and abs(s.std() - 1) < 0.1


def test_size_marginal_peaks_near_true_alpha():
    rng = np.random.default_rng(0)
    N = np.array([2e7, 5e7, 1e8, 2e8])
    xl = np.log(N) - np.log(N).mean()
    E, A = rng.uniform(1.5, 2.5, 30), rng.uniform(0.5, 1.0, 30)
    y = E[:, None] + A[:, None] * np.exp(-0.3 * xl)[None] * (1 + 1e-4 * rng.standard_normal((30, 4)))
    args = [jnp.asarray(a) for a in (np.broadcast_to(xl, y.shape), y, np.zeros_like(y),
                                     np.ones_like(y))] + [jnp.zeros(30, int)]
    grid = np.linspace(0.1, 0.6, 51)
    lp = [float(size_log_marginal(jnp.array([np.log(a), np.log(1e-4)]), *args)) for a in grid]
    assert abs(grid[int(np.argmax(lp))] - 0.3) <= 0.03
    assert float(size_log_marginal(jnp.array([np.log(2.5), -9.0]), *args)) == -np.inf


def test_risk_objectives(small):
    _, _, model, draws = small
    r = model.mixtures_[1]
    base = model.mixtures_[0]
    assert float(risk_objective(draws, "mean")(r)) == pytest.approx(float(np.mean(draws.loss_draws(r))))
    qf = risk_objective(draws, "quantile:0.9")
    q = float(qf(r))
    # kernel-smoothed quantile with Silverman's h at the uniform mixture (no baseline given);
    # it differs from the empirical one by the smoothing bias h^2 |f'/f| / 2 (~0.2 h for
    # Gaussian draws at S = 500; <= h/2 while the density changes by < e over one h) plus
    # Monte Carlo noise of a fraction of h: tolerance h (observed <= 0.3 h on these draws)
    h = silverman_bandwidth(draws.loss_draws(np.full(3, 1 / 3)))
    assert qf.bandwidth == pytest.approx(h)
    assert q == pytest.approx(float(smoothed_quantile(draws.loss_draws(r), 0.9, h)), abs=1e-12)
    assert abs(q - float(np.quantile(draws.loss_draws(r), 0.9))) <= h
    pb = float(risk_objective(draws, "p-better", base)(r))
    cmp = compare_to_baseline(draws, r, base)
    assert -1 <= pb <= 0 and abs(-pb - cmp["p_better"]) < 0.1
    assert cmp["gain_lower"] <= cmp["gain"] <= cmp["gain_upper"]
    for bad in ("median", "quantile:1.5", "quantile:x"):
        with pytest.raises(MixlawsError):
            parse_objective(bad)
    with pytest.raises(MixlawsError, match="baseline"):
        risk_objective(draws, "p-better")


@pytest.mark.slow
def test_bootstrap_over_runs(small):
    truth, runs, model, _ = small
    with expected_warnings():
        b = bootstrap_posterior(model, runs, *TARGET, n_boot=3, seed=0)
    assert b.method == "bootstrap" and 2 <= b.n_draws <= 3
    iv = predict_intervals(b, model.mixtures_[:3], 0.9)
    assert np.all(iv.upper > iv.lower)


@pytest.mark.slow
def test_cli_sample_predict_optimize(fixture_fit, fixture_posterior, tmp_path, capsys):
    """`predict --level` asks for `mixlaws sample` first; after it (conftest's
    ``fixture_posterior``: `mixlaws sample FIT --draws 300`) predict and optimize use the draws
    the fit names."""
    assert main(["predict", str(fixture_fit), "--params", "1e9", "--tokens", "2e10",
                 "--mixture", "web=0.6,code=0.1,books=0.1,papers=0.1,wiki=0.1",
                 "--level", "0.9"]) == 2
    assert "mixlaws sample" in capsys.readouterr().err
    fit = fixture_posterior["fit"]
    assert json.loads(Path(fit).read_text())["posterior"]["file"] == "fit.posterior.npz"
    assert main(["predict", fit, "--params", "1e9", "--tokens", "2e10", "--per-domain",
                 "--mixture", "web=0.6,code=0.1,books=0.1,papers=0.1,wiki=0.1",
                 "--level", "0.9"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["lower"] < row["loss"] < row["upper"]
    assert row["new_run_interval"][0] < row["upper"] and "web" in row["domains"]
    out = str(tmp_path / "mix.json")
    assert main(["optimize", fit, "--params", "1e9", "--tokens", "2e10", "--objective",
                 "quantile:0.9", "--baseline", "web=0.6,code=0.1,books=0.1,papers=0.1,wiki=0.1",
                 "--n-starts", "2", "-o", out]) == 0
    u = json.loads(Path(out).read_text())["uncertainty"]
    assert 0 <= u["versus_baseline"]["p_better"] <= 1
    assert main(["predict", fit, "--params", "2e9", "--tokens", "2e10", "--level", "0.9",
                 "--mixture", "web=0.6,code=0.1,books=0.1,papers=0.1,wiki=0.1"]) == 2


@pytest.mark.slow
def test_gn_mixing_agrees_with_exact_refit(small):
    """The fast batched Gauss-Newton refit (default) matches the bounded-LM refit."""
    _, runs, model, draws = small
    with expected_warnings():
        exact = sample_posterior(model, runs, *TARGET, n_draws=500, seed=1, mixing="refit")
    r = model.mixtures_[:3]
    a, b = np.asarray(draws.loss_draws(r)), np.asarray(exact.loss_draws(r))
    qa, qb = np.quantile(a, [0.05, 0.5, 0.95], 0), np.quantile(b, [0.05, 0.5, 0.95], 0)
    width = qb[2] - qb[0]
    assert np.all(np.abs(qa[1] - qb[1]) < 0.1 * width), (qa, qb)       # same centre
    assert np.all((qa[2] - qa[0] > 0.7 * width) & (qa[2] - qa[0] < 1.5 * width)), (qa, qb)
    with pytest.raises(MixlawsError, match="mixing must be"):
        sample_posterior(model, runs, *TARGET, n_draws=10, mixing="nope")


def test_step_covariance_and_diagnostics(small):
    from mixlaws.posterior import step_predictive, step_predictive_cov
    _, runs, model, draws = small
    C = step_predictive_cov(model, runs, TARGET[1])
    s2 = step_predictive(model, runs, TARGET[1])
    np.testing.assert_allclose(np.diagonal(C, axis1=1, axis2=2), s2)
    np.testing.assert_allclose(C, np.swapaxes(C, 1, 2), atol=1e-15)
    assert np.all(np.linalg.eigvalsh(C) > -1e-12)
    d = draws.diagnostics[0]
    assert d["unphysical"] >= 0 and d["ess"] >= 500          # chain ESS ≥ n_draws asked


def test_size_marginal_prior_is_parametrisation_invariant():
    """The group-parameter prior cancels the alpha-dependent Jacobian of (E', A'') vs (E, A)."""
    rng = np.random.default_rng(1)
    N = np.array([2e7, 5e7, 1e8, 2e8])
    xl = np.log(N) - np.log(N).mean()
    y = 2.0 + 0.8 * np.exp(-0.3 * xl)[None] * (1 + 1e-3 * rng.standard_normal((5, 4)))
    args = [jnp.asarray(a) for a in (np.broadcast_to(xl, y.shape), y, np.zeros_like(y),
                                     np.ones_like(y))] + [jnp.zeros(5, int)]
    # with the (E, A) design X = [1, e^{-alpha x}] the GLS log-marginal with the same
    # det(X^T D^-2 X)^{1/2} prior must differ from ours by a constant in alpha
    def ref(alpha, tau):
        x = np.exp(-alpha * xl)
        X = np.c_[np.ones(4), x]
        out = 0.0
        for g in range(5):
            v = y[g] ** 2 * tau**2
            M = X.T @ (X / v[:, None])
            b = X.T @ (y[g] / v)
            rss = (y[g] ** 2 / v).sum() - b @ np.linalg.solve(M, b)
            out += (-0.5 * np.log(v).sum() - 0.5 * np.linalg.slogdet(M)[1] - 0.5 * rss
                    + 0.5 * np.linalg.slogdet(X.T @ (X / y[g][:, None] ** 2))[1])
        return out + np.log(alpha)
    diffs = [float(size_log_marginal(jnp.array([np.log(a), np.log(1e-3)]), *args, invariant=True,
                                         profile=False))
             - ref(a, 1e-3)
             for a in (0.1, 0.3, 0.9)]
    assert np.ptp(diffs) < 1e-6, diffs
