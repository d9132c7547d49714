"""Self-contained HTML report of a fit: the decision first, then figures and diagnostics.

:func:`build_report` assembles, for a fitted estimator of any family, its target object,
the runs table and the optimised mixture (MIX.json dict):

* the summary (:mod:`mixlaws.report._summary`): recommended mixture against the baseline per
  source, predicted losses and the gain with intervals and P(better), how far N, D and the
  mixture are extrapolated, per-domain changes; dot plots of the same (intervals as whiskers),
  per-domain changes and tokens/epochs per source;
* for the nested family, the stage figures (:mod:`mixlaws.report._stage_figures`): step curves
  and size curves of every mixture with bands, the mixing law's predicted vs observed stage
  losses with leave-one-mixture-out points (:func:`leave_one_mixture_out`) and the optimum and
  baseline marked, log-residuals of each stage;
* the convergence table, sampling diagnostics (with posterior draws), the text fit report,
  and any extra ``sections`` at the end.

:func:`write_report` writes the HTML and the PNGs.
"""

from __future__ import annotations

import base64
import html
import os
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ConvergenceWarning, MixlawsError
from ..fit import (NestedMixingLaw, StageFit, TargetFit, mixing_stage_law,
                   refit_mixing_stage)
from ..progress import progress
from . import _plots as plots
from . import _plots_decision as pdec
from . import _stage_figures as stage_figs
from ._summary import Decision, decision, summary_html
from ._text import fit_report

__all__ = ["Figure", "Report", "build_report", "write_report", "leave_one_mixture_out",
           "MAX_HELD_OUT_REFITS"]


@dataclass(frozen=True)
class Figure:
    """One report figure: file stem ``name``, ``title``, ``caption`` and PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes


@dataclass(frozen=True)
class Report:
    """A rendered report: the HTML text (figures embedded) and the figures."""

    html: str
    figures: tuple[Figure, ...]


def _agg(L: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Aggregate ``sum_d w_d L_d`` over the last axis (plain mean without weights)."""
    L = np.asarray(L, float)
    return L.mean(-1) if weights is None else L @ weights


MAX_HELD_OUT_REFITS = 24
"""The report's held-out check refits the mixing law at most this many times: leave-one-out up
to this many mixtures, k-fold over mixtures with k = this above (RegMix's 512 mixtures: 24
refits instead of 512, ~20× less time; each mixture still predicted by a law fitted without it)."""


def leave_one_mixture_out(target: TargetFit, domains: Sequence[str], *, delta: float = 1e-3,
                          seed: int = 0, n_folds: int | None = None) -> np.ndarray | None:
    """Per-domain losses of each mixture predicted by the mixing law fitted without it.

    For mixture ``i``: refit the target's mixing law (``c_d + k_d exp(t_d . r)``, or its
    ``K``-term form) on the other mixtures of
    ``target.stage_losses`` and evaluate it at ``r_i``. With ``n_folds < n`` the mixtures are
    split into ``n_folds`` random folds (``seed``) and each fold is predicted by the law
    fitted on the others (k-fold over mixtures: ``n_folds`` refits instead of ``n``).

    Each refit starts from the fit to every mixture (``target.mixing``; one start instead of
    the mixing stage's multi-start: the fold's optimum lies next to it, and on a 512-mixture
    swarm a refit costs ~25x less); a fold whose warm refit does not converge in every domain
    is refitted from the usual starts (and a law of several terms always is: its warm start
    can sit in a worse basin than the fold's own).

    Returns
    -------
    ``(n, n_domains)`` array, or None when the training mixtures of a fold are too few for the
    law (fewer than ``K M + 2``).
    """
    X, Y = target.mixtures, target.stage_losses
    n, M = X.shape
    k = n if n_folds is None else max(2, min(int(n_folds), n))
    fold = np.arange(n) if k == n else np.random.default_rng(seed).permutation(n) % k
    warm = None if target.mixing is None else target.mixing.params
    terms = 1 if warm is None or "a" not in warm else int(np.shape(warm["a"])[-1])
    if n - np.bincount(fold).max() < terms * M + 2:
        return None
    out = np.empty_like(Y)
    desc = ("leave-one-mixture-out refits" if k == n else
            f"held-out refits ({k}-fold over {n} mixtures)")
    with progress(desc, total=k) as bar:
        for f in range(k):
            held = fold == f
            fit = refit_mixing_stage(domains, X[~held], Y[~held], terms, delta=delta, seed=seed,
                                     warm=warm)
            out[held] = np.asarray(mixing_stage_law(X[held], fit.params))
            bar.advance()
    return out


