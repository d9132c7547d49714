"""Self-contained HTML report of a fit: figures (embedded PNG), fit reports, diagnostics.

:func:`build_report` assembles, for a fitted :class:`~mixlaws.fit.NestedMixingLaw`
and optionally its :class:`~mixlaws.fit.TargetFit`, the runs table and the
optimised mixture (MIX.json dict):

* step stage — aggregate loss vs tokens per run, data and ``sum_d w_d (E_d + B_d D^-beta)``;
* size stage — aggregate loss at ``D*`` vs ``N`` per mixture with ``E + A N^-alpha``;
* mixing stage — predicted vs observed stage losses, with leave-one-mixture-out
  points (:func:`leave_one_mixture_out`);
* log-residuals ``log(pred) - log(obs)`` of each stage;
* the text fit report, convergence table, sampling diagnostics (when posterior draws
  are given), the optimum against the baseline with intervals (when available),
  and tokens/epochs per source.

:func:`write_report` writes the HTML and the PNGs.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..report import _plots as plots
from ._text import fit_report
from ..fit import NestedMixingLaw, TargetFit
from ..laws import mixing_law
from ..progress import progress
from ..runs._warmup import after_warmup
from ..fit import StageFit, fit_mixing_stage

__all__ = ["Figure", "Report", "build_report", "write_report", "leave_one_mixture_out"]


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


def leave_one_mixture_out(target: TargetFit, domains: Sequence[str], *, delta: float = 1e-3,
                          seed: int = 0) -> np.ndarray | None:
    """Per-domain losses of each mixture predicted by the mixing law fitted without it.

    For mixture ``i``: refit ``L_d(r) = c_d + k_d exp(t_d . r)`` on the other ``n - 1``
    mixtures of ``target.stage_losses`` and evaluate it at ``r_i``.

    Returns
    -------
    ``(n, n_domains)`` array, or None when ``n - 1`` mixtures are too few for the law
    (``n - 1 < M + 2``).
    """
    X, Y = target.mixtures, target.stage_losses
    n, M = X.shape
    if n - 1 < M + 2:
        return None
    out = np.empty_like(Y)
    with progress("leave-one-mixture-out refits", total=n) as bar:
        for i in range(n):
            keep = np.arange(n) != i
            fit = fit_mixing_stage(domains, X[keep], Y[keep], delta=delta, seed=seed)
            p = fit.params
            out[i] = np.asarray(mixing_law(X[i], p["c"], p["k"], p["t"]))
            bar.advance()
    return out


def _step_figure(model: NestedMixingLaw, target: TargetFit | None, runs: Any,
                 max_panels: int = 4) -> tuple[Any, list[tuple[str, np.ndarray, np.ndarray, str, bool]]]:
    R, w, st = model.runs_, model.weights_, model.step_
    sizes = np.unique(R["params"])
    show = sizes[np.unique(np.linspace(0, sizes.size - 1, min(sizes.size, max_panels)).astype(int))]
    data = {} if runs is None else {str(k): g for k, g in runs.data.groupby("run", sort=False)}
    loss_cols = [f"loss:{d}" for d in model.domains_]
    groups, res_x, res_r = [], [], []
    pos = {int(i): j for j, i in enumerate(model.step_runs_)}
    for N in show:
        curves = []
        for i in np.flatnonzero(R["params"] == N):
            run = R["run"][i]
            g = data.get(run)
            Dd = g["tokens"].to_numpy(float) if g is not None else np.array([R["last_tokens"][i]])
            Ld = _agg(g[loss_cols].to_numpy(float), w) if g is not None else \
                np.array([_agg(R["last_losses"][i], w)])
            Dg, Lg = np.array([]), np.array([])
            if st is not None and int(i) in pos:
                j = pos[int(i)]
                beta = np.broadcast_to(np.atleast_1d(st.params["beta"][j]), (len(model.domains_),))
                hi = max(Dd.max(), target.tokens if target is not None else 0.0)
                Dg = np.geomspace(max(Dd.min(), model.warmup * R["last_tokens"][i]), hi, 60)
                Lg = _agg(st.params["E"][j] + st.params["B"][j] * Dg[:, None] ** (-beta), w)
                if g is not None:
                    keep = after_warmup(Dd, model.warmup)
                    Ldom = g[loss_cols].to_numpy(float)[keep]
                    pred = st.params["E"][j] + st.params["B"][j] * Dd[keep, None] ** (-beta)
                    res_x.append(np.repeat(Dd[keep], len(model.domains_)))
                    res_r.append(np.log(pred / Ldom).ravel())
            curves.append((Dd, Ld, Dg, Lg))
        groups.append((f"N = {N:.3g} ({len(curves)} runs)", curves))
    fig = plots.step_curves(groups, None if target is None else target.tokens, model.progress_)
    panels = []
    if res_x:
        panels.append(("step stage (all domains)", np.concatenate(res_x), np.concatenate(res_r),
                       model.progress_, True))
    return fig, panels


def _size_figure(model: NestedMixingLaw, target: TargetFit) -> tuple[Any, tuple]:
    s = target.size
    L, ok = model.losses_at_tokens(target.tokens)
    R, w, nd = model.runs_, model.weights_, len(model.domains_)
    index = {lab: m for m, lab in enumerate(model.mixture_labels_)}
    E, A, al = (s.params[k].reshape(-1, nd) for k in ("E", "A", "alpha"))
    curves, rx, rr = [], [], []
    Ng = np.geomspace(R["params"].min(), max(R["params"].max(), target.params), 60)
    for a, lab in enumerate(target.mixture_labels):
        sel = ok & (R["mixture"] == index[lab])
        Nd = R["params"][sel]
        pred = E[a] + A[a] * Nd[:, None] ** (-al[a])
        rx.append(np.repeat(Nd, nd))
        rr.append(np.log(pred / L[sel]).ravel())
        curves.append((lab, Nd, _agg(L[sel], w), Ng, _agg(E[a] + A[a] * Ng[:, None] ** (-al[a]), w)))
    fig = plots.size_curves(curves, target.params)
    return fig, ("size stage (all domains)", np.concatenate(rx), np.concatenate(rr), "parameters N",
                 True)


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


def _interval(d: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    """``(lower, upper)`` from a MIX.json entry carrying ``interval: {lower, upper}``, if any."""
    iv = (d or {}).get("interval")
    if isinstance(iv, Mapping) and iv.get("lower") is not None and iv.get("upper") is not None:
        return float(iv["lower"]), float(iv["upper"])
    return None, None


def _mixture_figures(model: NestedMixingLaw, mix: Mapping[str, Any], draws: Any) -> list[tuple]:
    src = model.sources_
    opt = np.array([mix["mixture"][s] for s in src])
    base = mix.get("baseline")
    b = None if base is None else np.array([base["mixture"][s] for s in src])
    bounds = {"optimum": _interval(mix), "baseline": _interval(base)}
    if draws is not None:
        from ..posterior import predict_intervals

        pts = opt[None] if b is None else np.stack([opt, b])
        iv = predict_intervals(draws, pts)
        bounds = {"optimum": (float(iv.lower[0]), float(iv.upper[0]))}
        if b is not None:
            bounds["baseline"] = (float(iv.lower[1]), float(iv.upper[1]))
    losses = {"optimum": (float(mix["predicted_loss"]),) + bounds["optimum"]}
    if b is not None and base.get("predicted_loss") is not None:
        losses["baseline"] = (float(base["predicted_loss"]),) + bounds["baseline"]
    out = [("mixture", "Optimum against baseline",
            "Proportions per source and predicted aggregate loss at the target (error bars: "
            "posterior intervals when available).", plots.mixture_bars(src, opt, b, losses))]
    per = mix.get("sources") or {}
    num = lambda k: np.array([np.nan if per.get(s, {}).get(k) is None else per[s][k]  # noqa: E731
                              for s in src], float)
    tok = num("tokens")
    if np.isfinite(tok).any():
        out.append(("tokens", "Tokens and epochs per source",
                    "Tokens of each source in the optimum at the target budget, available tokens "
                    "and epochs when the constraints give them.",
                    plots.tokens_bars(src, np.nan_to_num(tok), num("available_tokens"),
                                      num("epochs"), mix.get("unit", "tokens"))))
    return out


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}"
        "pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:85%}"
        "img{max-width:100%}.warn{color:#a33}")


def build_report(model: NestedMixingLaw, target: TargetFit | None = None, *, runs: Any = None,
                 mixture: Mapping[str, Any] | None = None, draws: Any = None,
                 leave_one_out: bool = True, sections: Sequence[Any] = ()) -> Report:
    """Render the report of a fitted model.

    Parameters
    ----------
    model : fitted estimator.
    target : the target-scale stages (size, mixing); None reports the step stage only.
    runs : the :class:`~mixlaws.runs.RunsTable` for data points of the step stage
        (None: each run's last checkpoint only).
    mixture : a MIX.json dict (``mixlaws optimize``) for the optimum/baseline and tokens figures.
    draws : :class:`~mixlaws.posterior.PosteriorDraws` for intervals and sampling diagnostics.
    leave_one_out : add leave-one-mixture-out points to the mixing figure.
    sections : extra sections appended at the end, each with ``html`` (a fragment) and
        ``figures`` (:class:`Figure`), e.g. :func:`mixlaws.design.suggestion_section`.
    """
    model._check_fitted()
    figs: list[tuple[str, str, str, Any]] = []
    resid: list[tuple] = []
    if model.step_ is not None:  # single-checkpoint sweeps have no step curves to draw
        fig, panels = _step_figure(model, target, runs)
        figs.append(("step", "Step stage: loss vs training progress",
                     "Aggregate validation loss per run (points) and fitted step laws (lines), "
                     "one panel per model size; dotted: target D*.", fig))
        resid += panels
    lomo_note = ""
    if target is not None:
        if target.size is not None:
            fig, panel = _size_figure(model, target)
            figs.append(("size", "Size stage: loss vs model size at D*",
                         "Per mixture: step-law losses at D* (points) and the fitted size law; "
                         "dotted: target N*.", fig))
            resid.append(panel)
        w = model.weights_
        obs = _agg(target.stage_losses, w)
        fitted = np.asarray(target.loss(target.mixtures)) if w is None else \
            _agg(np.asarray(target.domain_losses(target.mixtures)), w)
        held = None
        if leave_one_out:
            lo = leave_one_mixture_out(target, model.domains_, delta=model.delta, seed=model.seed)
            if lo is None:
                lomo_note = (f"Leave-one-mixture-out skipped: {len(obs) - 1} mixtures cannot fit "
                             f"the law ({len(model.sources_) + 2} needed).")
            else:
                held = _agg(lo, w)
                err = np.abs(held / obs - 1)
                lomo_note = (f"Leave-one-mixture-out relative error: mean {100 * err.mean():.3f} %,"
                             f" max {100 * err.max():.3f} % over {len(obs)} mixtures.")
        figs.append(("mixing", "Mixing stage: predicted vs observed",
                     "Stage losses of each mixture at the target against the mixing law fitted "
                     "on all mixtures (circles) and on all others (crosses). " + lomo_note,
                     plots.mixing_parity(obs, fitted, held, target.mixture_labels)))
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
    if mixture is not None:
        figs += _mixture_figures(model, mixture, draws)
    figures = tuple(Figure(n, t, c, plots.to_png(f)) for n, t, c, f in figs)

    stages = [s for s in (model.step_, None if target is None else target.size,
                          None if target is None else target.mixing,
                          None if target is None else target.implicit) if s is not None]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>mixlaws report</title>"
             f"<style>{_CSS}</style></head><body><h1>mixlaws report</h1>"]
    if target is not None:
        parts.append(f"<p>Target: N* = {target.params:.6g} parameters, D* = {target.tokens:.6g} "
                     f"{model.progress_}.</p>")
    if mixture is not None:
        gain = mixture.get("gain")
        parts.append(f"<p>Optimum predicted loss {float(mixture['predicted_loss']):.5g}"
                     + (f", gain over baseline {gain:.4g}" if gain is not None else "") + ".</p>")
    for f in figures:
        b64 = base64.b64encode(f.png).decode("ascii")
        parts.append(f"<h2 id='{f.name}'>{html.escape(f.title)}</h2><p>{html.escape(f.caption)}"
                     f"</p><img alt='{f.name}' src='data:image/png;base64,{b64}'>")
    parts.append(f"<h2 id='convergence'>Convergence</h2>{_stage_rows(stages)}")
    diag = list(getattr(draws, "diagnostics", ()) or ())
    parts.append("<h2 id='sampling'>Sampling diagnostics</h2>" + (
        _dict_table(diag) if diag else "<p>No posterior draws in this report.</p>"))
    parts.append("<h2 id='fit-report'>Fit report</h2><pre>"
                 + html.escape(fit_report(model, target)) + "</pre>")
    parts += [sec.html for sec in sections]  # hook: e.g. "What to train next" (mixlaws.design)
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

