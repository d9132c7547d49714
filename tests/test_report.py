"""HTML report: `mixlaws run` writes it with every figure present and non-empty."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixlaws.fit import load_model
from mixlaws.cli import main
from mixlaws.fit import NestedMixingLaw
from mixlaws.report import build_report, leave_one_mixture_out, write_report
from mixlaws.runs import read_runs, validate_runs
from _expected import expected_warnings

FIGURES = ("step", "size", "mixing", "residuals", "mixture", "domains", "tokens")
PNG = b"\x89PNG\r\n\x1a\n"


def _images(html: str) -> dict[str, bytes]:
    return {alt: base64.b64decode(b64) for alt, b64 in
            re.findall(r"<img alt='([\w-]+)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'>", html)}


@pytest.fixture(scope="module")
def run_dir(fixture_run):
    return fixture_run[0]       # `mixlaws run` of the bundled sweep at 1e9 / 2e10 (conftest)


@pytest.fixture(scope="module")
def run_draws(run_dir, sweep_path):
    """200 posterior draws of the run's fit at its target, once for this module."""
    from mixlaws.posterior import sample_posterior

    with expected_warnings():
        return sample_posterior(load_model(run_dir / "fit.json"), read_runs(sweep_path), 1e9,
                                2e10, n_draws=200)


@pytest.mark.slow
def test_run_writes_report_with_every_figure(run_dir):
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    imgs = _images(html)
    assert set(imgs) == set(FIGURES)
    for name in FIGURES:
        assert imgs[name].startswith(PNG) and len(imgs[name]) > 5000, name
        png = (run_dir / "figures" / f"{name}.png").read_bytes()
        assert png == imgs[name]
    for section in ("summary", "convergence", "sampling", "fit-report"):
        assert f"id='{section}'" in html
    assert "Leave-one-mixture-out relative error of the mixing law: mean" in html
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "report.html" in summary["files"] and "figures/mixing.png" in summary["files"]
    assert "http" not in html.replace("https://", "").split("<body>")[0]  # no external assets


def _summary_values(html: str) -> dict[str, float]:
    """Every number of the summary, by its data-key, parsed back from the text shown."""
    summary = html.split("id='summary'")[1].split("<img")[0]
    return {k: float(v.replace("−", "-")) for k, v in
            re.findall(r"<span data-key='([^']+)'(?: hidden)?>([^<]*)</span>", summary)
            if v != "—"}


def test_summary_numbers_are_mixture_json(run_dir):
    """The summary at the top of report.html shows MIX.json's numbers (to the digits shown)."""
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    mix = json.loads((run_dir / "mixture.json").read_text())
    got = _summary_values(html)
    assert html.index("id='summary'") < html.index("id='step'")      # the decision comes first
    want = {f"optimum.{s}": (v, 5e-5) for s, v in mix["mixture"].items()}
    want |= {f"baseline.{s}": (v, 5e-5) for s, v in mix["baseline"]["mixture"].items()}
    want |= {f"change.{s}": (v - mix["baseline"]["mixture"][s], 5e-5)
             for s, v in mix["mixture"].items()}
    want |= {f"domain.{d}": (v, 5e-5 * v) for d, v in mix["domain_losses"].items()}
    want |= {"loss": (mix["predicted_loss"], 5e-5 * mix["predicted_loss"]),
             "base_loss": (mix["baseline"]["predicted_loss"], 5e-5 * mix["predicted_loss"]),
             "gain": (mix["gain"], 5e-5 * mix["gain"]),
             "scale.params": (mix["target"]["params"], 1e-3 * mix["target"]["params"]),
             "scale.tokens": (mix["target"]["tokens"], 1e-3 * mix["target"]["tokens"]),
             "ext.max_excess": (mix["extrapolation"]["max_excess"], 1e-3),
             "ext.hull_distance": (mix["extrapolation"]["hull_distance"], 1e-5)}
    missing = set(want) - set(got)
    assert not missing, missing
    for key, (v, tol) in want.items():
        assert abs(got[key] - v) <= tol, (key, got[key], v)
    model = load_model(run_dir / "fit.json")
    at = model.target(1e9, 2e10)
    _, dom_base = at.predict(mix["baseline"]["mixture"], per_domain=True)
    for d, v in zip(model.domains_, dom_base):
        assert abs(got[f"domain_base.{d}"] - v) <= 5e-5 * v, d
    assert got["scale.params_ratio"] == pytest.approx(1e9 / model.runs_["params"].max(), rel=1e-2)
    assert "No interval: this report has no posterior" in html   # and it says how to get one