def _stage_rows(stages: Sequence[StageFit]) -> str:
    head = ("<tr><th>stage</th><th>law</th><th>fits</th><th>data</th><th>free params</th>"
            "<th>converged</th><th>at bound</th><th>rms log-res</th><th>max |log-res|</th></tr>")
    rows = [f"<tr><td>{s.stage}</td><td>{html.escape(s.law)}</td><td>{len(s.labels)}</td>"
            f"<td>{s.n_data}</td><td>{s.n_params}</td><td>{int(s.converged.sum())}/"
            f"{s.converged.size}</td><td>{int(s.at_bound.sum())}</td><td>{s.rmse:.3e}</td>"
            f"<td>{s.max_abs_residual:.3e}</td></tr>" for s in stages]
    warns = [f"<li>{html.escape(x)}</li>" for s in stages for x in s.warnings]
    return (f"<table>{head}{''.join(rows)}</table>"
            + (f"<ul class='warn'>{''.join(warns)}</ul>" if warns else "<p>No warnings.</p>"))


def _dict_table(rows: Sequence[Mapping[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    def fmt(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return ", ".join(fmt(u) for u in v)
        return f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))

    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(k, ''))}</td>" for k in keys) + "</tr>"
                   for r in rows)
    return "<table><tr>" + "".join(f"<th>{html.escape(k)}</th>" for k in keys) + f"</tr>{body}</table>"


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}"
        "pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:85%}"
        "img{max-width:100%}.warn{color:#a33}.muted{color:#666}"
        ".verdict{font-size:115%;background:#eef6ee;padding:8px;border-left:4px solid #4a4}"
        "table.summary td:not(:first-child){text-align:right;font-variant-numeric:tabular-nums}"
        "tr.better td:nth-last-child(2){color:#262}tr.worse td:nth-last-child(2){color:#a33}")


def _stages_of(model: Any, target: Any) -> list[StageFit]:
    """Every stage fit behind a target, for the convergence table (any family)."""
    if getattr(model, "family", None) == "auto":
        return [s for f, t in zip(target.families, target.members)
                for s in _stages_of(model.members_[f], t)] if target is not None else []
    if isinstance(model, NestedMixingLaw):
        return [s for s in (model.step_, None if target is None else target.size,
                            None if target is None else target.mixing,
                            None if target is None else target.implicit) if s is not None]
    return [model.fit_]


def _decision_figures(dec: Decision, mix: Mapping[str, Any], unit: str) -> list[tuple]:
    """The summary's figures: mixture/loss/gain dot plot, per-domain changes, tokens per source."""
    def trio(v: float | None, iv: tuple[float, float] | None) -> tuple:
        return (v,) + (iv if iv is not None else (None, None))

    losses = {"recommended": trio(dec.loss, dec.loss_interval)}
    if dec.baseline is not None and dec.base_loss is not None:
        losses["baseline"] = trio(dec.base_loss, dec.base_interval)
    gain = None if dec.gain is None else trio(dec.gain, dec.gain_interval)
    src = (f"with their intervals ({dec.interval_source})" if dec.interval_source else
           "(no intervals: see the summary)")
    out = [("mixture", "Recommended mixture against the baseline",
            f"Shares per source; predicted aggregate loss and the gain at the target {src}.",
            pdec.decision_dots(dec.sources, dec.optimum, dec.baseline, losses, gain, dec.level))]
    if dec.dom_base is not None:
        out.append(("domains", "Change per validation domain",
                    "Predicted loss of the recommended mixture minus the baseline's, per "
                    "validation domain (green: better, red: worse)" +
                    ("; intervals from the posterior." if dec.dom_change_interval is not None
                     else "; no per-domain intervals without posterior draws."),
                    pdec.domain_changes(dec.domains, dec.dom_opt - dec.dom_base,
                                        dec.dom_change_interval, dec.level)))
    per = mix.get("sources") or {}
    num = lambda k: np.array([np.nan if per.get(s, {}).get(k) is None else per[s][k]  # noqa: E731
                              for s in dec.sources], float)
    tok = num("tokens")
    if np.isfinite(tok).any():
        out.append(("tokens", "Tokens and epochs per source",
                    "Tokens of each source in the recommended mixture at the target budget, "
                    "available tokens and epochs when the constraints give them.",
                    plots.tokens_bars(dec.sources, np.nan_to_num(tok), num("available_tokens"),
                                      num("epochs"), mix.get("unit", unit))))
    return out


