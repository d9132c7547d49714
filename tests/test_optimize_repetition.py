"""Tests of repetition-aware prediction (Muennighoff et al. 2023 effective data)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixlaws.fit import save_model
from mixlaws.cli import main
from mixlaws.optimize import constraints_from_dict, load_constraints
from mixlaws.errors import ConstraintError, MixlawsError, ScaleError
from mixlaws.export import load_mixture
from mixlaws.fit import NestedMixingLaw
from mixlaws.optimize import optimize_mixture
from mixlaws.optimize import R_STAR, effective_tokens, repetition_aware
from mixlaws.runs import read_runs
from mixlaws.simulate import SweepTruth

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
N, D = 1e9, 2e10


# --- the effective-data law ---------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(U=st.floats(1e3, 1e12), epochs=st.floats(0.0, 500.0), r_star=st.floats(0.5, 50.0))
def test_effective_tokens_bounds(U: float, epochs: float, r_star: float) -> None:
    Dj = epochs * U
    eff = float(effective_tokens(Dj, U, r_star))
    assert eff <= Dj * (1 + 1e-12) + 1e-9
    assert eff <= U * (1 + r_star) * (1 + 1e-12)
    if epochs <= 1.0:
        assert eff == pytest.approx(Dj, rel=1e-12, abs=1e-9)
    else:
        assert eff >= U * (1 - 1e-12)


def test_effective_tokens_formula_monotone_and_limit() -> None:
    U = 1e9
    Dj = np.linspace(0.0, 400 * U, 4001)
    eff = np.asarray(effective_tokens(Dj, U))
    assert np.all(np.diff(eff) > 0)
    R = 3.0  # 4 epochs: the paper's "almost as good as fresh" regime
    expect = U + U * R_STAR * (1 - math.exp(-R / R_STAR))
    assert float(effective_tokens((1 + R) * U, U)) == pytest.approx(expect, rel=1e-14)
    assert expect / ((1 + R) * U) > 0.9
    assert float(effective_tokens(1e6 * U, U)) == pytest.approx(U * (1 + R_STAR), rel=1e-12)
    # unknown availability (nan, inf) leaves tokens unchanged
    np.testing.assert_array_equal(np.asarray(effective_tokens([5e9, 7e9], [np.nan, np.inf])),
                                  [5e9, 7e9])
    # C1 at one epoch and finite gradients everywhere, also for unknown availability
    g = jax.vmap(jax.grad(lambda d, u: effective_tokens(d, u)), in_axes=(0, None))
    slopes = np.asarray(g(jnp.array([0.5 * U, U, 2 * U, 50 * U]), U))
    assert slopes[0] == 1.0 and slopes[1] == pytest.approx(1.0) and 0 < slopes[3] < slopes[2] < 1
    assert float(jax.grad(lambda d: effective_tokens(d, jnp.nan))(3.0)) == 1.0
    with pytest.raises(MixlawsError, match="r_star"):
        effective_tokens(1.0, 1.0, r_star=0.0)


# --- the wrapper on the fixture sweep ------------------------------------------------------------

@pytest.fixture(scope="module")
def model() -> NestedMixingLaw:
    return NestedMixingLaw(tie_beta="all").fit(read_runs(FIXTURES / "sweep.csv"))


@pytest.fixture(scope="module")
def truth() -> SweepTruth:
    return SweepTruth.from_dict(json.loads((FIXTURES / "sweep_truth.json").read_text()))


def _avail(model: NestedMixingLaw, **tokens: float) -> dict:
    return {"sources": {s: {"available_tokens": a, "max_epochs": 200} for s, a in tokens.items()}}


def test_no_repetition_is_the_plain_prediction(model: NestedMixingLaw) -> None:
    C = constraints_from_dict(_avail(model, web=1e12, code=1e12, papers=1e12), model.sources_)
    rep = repetition_aware(model, N, D, C)
    fit = model.target(N, D)
    r = np.random.default_rng(0).dirichlet(np.ones(5), size=20)
    np.testing.assert_allclose(np.asarray(rep.loss(r)), np.asarray(fit.loss(r)), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(rep.domain_losses(r)), np.asarray(fit.domain_losses(r)),
                               rtol=1e-13)
    re, rho = rep.effective(r)
    np.testing.assert_allclose(np.asarray(re), r, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(rho), 1.0)


def test_token_correction_matches_refit_and_truth(model: NestedMixingLaw, truth: SweepTruth) -> None:
    """The differentiable correction agrees with refitting the nested law at rho D*."""
    C = constraints_from_dict(_avail(model, papers=5e8, books=1e9), model.sources_)
    rep = repetition_aware(model, N, D, C)
    for r in ([0.2, 0.1, 0.1, 0.5, 0.1], [0.3, 0.1, 0.3, 0.2, 0.1]):
        re, rho = (np.asarray(x) for x in rep.effective(np.array(r)))
        assert 0.3 < rho < 0.95 and re[3] < r[3]
        refit = float(model.target(N, float(rho) * D).loss(jnp.asarray(re)))
        assert float(rep.loss(np.array(r))) == pytest.approx(refit, abs=2e-3)
        dl = np.asarray(rep.domain_losses(np.array(r)))
        assert float(dl.mean()) == pytest.approx(float(rep.loss(np.array(r))), rel=1e-12)
        true = float(truth.aggregate(re, N, float(rho) * D))
        assert float(rep.loss(np.array(r))) == pytest.approx(true, rel=5e-3)
        assert float(rep.loss(np.array(r))) > float(model.target(N, D).loss(jnp.asarray(r)))


def test_gradients_finite(model: NestedMixingLaw) -> None:
    C = constraints_from_dict(_avail(model, papers=5e8, code=2e9, web=4e9), model.sources_)
    rep = repetition_aware(model, N, D, C)
    pts = np.vstack([np.eye(5), np.full(5, 0.2), [0.2, 0.1, 0.2, 0.025, 0.475]])  # papers at 1 epoch
    G = np.asarray(jax.vmap(jax.grad(rep.loss))(jnp.asarray(pts)))
    J = np.asarray(jax.vmap(jax.jacfwd(rep.domain_losses))(jnp.asarray(pts)))
    assert np.all(np.isfinite(G)) and np.all(np.isfinite(J))


def test_optimiser_stops_over_repeating_a_small_good_source(model: NestedMixingLaw,
                                                            truth: SweepTruth) -> None:
    """papers is the best source; with 2e8 unique tokens the plain optimum repeats it ~60x."""
    C = constraints_from_dict(_avail(model, papers=2e8), model.sources_)
    rep = repetition_aware(model, N, D, C)
    plain = optimize_mixture(model.target(N, D).loss, model.sources_, constraints=C,
                             total_tokens=D, n_starts=6)
    aware = optimize_mixture(rep.loss, model.sources_, constraints=C, total_tokens=D, n_starts=6)
    assert plain.converged and aware.converged
    j = model.sources_.index("papers")
    assert plain.epochs[j] > 40 and aware.epochs[j] < 0.5 * plain.epochs[j]
    # judged by the true law at the effective mixture and tokens, the aware choice is better
    def true_loss(r: np.ndarray) -> float:
        re, rho = (np.asarray(x) for x in rep.effective(r))
        return float(truth.aggregate(re, N, float(rho) * D))
    assert true_loss(aware.mixture) < true_loss(plain.mixture) - 5e-3


def test_requires_availability_and_step_laws(model: NestedMixingLaw) -> None:
    with pytest.raises(ConstraintError, match="available_tokens"):
        repetition_aware(model, N, D, None)
    with pytest.raises(ConstraintError, match="available_tokens"):
        repetition_aware(model, N, D, constraints_from_dict({"sources": {"web": {"min": 0.1}}},
                                                            model.sources_))
    single = NestedMixingLaw().fit(read_runs(FIXTURES / "single_scale.csv"))
    C = constraints_from_dict(_avail(single, papers=1e8), single.sources_)
    with pytest.raises(ScaleError, match="step laws"):
        repetition_aware(single, 1e6, 1e9, C)


# --- CLI -----------------------------------------------------------------------------------------

def test_cli_flag(model: NestedMixingLaw, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fit = tmp_path / "fit.json"
    save_model(model, fit)
    base = ["optimize", str(fit), "--params", "1e9", "--tokens", "2e10", "--n-starts", "4"]
    assert main(base + ["--repetition-aware"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "available_tokens" in err and "constraints" in err
    cfile = str(FIXTURES / "constraints.yaml")
    bl = (FIXTURES / "baseline.txt").read_text().strip()
    outs = {}
    for flag in ([], ["--repetition-aware"]):
        out = tmp_path / f"mix{len(flag)}.json"
        assert main(base + ["--constraints", cfile, "--baseline", bl, "-o", str(out)] + flag) == 0
        outs[bool(flag)] = json.loads(out.read_text())
    assert outs[False]["repetition_aware"] is None
    rec = outs[True]["repetition_aware"]
    assert rec["r_star"] == R_STAR and 0 < rec["effective_token_ratio"] < 1
    assert outs[True]["sources"]["papers"]["epochs"] < outs[False]["sources"]["papers"]["epochs"]
    C = load_constraints(cfile, model.sources_)
    rep = repetition_aware(model, N, D, C)
    r = np.array([outs[True]["mixture"][s] for s in model.sources_])
    assert outs[True]["predicted_loss"] == pytest.approx(float(rep.loss(r)), rel=1e-12)
    weights = load_mixture(tmp_path / "mix1.json").weights
    assert weights == pytest.approx(outs[True]["mixture"], rel=1e-14, abs=1e-16)
    assert main(["export", str(tmp_path / "mix1.json"), "--format", "megatron",
                 "--paths", str(FIXTURES / "paths.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].endswith("data/wiki/wiki_text_document") and len(lines) == 5
