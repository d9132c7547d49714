"""`mixlaws suggest`: the criterion, batches, determinism, constraints/budget, cold start, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mixlaws.cli import main
from mixlaws.design import (Fantasies, feasible_mask, greedy_batch, run_flops, suggest_runs,
                            suggestion_report, suggestion_section)
from mixlaws.optimize import constraints_from_dict
from mixlaws.runs import validate_runs
from mixlaws.simulate import random_truth, sample_mixtures, simulate_sweep

SOURCES = ("web", "code", "books")
DOMAINS = ("web", "code")
SIZES = (2e7, 5e7, 1e8)
TARGET = (1e9, 2e10)
SMALL = dict(n_members=4, n_draws=4, n_new=6, n_mixtures=200)


def _table(n_mix: int = 6, sizes=SIZES, seed: int = 0) -> pd.DataFrame:
    truth = random_truth(SOURCES, DOMAINS, seed=seed, mixture_scaling=1.0)
    return simulate_sweep(truth, mixtures=sample_mixtures(n_mix, 3, seed=seed), sizes=sizes,
                          tokens_per_param=20.0, checkpoints=(0.25, 0.5, 0.75, 1.0), seed=seed)


def _suggest(df: pd.DataFrame, budget: float = 1.5e18, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fit notes of a tiny sweep are not what is tested
        return suggest_runs(validate_runs(df), *TARGET, budget, sizes=SIZES, batch=4,
                            **{**SMALL, **kw})


@pytest.fixture(scope="module")
def sweep() -> pd.DataFrame:
    return _table()


@pytest.fixture(scope="module")
def suggestion(sweep):
    return _suggest(sweep, seed=3)


def test_criterion_prefers_the_informative_run():
    # members 0, 1 prefer mixture 0 at the target, members 2, 3 mixture 1
    F = np.array([[1.0, 1.2], [1.0, 1.2], [1.2, 1.0], [1.2, 1.0]])
    reg = F - F.min(1, keepdims=True)
    optima = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    # point 0 separates {0, 1} from {2, 3} by 10 sigma; point 1 is predicted alike by all members
    Y = np.array([[3.0, 3.0], [3.0, 3.0], [3.0 * np.exp(0.1), 3.0], [3.0 * np.exp(0.1), 3.0]])
    fant = Fantasies.draw(Y, 0.01, 8, np.random.default_rng(0))
    terms = [fant.term((0,)), fant.term((1,))]
    steps, before, _ = greedy_batch(terms, np.array([1.0, 1.0]), [(0,), (1,)], reg, optima,
                                    budget=1.0, max_runs=1, n_runs=np.array([1, 1]))
    assert before == pytest.approx(0.1)
    assert [s.index for s in steps] == [0]
    assert steps[0].regret < 1e-6
    # the redundant run alone teaches nothing
    steps, _, _ = greedy_batch([terms[1]], np.array([1.0]), [(1,)], reg, optima, budget=1.0,
                               max_runs=1, n_runs=np.array([1]))
    assert steps[0].value == pytest.approx(0.0, abs=1e-12)


def test_batch_is_distinct_within_budget_and_explained(suggestion):
    P = suggestion.proposals
    assert 1 <= len(P) <= 4
    keys = {(row["params"], tuple(np.round(row[[f"mix:{s}" for s in SOURCES]].to_numpy(float), 9)))
            for _, row in P.iterrows()}
    assert len(keys) == len(P)
    assert P["flops"].sum() <= 1.5e18
    np.testing.assert_allclose(P["flops"], 6 * P["params"] * (P["tokens"] - P["start_tokens"]))
    assert all(isinstance(r, str) and len(r) > 20 for r in P["reason"])
    assert suggestion.regret_before is not None and suggestion.regret_after <= suggestion.regret_before
    d = suggestion.to_dict()
    assert len(d["proposals"]) == len(P) and d["regret_after"] == suggestion.regret_after
    table, fig = suggestion_report(suggestion)
    assert len(table) == len(P) and len(fig.axes) == 2


def test_same_seed_same_proposals(sweep, suggestion):
    again = _suggest(sweep, seed=3)
    pd.testing.assert_frame_equal(again.proposals, suggestion.proposals)
    assert again.regret_after == suggestion.regret_after


def test_ensemble_members_fitted_in_threads_change_nothing(sweep, suggestion, monkeypatch):
    monkeypatch.setenv("MIXLAWS_THREADS", "1")
    again = _suggest(sweep, seed=3)
    pd.testing.assert_frame_equal(again.proposals, suggestion.proposals)
    assert again.regret_after == suggestion.regret_after


def test_a_failing_ensemble_member_is_refitted_on_a_fresh_table(sweep, monkeypatch):
    """A member whose fit fails is tried once more, on a table drawn after the others."""
    import mixlaws.design._ensemble as ens
    from mixlaws.errors import MixlawsError

    real, calls = ens._fit, []

    def second_fails(name, settings, runs, seed):
        calls.append(runs)
        if len(calls) == 3:                   # the point fit, member 1, then member 2 fails
            raise MixlawsError("no")
        return real(name, settings, runs, seed)

    monkeypatch.setenv("MIXLAWS_THREADS", "1")
    monkeypatch.setattr(ens, "_fit", second_fails)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ensemble, notes = ens.fit_ensemble(validate_runs(sweep), TARGET, n_members=4, seed=1)
    assert len(calls) == 5 and len(ensemble.members) == 4
    assert not calls[4].data.equals(calls[2].data)
    assert "4 members" in notes[0]


def test_proposals_respect_constraints_and_budget(sweep):
    C = constraints_from_dict({"sources": {"web": {"min": 0.3}, "code": {"max": 0.2}}}, SOURCES)
    s = _suggest(sweep, budget=7e17, constraints=C, seed=1)
    R = s.proposals[[f"mix:{x}" for x in SOURCES]].to_numpy(float)
    assert len(R) >= 1
    assert feasible_mask(C, TARGET[1], R).all()
    assert np.all(R[:, 0] >= 0.3 - 1e-12) and np.all(R[:, 1] <= 0.2 + 1e-12)
    assert s.proposals["flops"].sum() <= 7e17


def test_one_run_table_gets_a_design_with_reasons():
    df = _table()
    one = df[df["run"] == df["run"].iloc[0]]
    s = _suggest(one, budget=1e18)
    P = s.proposals
    assert s.regret_before is None and s.criterion == "design rule"
    assert len(P) == 4 and P["flops"].sum() <= 1e18
    # the mixing law over 3 sources needs 5 mixtures: space-filling mixtures at the smallest size
    assert (P["params"] == SIZES[0]).sum() >= 3
    assert P["reason"].str.contains("space-filling").any()
    assert P["reason"].str.contains("second size").any() or (P["params"] == SIZES[0]).all()
    R = P[[f"mix:{x}" for x in SOURCES]].to_numpy(float)
    np.testing.assert_allclose(R.sum(1), 1.0, atol=1e-12)
    assert len({tuple(r) for r in np.round(R, 9)}) == len(R)


@pytest.mark.parametrize("laws", [("joint",), ("nested",)])
def test_cold_start_reaches_three_sizes(laws):
    df = _table(n_mix=6, sizes=(2e7,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = suggest_runs(validate_runs(df), *TARGET, 3e18, sizes=(2e7, 5e7, 1e8), batch=4,
                         laws=laws, **SMALL)
    assert s.criterion == "design rule"
    P = s.proposals
    # a size exponent needs a third size, whichever family (two sizes fit any exponent)
    assert {5e7, 1e8} <= set(P["params"]) and P["flops"].sum() <= 3e18
    assert P["reason"].str.contains("≥ 3 model sizes").any()


def test_pool_mode_proposes_only_pool_runs(sweep):
    R = sample_mixtures(5, 3, seed=9, include_uniform=False)
    pool = pd.DataFrame({"run": [f"p{i}" for i in range(5)] + [sweep["run"].iloc[0]],
                         "params": [5e7] * 5 + [2e7], "tokens": [1e9] * 5 + [4e8],
                         **{f"mix:{x}": [*R[:, j], 0.2] for j, x in enumerate(SOURCES)}})
    s = _suggest(sweep, budget=7e17, pool=pool)
    P = s.proposals
    assert len(P) >= 1 and set(P["kind"]) == {"pool"} and P["flops"].sum() <= 7e17
    assert set(P["mixture"]) <= {f"p{i}" for i in range(5)}        # the table's own run skipped
    assert P["reason"].str.startswith("pool run").all()
    from mixlaws.errors import InsufficientDataError, ScaleError
    with pytest.raises(InsufficientDataError, match="pool"):
        _suggest(sweep[sweep["run"] == sweep["run"].iloc[0]], budget=7e17, pool=pool)
    with pytest.raises(ScaleError, match="mix:books"):
        _suggest(sweep, budget=7e17, pool=pool.drop(columns="mix:books"))


def test_report_section_at_the_end_of_the_html(sweep, suggestion):
    from mixlaws.fit import NestedMixingLaw
    from mixlaws.report import build_report

    sec = suggestion_section(suggestion)
    assert "What to train next" in sec.html and sec.html.count("<tr>") == len(suggestion.proposals) + 1
    assert [f.name for f in sec.figures] == ["suggest"] and sec.figures[0].png[:4] == b"\x89PNG"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = NestedMixingLaw().fit(validate_runs(sweep))
        rep = build_report(model, model.target(*TARGET), sections=[sec], leave_one_out=False)
    assert rep.html.index("id='fit-report'") < rep.html.index("id='suggest'")
    assert rep.html.rstrip().endswith("</body></html>") and rep.figures[-1].name == "suggest"
    plain = build_report(model, None)
    assert "What to train next" not in plain.html


def test_cli_report_suggest_budget(tmp_path, capsys):
    path, fit = tmp_path / "runs.csv", tmp_path / "fit.json"
    _table().to_csv(path, index=False)
    assert main(["--quiet", "fit", str(path), "-o", str(fit)]) == 0
    out = tmp_path / "r.html"
    base = ["--quiet", "report", str(fit), "--runs", str(path), "-o", str(out)]
    assert main(base + ["--suggest-budget", "1e18"]) == 2          # no target
    assert "needs the runs table and a target" in capsys.readouterr().err
    code = main(base + ["--params", "1B", "--tokens", "20B", "--suggest-budget", "1e18",
                        "--suggest-batch", "2", "--held-out-refits", "0"])
    assert code == 0
    text = out.read_text()
    assert "What to train next" in text and text.index("id='fit-report'") < text.index("id='suggest'")


def _cli(tmp_path, capsys, *extra):
    path = tmp_path / "runs.csv"
    _table(n_mix=2, sizes=(2e7,)).to_csv(path, index=False)
    code = main(["--quiet", "suggest", str(path), "--params", "1B", "--tokens", "20B", *extra])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("extra, needle", [
    (["--budget", "1e10"], "below the cheapest run"),
    (["--budget", "1e18", "--sizes", "20M,-5M"], "--sizes"),
    (["--budget", "1e18", "--sizes", "0"], "--sizes"),
    (["--budget", "lots"], "--budget"),
    (["--budget", "1e18", "--law", "quadratic"], "unknown law family"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, extra, needle):
    code, err = _cli(tmp_path, capsys, *extra)
    assert code == 2
    assert len(err.splitlines()) == 1 and needle in err and err.startswith("mixlaws: error:")


def test_unknown_source_in_constraints_is_exit_2(tmp_path, capsys):
    c = tmp_path / "c.yaml"
    c.write_text("sources:\n  pubmed: {max: 0.1}\n")
    code, err = _cli(tmp_path, capsys, "--budget", "1e18", "--constraints", str(c))
    assert code == 2 and len(err.splitlines()) == 1 and "pubmed" in err


def test_cli_writes_csv_and_never_overwrites_the_table(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    _table(n_mix=2, sizes=(2e7,)).to_csv(path, index=False)
    before = path.read_bytes()
    args = ["--quiet", "suggest", str(path), "--params", "1B", "--tokens", "20B",
            "--budget", "2e17", "--sizes", "20M,50M", "--batch", "3"]
    assert main(args + ["-o", str(path)]) == 2
    assert path.read_bytes() == before
    capsys.readouterr()
    out = tmp_path / "next.csv"
    assert main(args + ["-o", str(out)]) == 0
    import json
    doc = json.loads(capsys.readouterr().out)
    csv = pd.read_csv(out)
    assert list(csv.columns[:2]) == ["params", "tokens"] and "reason" in csv.columns
    assert len(csv) == len(doc["proposals"]) == 3 and csv["flops"].sum() <= 2e17
    assert run_flops(2e7, 4e8) == pytest.approx(4.8e16)


def test_size_dependent_truth_moves_the_optimum():
    from mixlaws.simulate import optimum_shift, size_dependent_truth, true_optimum

    t = size_dependent_truth(("web", "code", "books", "papers"), DOMAINS, seed=4, min_shift=0.3)
    assert t == size_dependent_truth(("web", "code", "books", "papers"), DOMAINS, seed=4,
                                     min_shift=0.3)
    assert t.mixture_scaling == 2.0
    shift = optimum_shift(t, (2e7, 4e8), TARGET)
    a, _ = true_optimum(t, 2e7, 4e8)
    b, _ = true_optimum(t, *TARGET)
    assert shift >= 0.3 and shift == pytest.approx(np.abs(a - b).sum())
    from mixlaws.errors import MixlawsError
    with pytest.raises(MixlawsError, match="min_shift"):
        size_dependent_truth(SOURCES, DOMAINS, seed=0, min_shift=5.0, max_tries=2)