def _leave_one_out(target: TargetFit, model: NestedMixingLaw, max_refits: int
                   ) -> tuple[np.ndarray | None, list[str]]:
    """Leave-one-mixture-out predictions and a plain note on refits that did not converge.

    The refits' own convergence warnings are collected (one per refit, naming domains a user
    never fitted) and replaced by one warning that says what they concern.
    """
    k = min(len(target.mixture_labels), max_refits)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        lo = leave_one_mixture_out(target, model.domains_, delta=model.delta, seed=model.seed,
                                   n_folds=k)
    bad = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    for w in caught:
        if w not in bad:
            warnings.warn(w.message, w.category, stacklevel=2)
    if not bad:
        return lo, []
    full = "converged" if target.mixing.converged.all() else "also did not converge in places"
    msg = (f"report: {len(bad)} of {k} held-out refits of "
           f"the mixing law did not fully converge, while the fit on all mixtures {full}; this "
           "concerns only the held-out check (crosses in the mixing figure), not the "
           "recommended mixture or its prediction")
    warnings.warn(msg, ConvergenceWarning, stacklevel=2)
    return lo, [msg]


def _nested_figures(model: NestedMixingLaw, target: TargetFit | None, runs: Any,
                    dec: Decision | None, leave_one_out: bool, max_refits: int
                    ) -> tuple[list, str, list[str]]:
    figs: list[tuple[str, str, str, Any]] = []
    resid: list[tuple] = []
    notes: list[str] = []
    if model.step_ is not None:  # single-checkpoint sweeps have no step curves to draw
        fig, panels = stage_figs.step_figure(model, target, runs)
        figs.append(("step", "Step stage: loss vs training progress",
                     "Aggregate validation loss per run (points) and fitted step laws (lines) with "
                     "90 % bands of each run's point fit (Gauss–Newton, from its checkpoints; "
                     "needs the runs table), one panel per model size; dotted: target D*.", fig))
        resid += panels
    lomo_note = ""
    if target is not None:
        if target.size is not None:
            fig, panel = stage_figs.size_figure(model, target)
            figs.append(("size", "Size stage: loss vs model size at D*",
                         "Every mixture: step-law losses at D* (points), the fitted size law and "
                         "its 90 % band (E, A given the exponent plus the exponent's standard "
                         "error, Gauss–Newton at the point fit); dotted: target N*.", fig))
            resid.append(panel)
        w = model.weights_
        obs = _agg(target.stage_losses, w)
        fitted = np.asarray(target.loss(target.mixtures)) if w is None else \
            _agg(np.asarray(target.domain_losses(target.mixtures)), w)
        held = None
        how = ("Leave-one-mixture-out" if len(obs) <= max_refits else
               f"Held-out ({max_refits}-fold over mixtures, to bound the report's cost)")
        if leave_one_out:
            lo, notes = _leave_one_out(target, model, max_refits)
            if lo is None:
                lomo_note = (f"{how} check skipped: the other mixtures are too few to fit the "
                             f"law ({len(model.sources_) + 2} needed).")
            else:
                held = _agg(lo, w)
                err = np.abs(held / obs - 1)
                lomo_note = (f"{how} relative error of the mixing law: mean "
                             f"{100 * err.mean():.3f} %,"
                             f" max {100 * err.max():.3f} % over {len(obs)} mixtures.")
        marks = None
        if dec is not None:
            marks = {"recommended": (dec.loss,) + (dec.loss_interval or (None, None))}
            if dec.base_loss is not None:
                marks["baseline"] = (dec.base_loss,) + (dec.base_interval or (None, None))
        figs.append(("mixing", "Mixing stage: predicted vs observed",
                     "Stage losses of each mixture at the target against the mixing law fitted "
                     "on all mixtures (circles) and without it (crosses); dashed: predicted "
                     "loss of the recommended mixture and the baseline (shaded: their "
                     "intervals, when available). " + lomo_note,
                     plots.mixing_parity(obs, fitted, held, target.mixture_labels, marks)))
        dom = np.asarray(target.domain_losses(target.mixtures))
        idx = np.repeat(np.arange(len(obs)), dom.shape[1]).astype(float)
        resid.append(("mixing stage (all domains)", idx, np.log(dom / target.stage_losses).ravel(),
                      "mixture index", False))
        if held is not None:
            resid.append(("mixing stage, held out", np.arange(len(obs), dtype=float),
                          np.log(held / obs), "mixture index", False))
    if resid:
        figs.append(("residuals", "Residuals", "Log-residuals log(pred) - log(obs) of each stage "
                     "(≈ relative errors).", plots.residuals_plot(resid)))
    return figs, lomo_note, notes


def _section(f: Figure) -> str:
    b64 = base64.b64encode(f.png).decode("ascii")
    return (f"<h2 id='{f.name}'>{html.escape(f.title)}</h2><p>{html.escape(f.caption)}"
            f"</p><img alt='{f.name}' src='data:image/png;base64,{b64}'>")


