"""The ``nested-sum`` family: a per-domain mixing law of K exponential terms, and ``--law auto``
choosing between it and the one-term law on a one-scale table."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

import mixlaws.fit._families as families_module
from mixlaws.backtest import AveragedMixingLaw
from mixlaws.cli import main
from mixlaws.errors import InsufficientDataError, MixlawsError
from mixlaws.fit import (FAMILIES, NestedMixingLaw, fit_mixing_stage, fit_sum_mixing_stage,
                         load_model, make_estimator, mixing_stage_law)
from mixlaws.laws import implicit_mixing_law
from mixlaws.runs import validate_runs
from mixlaws.simulate import sample_mixtures

SOURCES = ("web", "code", "books", "papers")
DOMAINS = ("web", "code")
N, D = 1e6, 1e9
# each domain a blend of two sub-domains that favour different sources
C = np.array([2.0, 1.6])
A = np.log(np.array([[0.6, 0.3], [0.5, 0.4]]))
T = np.array([[[-2.0, 1.0, 0.5, 0.5], [1.5, -3.0, 1.0, 0.5]],
              [[0.5, -2.5, 1.0, 1.0], [-1.0, 1.5, 1.0, -1.5]]])


def _losses(r: np.ndarray) -> np.ndarray:
    return np.asarray(implicit_mixing_law(r, C, A, T))


def _table(n: int, seed: int, noise: float = 0.002) -> pd.DataFrame:
    r = sample_mixtures(n, len(SOURCES), seed=seed)
    L = _losses(r) * np.exp(np.random.default_rng(seed).normal(0.0, noise, (n, len(DOMAINS))))
    df = pd.DataFrame({"run": [f"m{i}" for i in range(n)], "params": N, "tokens": D})
    for j, s in enumerate(SOURCES):
        df[f"mix:{s}"] = r[:, j]
    for i, d in enumerate(DOMAINS):
        df[f"loss:{d}"] = L[:, i]
    return df


@pytest.fixture(scope="module")
def swarm():
    return validate_runs(_table(48, seed=1))


@pytest.fixture(scope="module")
def fresh():
    r = sample_mixtures(64, len(SOURCES), seed=99)
    return r, _losses(r)


def test_two_terms_recover_a_two_term_truth_the_one_term_law_cannot(swarm, fresh) -> None:
    r, truth = fresh
    one = make_estimator("nested").fit(swarm)
    two = make_estimator("nested-sum").fit(swarm)
    e1 = np.abs(one.predict(r, N, D)["domains"] / truth - 1).mean()
    e2 = np.abs(two.predict(r, N, D)["domains"] / truth - 1).mean()
    assert e2 < 0.004 and e2 < e1 / 3, (e1, e2)
    # the one-term fit is among its starts: its residuals are never worse
    assert two.target(N, D).mixing.rmse <= one.target(N, D).mixing.rmse + 1e-12
    assert two.target(N, D).mixing.converged.all()


def test_one_term_is_the_nested_law(swarm) -> None:
    a = NestedMixingLaw(mixing_terms=1).fit(swarm).target(N, D).mixing.params
    b = make_estimator("nested").fit(swarm).target(N, D).mixing.params
    for key in ("c", "k", "t"):
        np.testing.assert_array_equal(a[key], b[key])


def test_sum_stage_from_its_own_fit_stays_there(swarm) -> None:
    tg = make_estimator("nested-sum").fit(swarm).target(N, D)
    again = fit_sum_mixing_stage(DOMAINS, tg.mixtures, tg.stage_losses, 2, warm=tg.mixing.params)
    r = tg.mixtures
    np.testing.assert_allclose(np.asarray(mixing_stage_law(r, again.params)),
                               np.asarray(tg.domain_losses(r)), rtol=1e-6)


def test_too_few_mixtures_and_bad_settings_are_clear_errors(swarm) -> None:
    small = validate_runs(_table(8, seed=3))        # 2 x 4 + 2 = 10 mixtures needed
    with pytest.raises(InsufficientDataError, match="needs ≥ 10 distinct mixtures.*--law nested"):
        make_estimator("nested-sum").fit(small)
    one = fit_mixing_stage(DOMAINS, swarm.data[[f"mix:{s}" for s in SOURCES]].to_numpy(),
                           swarm.data[[f"loss:{d}" for d in DOMAINS]].to_numpy())
    assert one.params["k"].shape == (2,)
    for bad in (0, 1.5, True):
        with pytest.raises(MixlawsError, match="mixing_terms must be an integer"):
            NestedMixingLaw(mixing_terms=bad).fit(swarm)


def test_auto_chooses_between_the_mixing_laws_on_a_one_scale_table(swarm, fresh) -> None:
    auto = AveragedMixingLaw().fit(swarm)
    assert tuple(auto.members_) == ("nested", "nested-sum")      # joint needs three sizes
    assert any("joint left out" in n for n in auto.notes_)
    # 3 leave-mixtures-out units and the Dirichlet(2) prior: the ceiling is (3 + 1) / (3 + 2)
    assert auto.law_weights_["nested-sum"] > 0.75
    r, truth = fresh
    err = np.abs(auto.predict(r, N, D)["domains"] / truth - 1).mean()
    one_term = np.abs(auto.members_["nested"].predict(r, N, D)["domains"] / truth - 1).mean()
    assert err < 0.01 and err < 0.6 * one_term, (err, one_term)


def test_auto_passes_over_a_family_too_costly_for_the_table(swarm, monkeypatch) -> None:
    capped = dataclasses.replace(FAMILIES["nested-sum"], auto_max_sources=3)
    monkeypatch.setitem(families_module.FAMILIES, "nested-sum", capped)
    auto = AveragedMixingLaw(folds=("mixtures",)).fit(swarm)
    assert tuple(auto.members_) == ("nested",)
    assert any("nested-sum left out: its fit costs too much with 4 sources" in n
               for n in auto.notes_)


def test_cli_fit_predict_report_and_sample(swarm, tmp_path, capsys) -> None:
    runs = tmp_path / "runs.csv"
    swarm.data.to_csv(runs, index=False)
    fit = tmp_path / "fit.json"
    assert main(["fit", str(runs), "--law", "nested-sum", "-o", str(fit)]) == 0
    model = load_model(fit)
    assert model.mixing_terms == 2 and model.family == "nested-sum"
    assert [make_estimator(f).family for f in ("nested", "nested-tied")] == ["nested",
                                                                            "nested-tied"]
    assert NestedMixingLaw(tie_beta="none").family == "nested (mixing_terms=1, tie_beta='none')"
    out = tmp_path / "pred.json"
    assert main(["predict", str(fit), "--params", "1e6", "--tokens", "1e9", "--mixture",
                 "web=0.4,code=0.3,books=0.2,papers=0.1", "-o", str(out)]) == 0
    row = json.loads(out.read_text())[0]
    r = np.array([[0.4, 0.3, 0.2, 0.1]])
    assert row["loss"] == pytest.approx(float(model.predict(r, N, D)["loss"][0]), rel=1e-12)
    assert "term 2" in model.fit_report(model.target(N, D))
    capsys.readouterr()
    code = main(["sample", str(fit), "--params", "1e6", "--tokens", "1e9", "--draws", "100"])
    err = capsys.readouterr().err
    assert code == 2 and "nested-sum" in err and "Traceback" not in err