def test_report_command_step_only(run_dir, tmp_path):
    out = tmp_path / "r.html"
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["report", str(run_dir / "fit.json"), "-o", str(out), "--png"]) == 0
    imgs = _images(out.read_text(encoding="utf-8"))
    assert set(imgs) == {"step", "residuals"}
    assert (tmp_path / "r_figures" / "step.png").read_bytes().startswith(PNG)


def test_report_command_half_target_is_an_error(run_dir, tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["report", str(run_dir / "fit.json"), "--params", "1e9"]) == 2
    assert "--tokens" in err.getvalue()


def test_held_out_refit_falls_back_to_cold_starts_quietly(run_dir, monkeypatch):
    """A fold whose warm-started refit does not converge is refitted from the usual starts;
    the warm attempt's convergence warning does not reach the report."""
    import dataclasses

    import mixlaws.fit._stages as stages_module
    from mixlaws.errors import ConvergenceWarning
    from mixlaws.fit import fit_mixing_stage

    model = load_model(run_dir / "fit.json")
    target = model.target(1e9, 2e10)
    calls = []

    def flaky(*args, warm=None, quiet=False, **kw):
        fit = fit_mixing_stage(*args, warm=warm, quiet=quiet, **kw)
        calls.append((warm is not None, quiet))
        if warm is not None:            # pretend the warm refit stalled in every domain
            fit = dataclasses.replace(fit, converged=np.zeros_like(fit.converged))
            if not quiet:
                warnings.warn("stalled", ConvergenceWarning)
        return fit

    monkeypatch.setattr(stages_module, "fit_mixing_stage", flaky)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        kf = leave_one_mixture_out(target, model.domains_, n_folds=4, seed=5)
    assert calls == [(True, True), (False, False)] * 4     # the warm attempt is quiet
    fold = np.random.default_rng(5).permutation(len(kf)) % 4
    cold = fit_mixing_stage(model.domains_, target.mixtures[fold != 1],
                            target.stage_losses[fold != 1], seed=5)
    p = cold.params
    np.testing.assert_allclose(kf[fold == 1], p["c"] + p["k"] * np.exp(target.mixtures[fold == 1]
                                                                        @ p["t"].T))


