"""``--law auto``: stacking weights, the averaged predictive distribution, artifact and CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import norm

from mixlaws.backtest import AveragedMixingLaw, stacking_weights
from mixlaws.cli import main
from mixlaws.errors import MixlawsError
from mixlaws.fit import FAMILIES, load_model, model_from_dict
from mixlaws.runs import validate_runs
from mixlaws.simulate import random_truth, simulate_sweep

from _expected import expected_warnings

SOURCES = ("web", "code", "books")
DOMAINS = ("web", "code")


def test_stacking_prefers_the_family_that_predicts_better() -> None:
    rng = np.random.default_rng(0)
    e = rng.normal(0, 0.01, 200)                        # observed errors
    good = norm.logpdf(e, 0.0, 0.01)
    bad = norm.logpdf(e, 0.03, 0.01)                    # biased family
    w = stacking_weights(np.column_stack([good, bad]), np.ones(200))
    assert w.sum() == pytest.approx(1.0) and w[0] > 0.95
    wb = stacking_weights(np.column_stack([good, bad]), np.ones(200), "pseudo-bma")
    assert wb[0] > 0.99


def test_stacking_mixes_families_that_are_wrong_in_different_places() -> None:
    e = np.r_[np.full(50, 0.02), np.full(50, -0.02)]
    a = norm.logpdf(e, 0.02, 0.005)                     # right on the first half only
    b = norm.logpdf(e, -0.02, 0.005)                    # right on the second half only
    w = stacking_weights(np.column_stack([a, b]), np.ones(100))
    np.testing.assert_allclose(w, [0.5, 0.5], atol=1e-6)


def test_stacking_prior_keeps_weight_on_a_family_that_loses_few_units() -> None:
    rng = np.random.default_rng(1)
    e = rng.normal(0, 0.01, 6)                          # six backtest units
    good = norm.logpdf(e, 0.0, 0.01)
    bad = norm.logpdf(e, 0.2, 0.01)                     # explains none of them
    lp = np.column_stack([good, bad])
    np.testing.assert_allclose(stacking_weights(lp, np.ones(6), concentration=1.0), [1, 0],
                               atol=1e-9)
    np.testing.assert_allclose(stacking_weights(lp, np.ones(6)), [7 / 8, 1 / 8], rtol=1e-6)
    # many units outweigh the prior
    e = rng.normal(0, 0.01, 600)
    lp = np.column_stack([norm.logpdf(e, 0.0, 0.01), norm.logpdf(e, 0.2, 0.01)])
    assert stacking_weights(lp, np.ones(600))[0] > 0.998
    with pytest.raises(MixlawsError, match="concentration"):
        stacking_weights(lp, np.ones(600), concentration=0.5)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), K=st.integers(2, 4), seed=st.integers(0, 2**16),
       a=st.floats(1.0, 5.0))
def test_stacking_weights_are_on_the_simplex_and_floored_by_the_prior(n, K, seed, a) -> None:
    rng = np.random.default_rng(seed)
    log_p = rng.normal(0.0, 5.0, (n, K))
    c = rng.uniform(0.1, 1.0, n)
    w = stacking_weights(log_p, c, concentration=a)
    assert w.shape == (K,) and np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
    # every family keeps at least its pseudo-units' share, whatever the densities
    assert np.all(w >= (a - 1) / (c.sum() + K * (a - 1)) - 1e-12)


def test_auto_is_a_registered_family() -> None:
    assert FAMILIES["auto"].estimator is AveragedMixingLaw


@pytest.fixture(scope="module")
def sweep():
    truth = random_truth(SOURCES, DOMAINS, seed=4)
    df = simulate_sweep(truth, n_mixtures=7, sizes=(2e7, 5e7, 1e8), checkpoints=(0.2, 0.4, 0.6,
                        0.8, 1.0), seed=1)
    return validate_runs(df)


@pytest.fixture(scope="module")
def averaged(sweep):
    law = AveragedMixingLaw(families=("nested-tied", "joint"), folds=("largest-size", "mixtures"),
                            n_mixture_folds=3)
    with expected_warnings():
        return law.fit(sweep)


@pytest.mark.slow
def test_averaged_prediction_and_intervals(averaged) -> None:
    w = np.array(list(averaged.law_weights_.values()))
    assert w.sum() == pytest.approx(1.0) and np.all(w >= 0)
    at = averaged.target(1e9, 2e10)
    assert at.u > 0
    r = averaged.mixtures_
    loss = at.predict(r)
    per = at.per_law(r)
    lo_f = np.minimum(*per.values()) * np.exp(at.bias)
    hi_f = np.maximum(*per.values()) * np.exp(at.bias)
    assert np.all(loss >= lo_f - 1e-12) and np.all(loss <= hi_f + 1e-12)   # a weighted mean
    lo, hi = at.interval(r, 0.9)
    assert np.all(lo < loss) and np.all(loss < hi)
    mlo, mhi = at.interval(r, 0.9, kind="mean")
    assert np.all(mhi - mlo <= hi - lo + 1e-12)          # the law's interval drops run noise
    lo5, hi5 = at.interval(r, 0.5)
    assert np.all(hi5 - lo5 < hi - lo)
    # further out in size the interval is wider (the discrepancy grows with distance)
    far = averaged.target(1e10, 2e11)
    flo, fhi = far.interval(r, 0.9)
    assert np.all((fhi - flo) / far.predict(r) > (hi - lo) / loss)


@pytest.mark.slow
def test_averaged_artifact_round_trips_exactly(averaged) -> None:
    back = model_from_dict(json.loads(json.dumps(averaged.to_dict())))
    assert back.law_weights_ == averaged.law_weights_
    a, b = averaged.target(1e9, 2e10), back.target(1e9, 2e10)
    r = averaged.mixtures_
    np.testing.assert_array_equal(a.predict(r), b.predict(r))
    np.testing.assert_array_equal(a.interval(r)[1], b.interval(r)[1])


@pytest.mark.slow
def test_cli_fit_auto_then_predict_per_law(averaged, sweep, tmp_path, capsys) -> None:
    fit = tmp_path / "fit.json"
    averaged.save(fit)
    assert isinstance(load_model(fit), AveragedMixingLaw)
    out = tmp_path / "pred.json"
    code = main(["predict", str(fit), "--params", "1e9", "--tokens", "2e10", "--mixture",
                 "web=0.5,code=0.3,books=0.2", "--per-law", "--level", "0.8", "-o", str(out)])
    assert code == 0
    row = json.loads(out.read_text())[0]
    assert row["estimate"] == "stacked" and row["level"] == 0.8
    assert row["lower"] < row["loss"] < row["upper"]
    assert set(row["per_law"]) == {"nested-tied", "joint"}
    assert sum(v["weight"] for v in row["per_law"].values()) == pytest.approx(1.0)


@pytest.mark.slow
def test_structural_comparison_with_a_baseline(averaged) -> None:
    at = averaged.target(1e9, 2e10)
    r, b = averaged.mixtures_[0], averaged.mixtures_[1]
    same = at.compare(r, r)
    assert same["gain"] == pytest.approx(0.0, abs=1e-12)
    c = at.compare(r, b, 0.9)
    per = at.per_law(np.vstack([r, b]))
    gains = np.array([(v[1] - v[0]) * np.exp(at.bias) for v in per.values()])
    assert c["gain"] == pytest.approx(float(at.law_weights @ gains))
    assert c["gain_lower"] <= c["gain"] <= c["gain_upper"] and 0.0 <= c["p_better"] <= 1.0
    assert at.compare(b, r)["p_better"] == pytest.approx(1.0 - c["p_better"], abs=1e-9)
    u = at.uncertainty(r, b)
    assert u["lower"] < u["loss"] < u["upper"] and u["versus_baseline"] == c
    # each mixture's own error (the discrepancy's scatter) widens the gain beyond the families'
    # spread; a mixture against itself has none
    assert c["gain_upper"] - c["gain_lower"] > np.ptp(gains)
    assert same["gain_upper"] - same["gain_lower"] < 1e-6


def test_stacked_discrepancy_is_fitted_to_the_stacked_errors() -> None:
    import pandas as pd

    from mixlaws.backtest import BacktestResult, stacked_discrepancy
    from mixlaws.backtest._score import PREDICTION_COLUMNS

    # two families wrong in opposite directions by the same amount: their average is exact
    rows = [{"family": f, "fold": "mixtures", "part": k, "run": f"r{k}-{i}", "params": 1e8,
             "tokens": 1e9, "observed": 3.0, "predicted": 3.0, "rel_error": 0.0,
             "log_ratio": (1 if f == "nested" else -1) * 0.01 * (1 + i), "dN": 0.0, "dD": 0.0,
             "hull": 0.0} for f in ("nested", "joint") for k in range(3) for i in range(4)]
    status = pd.DataFrame([{"family": f, "fold": "mixtures", "part": k, "status": "ok",
                            "reason": None, "seconds": 0.0, "n_warnings": 0, "warning": None}
                           for f in ("nested", "joint") for k in range(3)])
    res = BacktestResult(pd.DataFrame(rows)[list(PREDICTION_COLUMNS)], status,
                         settings={"families": ["nested", "joint"]})
    d = stacked_discrepancy(res, {"nested": 0.5, "joint": 0.5})
    # the families are symmetric, so every leave-one-unit-out weight is 1/2
    a = 0.01 * (1 + np.arange(4))
    e = -np.log(0.5 * np.exp(-a) + 0.5 * np.exp(a))
    np.testing.assert_allclose(d.errors_, np.tile(e, 3), rtol=1e-6)
    assert d.predict(0.0, 0.0)["sd"] < res.discrepancy("nested").predict(0.0, 0.0)["sd"] / 3
    # one family with weight: its own discrepancy
    assert stacked_discrepancy(res, {"nested": 1.0, "joint": 0.0}) is res.discrepancy("nested")


def test_the_default_law_is_auto_unless_a_nested_option_says_otherwise() -> None:
    import argparse

    from mixlaws.cli._law import DEFAULT_LAW, resolve_law

    assert DEFAULT_LAW == "auto"
    ns = lambda **kw: argparse.Namespace(**{"law": None, "implicit": None, "tie_beta": None,  # noqa: E731
                                            "tie_alpha": None, **kw})
    assert resolve_law(ns()) == "auto"
    assert resolve_law(ns(tie_beta="all")) == "nested"
    assert resolve_law(ns(law="joint")) == "joint"


def test_auto_refuses_nested_only_options(sweep, tmp_path, capsys) -> None:
    path = tmp_path / "runs.csv"
    sweep.data.to_csv(path, index=False)
    assert main(["fit", str(path), "--law", "auto", "--tie-beta", "all"]) == 2
    assert "--tie-beta does not apply to --law auto" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_run_by_default_reports_structural_intervals(sweep, tmp_path) -> None:
    path = tmp_path / "runs.csv"
    sweep.data.to_csv(path, index=False)
    out = tmp_path / "out"
    with expected_warnings():
        code = main(["--quiet", "run", str(path), "--params", "1e9", "--tokens", "2e10",
                     "--baseline", "web=0.4,code=0.3,books=0.3", "-o", str(out)])
    assert code == 0
    fit = json.loads((out / "fit.json").read_text())
    assert fit["family"] == "auto" and set(fit["law_weights"]) == {"nested", "joint"}
    rows = json.loads((out / "predictions.json").read_text())
    assert all(r["lower"] < r["loss"] < r["upper"] and r["estimate"] == "stacked" for r in rows)
    mix = json.loads((out / "mixture.json").read_text())
    u = mix["uncertainty"]
    assert u["posterior"] == "structural" and u["lower"] < mix["predicted_loss"] < u["upper"]
    assert 0.0 <= u["versus_baseline"]["p_better"] <= 1.0
    assert u["versus_baseline"]["gain"] == pytest.approx(mix["gain"], rel=1e-6)


def test_a_family_no_backtest_fold_could_score_gets_weight_zero() -> None:
    import pandas as pd

    from mixlaws.backtest import BacktestResult, family_weights
    from mixlaws.backtest._score import PREDICTION_COLUMNS

    rng = np.random.default_rng(2)
    rows = [{"family": "nested", "fold": "mixtures", "part": k, "run": f"r{k}-{i}",
             "params": 1e8, "tokens": 1e9, "observed": 3.0, "predicted": 3.0, "rel_error": 0.0,
             "log_ratio": float(rng.normal(0, 0.01)), "dN": 0.0, "dD": 0.0, "hull": 0.0}
            for k in range(3) for i in range(4)]
    status = pd.DataFrame([{"family": f, "fold": "mixtures", "part": k, "status": s,
                            "reason": None if s == "ok" else "cannot fit", "seconds": 0.0,
                            "n_warnings": 0, "warning": None}
                           for f, s in (("nested", "ok"), ("joint", "failed")) for k in range(3)])
    res = BacktestResult(pd.DataFrame(rows)[list(PREDICTION_COLUMNS)], status,
                         settings={"families": ["nested", "joint"]})
    w, notes = family_weights(res, ("nested", "joint"))
    assert w == {"nested": 1.0, "joint": 0.0}
    assert any("joint has weight 0" in n for n in notes)


def test_run_fails_at_the_target_before_any_backtest(sweep, tmp_path, capsys, monkeypatch) -> None:
    """One model size, target at another: no family can predict there, so `run` (auto) stops
    with the first family's one-line error before paying for a backtest."""
    import mixlaws.backtest._averaged as averaged_module

    def no_backtest(*a, **kw):
        raise AssertionError("backtested although no family can predict at the target")

    monkeypatch.setattr(averaged_module, "backtest", no_backtest)
    path = tmp_path / "runs.csv"
    sweep.data[sweep.data["params"] == 2e7].to_csv(path, index=False)
    code = main(["--quiet", "run", str(path), "--params", "1e9", "--tokens", "2e10",
                 "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("mixlaws: error:") == 1 and "single model size" in err
    assert not (tmp_path / "out").exists()


def test_members_fitted_in_threads_fall_back_in_family_order(sweep, monkeypatch) -> None:
    """The first ``max_families`` families are fitted at once; one that fails is replaced by
    the next, as one after the other would, and the result does not depend on the threads."""
    import mixlaws.backtest._averaged as averaged_module

    real = averaged_module.make_estimator

    def joint_fails(name, **kw):
        est = real(name, **kw)
        if name == "joint":
            def fail(runs):
                raise MixlawsError("joint: cannot")
            est.fit = fail
        return est

    monkeypatch.setattr(averaged_module, "make_estimator", joint_fails)
    fits = []
    for threads in ("1", "2"):
        monkeypatch.setenv("MIXLAWS_THREADS", threads)
        law = AveragedMixingLaw(families=("nested-tied", "joint", "nested"), max_families=2,
                                folds=("mixtures",), n_mixture_folds=3)
        with expected_warnings():
            fits.append(law.fit(sweep))
    for law in fits:
        assert list(law.members_) == ["nested-tied", "nested"]
        assert "law family joint left out: joint: cannot" in law.notes_
    assert fits[0].law_weights_ == fits[1].law_weights_
    pd.testing.assert_frame_equal(fits[0].backtest_.predictions, fits[1].backtest_.predictions)