def build_report(model: Any, target: Any = None, *, runs: Any = None,
                 mixture: Mapping[str, Any] | None = None, draws: Any = None,
                 leave_one_out: bool = True, held_out_refits: int = MAX_HELD_OUT_REFITS,
                 level: float = 0.9,
                 sections: Sequence[Any] = ()) -> Report:
    """Render the report of a fitted model (any family).

    Parameters
    ----------
    model : fitted estimator.
    target : its target object at ``(N*, D*)``; None reports the fit only (and is taken from
        MIX.json's target when ``mixture`` is given).
    runs : the :class:`~mixlaws.runs.RunsTable` for data points and bands of the step stage
        (None: each run's last checkpoint only, no step bands).
    mixture : a MIX.json dict (``mixlaws optimize``): the decision summary at the top.
    draws : :class:`~mixlaws.posterior.PosteriorDraws` at the target (nested family):
        posterior intervals, P(better) and sampling diagnostics.
    leave_one_out : add held-out points to the mixing figure (nested family): each mixture
        predicted by the mixing law fitted without it.
    held_out_refits : at most this many refits for them (≥ 2; default
        :data:`MAX_HELD_OUT_REFITS`): leave-one-out up to this many mixtures, k-fold above.
    level : level of the summary's intervals when computed here.
    sections : extra sections appended at the end, each with ``html`` (a fragment) and
        ``figures`` (:class:`Figure`), e.g. the "what to train next" section.

    The stage figures (step, size, mixing, residuals) are drawn for the nested family; the
    summary, its figures, the convergence table and the fit report for every family.
    """
    model._check_fitted()
    if target is None and mixture is not None:
        target = model.target(mixture["target"]["params"], mixture["target"]["tokens"])
    unit = model.progress_
    dec = None if mixture is None else decision(target, mixture, draws=draws, level=level)
    figs: list[tuple] = [] if dec is None else _decision_figures(dec, mixture, unit)
    n_top = len(figs)
    lomo_note, notes = "", []
    if isinstance(model, NestedMixingLaw):
        if held_out_refits < 2:
            raise MixlawsError(f"held_out_refits must be ≥ 2 (or leave_one_out=False), not "
                               f"{held_out_refits}")
        stage, lomo_note, notes = _nested_figures(model, target, runs, dec, leave_one_out,
                                                  held_out_refits)
        figs += stage
    figures = tuple(Figure(n, t, c, plots.to_png(f)) for n, t, c, f in figs)

    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>mixlaws report</title>"
             f"<style>{_CSS}</style></head><body><h1>mixlaws report</h1>"]
    fam = getattr(model, "family", None) or ("nested" if isinstance(model, NestedMixingLaw)
                                             else type(model).__name__)
    parts.append(f"<p>Law family: {html.escape(str(fam))}." + (
        "" if target is None else f" Target: N* = {target.params:.6g} parameters, "
        f"D* = {target.tokens:.6g} {unit}.") + "</p>")
    if dec is not None:
        parts.append(summary_html(dec, unit, held_out=lomo_note or None))
    parts += [_section(f) for f in figures[:n_top]]
    parts.append("<h2 id='diagnostics'>Diagnostics</h2>")
    if not isinstance(model, NestedMixingLaw):
        parts.append("<p>The stage figures are drawn for the nested family; the fit report "
                     "below describes this fit.</p>")
    parts += [f"<p class='warn'>{html.escape(n)}</p>" for n in notes]
    parts += [_section(f) for f in figures[n_top:]]
    parts.append(f"<h2 id='convergence'>Convergence</h2>{_stage_rows(_stages_of(model, target))}")
    diag = list(getattr(draws, "diagnostics", ()) or ())
    parts.append("<h2 id='sampling'>Sampling diagnostics</h2>" + (
        _dict_table(diag) if diag else "<p>No posterior draws in this report.</p>"))
    parts.append("<h2 id='fit-report'>Fit report</h2><pre>"
                 + html.escape(fit_report(model, target)) + "</pre>")
    parts += [sec.html for sec in sections]      # hook: sections at the end of the report
    parts.append("</body></html>")
    return Report(html="\n".join(parts),
                  figures=figures + tuple(f for sec in sections for f in sec.figures))


def write_report(report: Report, path: str | os.PathLike, png_dir: str | os.PathLike | None = None
                 ) -> list[str]:
    """Write the HTML to ``path`` and each figure to ``png_dir/<name>.png``; return the paths."""
    written = [os.fspath(path)]
    with open(path, "w", encoding="utf-8") as f:
        f.write(report.html)
    if png_dir is not None:
        os.makedirs(png_dir, exist_ok=True)
        for fig in report.figures:
            p = os.path.join(png_dir, f"{fig.name}.png")
            with open(p, "wb") as fh:
                fh.write(fig.png)
            written.append(p)
    return written