@pytest.mark.slow
def test_leave_one_mixture_out_matches_manual_refit(run_dir, run_draws):
    from mixlaws.fit import fit_mixing_stage

    model = load_model(run_dir / "fit.json")
    target = model.target(1e9, 2e10)
    lo = leave_one_mixture_out(target, model.domains_)
    assert lo.shape == target.stage_losses.shape and np.all(np.isfinite(lo))
    keep = np.arange(len(lo)) != 3
    warm = fit_mixing_stage(model.domains_, target.mixtures[keep], target.stage_losses[keep],
                            warm=target.mixing.params)
    cold = fit_mixing_stage(model.domains_, target.mixtures[keep], target.stage_losses[keep])
    law = lambda f, r: f.params["c"] + f.params["k"] * np.exp(r @ f.params["t"].T)  # noqa: E731
    assert warm.converged.all()
    np.testing.assert_allclose(lo[3], law(warm, target.mixtures[3]))
    # warm-started from the full fit, the refit reaches the multi-start refit's optimum
    np.testing.assert_allclose(lo[3], law(cold, target.mixtures[3]), rtol=1e-5)
    # the report's bound: k-fold over mixtures (seeded folds), each fold predicted without it
    kf = leave_one_mixture_out(target, model.domains_, n_folds=4, seed=5)
    fold = np.random.default_rng(5).permutation(len(lo)) % 4
    cold = fit_mixing_stage(model.domains_, target.mixtures[fold != 2],
                            target.stage_losses[fold != 2], seed=5)
    np.testing.assert_allclose(kf[fold == 2], law(cold, target.mixtures[fold == 2]), rtol=1e-5)
    assert np.abs(kf / target.stage_losses - 1).mean() < 0.03
    # held-out errors are larger than in-sample ones, and still small on this clean sweep
    err = np.abs(lo / target.stage_losses - 1).mean()
    fit_err = np.abs(np.asarray(target.domain_losses(target.mixtures)) / target.stage_losses - 1)
    assert fit_err.mean() < err < 0.02

    mix = json.loads((run_dir / "mixture.json").read_text())
    loss = mix["predicted_loss"]
    unc = {"objective": "mean", "posterior": "mcmc", "loss": loss, "lower": loss - 0.01,
           "upper": loss + 0.02, "level": 0.8,
           "versus_baseline": {"p_better": 0.93, "gain": 0.05, "gain_lower": -0.004,
                               "gain_upper": 0.11, "level": 0.8}}
    rep = build_report(model, target, mixture=mix | {"uncertainty": unc}, leave_one_out=False)
    plain = build_report(model, target, mixture=mix, leave_one_out=False)
    by = lambda r: {f.name: f.png for f in r.figures}  # noqa: E731
    assert by(rep)["mixture"] != by(plain)["mixture"] and by(rep)["step"] == by(plain)["step"]
    got = _summary_values(rep.html)      # MIX.json's posterior summary is what the summary shows
    assert (got["loss.lower"], got["loss.upper"]) == pytest.approx((loss - 0.01, loss + 0.02),
                                                                   rel=5e-5)
    assert (got["gain.lower"], got["gain.upper"], got["p_better"]) == (-0.004, 0.11, 0.93)
    assert "Intervals (80 %)" in rep.html and "No interval" not in rep.html

    from mixlaws.optimize import compare_to_baseline

    draws = run_draws
    sampled = build_report(model, target, mixture=mix, draws=draws, leave_one_out=False)
    assert "No posterior draws" in plain.html and "No posterior draws" not in sampled.html
    assert "acceptance" in sampled.html and by(sampled)["mixture"] != by(plain)["mixture"]
    base = np.array([mix["baseline"]["mixture"][s] for s in model.sources_])
    opt = np.array([mix["mixture"][s] for s in model.sources_])
    c = compare_to_baseline(draws, opt, base, 0.9)
    got = _summary_values(sampled.html)
    assert got["p_better"] == pytest.approx(c["p_better"], abs=5e-4)
    assert got["gain.lower"] == pytest.approx(c["gain_lower"], rel=5e-4)
    assert got["gain.upper"] == pytest.approx(c["gain_upper"], rel=5e-4)
    assert all(f"domain_change.{d}.lower" in got for d in model.domains_)


@pytest.mark.slow
def test_too_few_mixtures_for_leave_one_out(sweep_path):
    runs = read_runs(sweep_path)
    keep = runs.data["run"].str.split("-").str[1].astype(int) < 7
    small = validate_runs(runs.data[keep].reset_index(drop=True))
    with expected_warnings():
        model = NestedMixingLaw(tie_beta="all").fit(small)
        target = model.target(1e9, 2e10)
    assert leave_one_mixture_out(target, model.domains_) is None
    rep = build_report(model, target)
    assert "Leave-one-mixture-out check skipped: the other mixtures are too few" in rep.html


def test_write_report(tmp_path):
    from mixlaws.report import Figure, Report

    rep = Report(html="<html></html>", figures=(Figure("a", "A", "c", PNG + b"x"),))
    files = write_report(rep, tmp_path / "x.html", tmp_path / "p")
    assert files == [str(tmp_path / "x.html"), str(tmp_path / "p" / "a.png")]
    assert (tmp_path / "p" / "a.png").read_bytes() == PNG + b"x"


@pytest.mark.slow
def test_report_reads_posterior_and_old_draws_spelling(run_dir, run_draws, tmp_path):
    """`report --posterior FILE`, the deprecated `--draws FILE`, and the posterior the fit names."""
    import shutil

    from mixlaws.posterior import save_draws

    draws = run_draws
    fit = tmp_path / "fit.json"
    shutil.copy(run_dir / "fit.json", fit)
    save_draws(draws, tmp_path / "fit.posterior.npz")
    mix = str(run_dir / "mixture.json")
    outs = {}
    for name, extra in (("posterior", ["--posterior", str(tmp_path / "fit.posterior.npz")]),
                        ("draws", ["--draws", str(tmp_path / "fit.posterior.npz")]), ("none", [])):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main(["report", str(fit), "--mixture", mix, "-o", str(tmp_path / f"{name}.html"),
                         "--held-out-refits", "0", *extra]) == 0
        outs[name] = ((tmp_path / f"{name}.html").read_text(encoding="utf-8"), err.getvalue())
    assert "p_better" in _summary_values(outs["posterior"][0])
    assert "relative error of the mixing law" not in outs["posterior"][0]   # K = 0: no check
    assert "deprecated: use --posterior" not in outs["posterior"][1]
    assert "mixlaws: note: `mixlaws report --draws FILE` is deprecated" in outs["draws"][1]
    assert _summary_values(outs["draws"][0]) == _summary_values(outs["posterior"][0])
    assert "No interval" in outs["none"][0]          # the fit names no posterior yet
    d = json.loads(fit.read_text())
    d["posterior"] = {"file": "fit.posterior.npz", "params": 1e9, "tokens": 2e10,
                      "method": draws.method, "seed": 0, "n_draws": draws.n_draws}
    fit.write_text(json.dumps(d))                    # as `mixlaws sample` names its draws
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["report", str(fit), "--mixture", mix, "-o", str(tmp_path / "named.html"),
                     "--held-out-refits", "0"]) == 0
    named = (tmp_path / "named.html").read_text(encoding="utf-8")
    assert _summary_values(named) == _summary_values(outs["posterior"][0])


@pytest.mark.slow
def test_joint_run_writes_report_with_summary(sweep_path, tmp_path):
    """Every family gets the HTML report and its summary (here the joint law)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["--quiet", "run", str(sweep_path), "--law", "joint", "--params", "1e9",
                     "--tokens", "2e10", "--baseline", "web=0.6,code=0.1,books=0.1,papers=0.1,"
                     "wiki=0.1", "--formats", "json", "-o", str(tmp_path / "out")]) == 0
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    mix = json.loads((tmp_path / "out" / "mixture.json").read_text())
    got = _summary_values(html)
    assert got["loss"] == pytest.approx(mix["predicted_loss"], rel=5e-5)
    assert got["gain"] == pytest.approx(mix["gain"], rel=5e-5)
    assert all(got[f"optimum.{s}"] == pytest.approx(v, abs=5e-5) for s, v in mix["mixture"].items())
    assert set(_images(html)) == {"mixture", "domains", "tokens"}
    assert "Law family: joint" in html and "id='fit-report'" in html


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.text(st.characters(categories=("L", "N", "P")), min_size=1,
                                 max_size=25), min_size=3, max_size=3), min_size=1, max_size=6))
def test_text_table_cells_never_touch(rows):
    """Wide cells (a value ± its error can be 22 characters) widen their column instead of
    running into the next one, as fixed widths did in the joint law's parameter table."""
    from mixlaws.report._text import columns

    header = ["domain", "c", "k"]
    lines = columns(header, rows, indent=4)
    assert len(lines) == len(rows) + 1
    for line, cells in zip(lines, [header] + rows):
        assert line.startswith("    " + cells[0])
        rest = line[4 + max(len(r[0]) for r in [header] + rows):]
        # every cell after the first is right-aligned after at least two spaces
        pos = 0
        for cell in cells[1:]:
            at = rest.index(cell, pos)
            assert rest[at - 2:at] == "  "
            pos = at + len(cell)
