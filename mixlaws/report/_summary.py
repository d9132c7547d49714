"""The decision summary at the top of the HTML report, for every law family.

:func:`decision` gathers what a lead needs to accept or reject the recommended mixture:
the optimum against the baseline per source, predicted losses with intervals, the gain
with its interval and ``P(optimum beats baseline)``, how far the target's model size,
training tokens and both mixtures lie from the sweep, and the change of every validation
domain.  It uses only the shared target API (:class:`~mixlaws.fit.TargetActions`:
``predict``, ``extrapolation``, ``mixtures``; ``interval`` and ``per_law`` of the averaged
law), so it works for the nested, joint and averaged families alike.

Where the numbers come from, in order:

* the point values (mixtures, predicted losses, gain, the optimum's domain losses,
  extrapolation) are MIX.json's, exactly;
* intervals: the posterior of MIX.json's ``uncertainty`` block (``optimize --objective``),
  else posterior draws (``mixlaws sample``), else the averaged law's structural intervals
  (``--law auto``: each family's backtest error carried to the target); else none, and
  the summary says how to get them.

:func:`summary_html` renders it; every number sits in an element with a ``data-key``
so that tests can parse the summary back and compare it with MIX.json.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..fit import EXTRAPOLATION_WARN

__all__ = ["Decision", "decision", "summary_html", "REPEAT_WARN"]

REPEAT_WARN = 4.0
"""Epochs of a source above which the summary warns (Muennighoff et al. 2023: up to about 4
epochs repeated tokens are worth nearly as much as fresh ones)."""


@dataclass(frozen=True)
class Decision:
    """The numbers of the report's summary (see the module docstring).

    Intervals are ``(lower, upper)`` pairs at ``level``, or None when none is available;
    ``interval_source`` says where they come from.
    """

    sources: tuple[str, ...]
    domains: tuple[str, ...]
    optimum: np.ndarray
    baseline: np.ndarray | None
    loss: float
    base_loss: float | None
    gain: float | None
    objective: str
    level: float
    interval_source: str | None
    loss_interval: tuple[float, float] | None
    base_interval: tuple[float, float] | None
    gain_interval: tuple[float, float] | None
    p_better: float | None
    dom_opt: np.ndarray
    dom_base: np.ndarray | None
    dom_change_interval: np.ndarray | None      # (n_domains, 2) of optimum - baseline
    dom_weights: np.ndarray | None              # aggregation weights (None: implicit)
    scale: dict[str, float]
    ext_opt: dict[str, Any]
    ext_base: dict[str, Any] | None
    active: tuple[str, ...]
    epochs: dict[str, float] = field(default_factory=dict)
    unconstrained: dict[str, Any] | None = None
    family_gains: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def _vec(d: Mapping[str, Any], keys: tuple[str, ...]) -> np.ndarray:
    return np.array([float(d.get(k, 0.0)) for k in keys])


def _scale(target: Any) -> dict[str, float]:
    """Target size and tokens against the largest trained size and the longest run there."""
    R = target.model.runs_
    N, D = np.asarray(R["params"], float), np.asarray(R["last_tokens"], float)
    sizes = np.unique(N)
    near = sizes[np.argmin(np.abs(np.log(sizes) - np.log(target.params)))]
    return {"params": float(target.params), "max_params": float(sizes[-1]),
            "params_ratio": float(target.params / sizes[-1]), "tokens": float(target.tokens),
            "max_tokens": float(D[N == near].max()), "tokens_ratio":
            float(target.tokens / D[N == near].max()), "tokens_at": float(near)}


def _weights(target: Any, nd: int) -> np.ndarray | None:
    w = getattr(target.model, "weights_", None)
    if w is None:
        return None if getattr(target.model, "implicit", None) is not None else np.full(nd, 1 / nd)
    return np.asarray(w, float)


def decision(target: Any, mixture: Mapping[str, Any], *, draws: Any = None,
             level: float = 0.9) -> Decision:
    """The summary's numbers for MIX.json ``mixture`` at ``target`` (any family).

    Parameters
    ----------
    target : a target object (``model.target(N, D)``) of the fit MIX.json was made with.
    mixture : the MIX.json dict.
    draws : :class:`~mixlaws.posterior.PosteriorDraws` at this target, or None.
    level : interval level when the intervals are computed here.
    """
    src, doms = tuple(target.sources), tuple(target.domains)
    opt = _vec(mixture["mixture"], src)
    base_d = mixture.get("baseline") or None
    base = None if base_d is None else _vec(base_d["mixture"], src)
    pts = opt[None] if base is None else np.stack([opt, base])
    dm = mixture.get("domain_losses")
    dom_opt = _vec(dm, doms) if dm else np.asarray(target.predict(pts[:1], per_domain=True)[1][0])
    dom_base = None if base is None else np.asarray(target.predict(base[None],
                                                                   per_domain=True)[1][0])
    ext = mixture.get("extrapolation") or target.extrapolation(opt[None])[0].to_dict()
    ext_base = None if base is None else target.extrapolation(base[None])[0].to_dict()
    unc = mixture.get("uncertainty") or {}
    objective = unc.get("objective") or ("repetition-aware loss" if mixture.get(
        "repetition_aware") else "fitted law's loss")
    iv = dict(source=None, loss_interval=None, base_interval=None, gain_interval=None,
              p_better=None, dom_change_interval=None)
    fam: dict[str, tuple[float, float]] = {}
    notes: list[str] = []
    if draws is not None:
        from ..optimize import compare_to_baseline
        from ..posterior import predict_intervals

        p = predict_intervals(draws, pts, level, seed=draws.seed)
        iv.update(source=f"posterior ({draws.method}, {draws.n_draws} draws), mean law",
                  loss_interval=(float(p.lower[0]), float(p.upper[0])))
        if base is not None:
            c = compare_to_baseline(draws, opt, base, level)
            dd = np.asarray(draws.domain_draws(opt)) - np.asarray(draws.domain_draws(base))
            iv.update(base_interval=(float(p.lower[1]), float(p.upper[1])),
                      gain_interval=(c["gain_lower"], c["gain_upper"]), p_better=c["p_better"],
                      dom_change_interval=np.quantile(dd, [(1 - level) / 2, (1 + level) / 2],
                                                      axis=0).T)
    elif hasattr(target, "interval"):                       # --law auto: structural intervals
        lo, hi = target.interval(pts, level, kind="mean")
        iv.update(source="structural (--law auto: the families' backtest errors at this "
                         "extrapolation distance), mean law",
                  loss_interval=(float(lo[0]), float(hi[0])))
        if base is not None:
            iv["base_interval"] = (float(lo[1]), float(hi[1]))
            per = target.per_law(pts)
            w = dict(zip(target.families, np.asarray(target.law_weights, float)))
            fam = {f: (float(v[1] - v[0]), w[f]) for f, v in per.items()}
            notes.append("The gain's interval needs the joint uncertainty of both mixtures, "
                         "which the structural intervals do not give; the gain of each averaged "
                         "family is shown instead.")
    if unc:                                                  # MIX.json's own posterior summary
        iv["loss_interval"] = (float(unc["lower"]), float(unc["upper"]))
        iv["source"] = f"posterior ({unc.get('posterior')}), as in MIX.json"
        vb = unc.get("versus_baseline")
        if vb:
            iv.update(gain_interval=(float(vb["gain_lower"]), float(vb["gain_upper"])),
                      p_better=float(vb["p_better"]))
        level = float(unc.get("level", level))
    if iv["source"] is None:
        notes.append("No interval: this report has no posterior. Run `mixlaws sample FIT.json "
                     f"--params {target.params:g} --tokens {target.tokens:g}` and rerun "
                     "`mixlaws report FIT.json --mixture MIX.json` (it reads the posterior the "
                     "fit names), or fit with --law auto for structural intervals.")
    return Decision(
        sources=src, domains=doms, optimum=opt, baseline=base,
        loss=float(mixture["predicted_loss"]),
        base_loss=None if base_d is None or base_d.get("predicted_loss") is None
        else float(base_d["predicted_loss"]),
        gain=None if mixture.get("gain") is None else float(mixture["gain"]),
        objective=objective, level=level, interval_source=iv["source"],
        loss_interval=iv["loss_interval"], base_interval=iv["base_interval"],
        gain_interval=iv["gain_interval"], p_better=iv["p_better"], dom_opt=dom_opt,
        dom_base=dom_base, dom_change_interval=iv["dom_change_interval"],
        dom_weights=_weights(target, len(doms)), scale=_scale(target),
        ext_opt=ext, ext_base=ext_base, active=tuple(mixture.get("active_constraints") or ()),
        epochs={s: float(v["epochs"]) for s, v in (mixture.get("sources") or {}).items()
                if v.get("epochs") is not None},
        unconstrained=mixture.get("unconstrained"), family_gains=fam, notes=tuple(notes))


# -- HTML ------------------------------------------------------------------------------------------

def _num(key: str, v: float | None, fmt: str = ".5g") -> str:
    if v is None or not np.isfinite(v):
        return f"<span data-key='{key}'>—</span>"
    return f"<span data-key='{key}'>{v:{fmt}}</span>"


def _iv(key: str, iv: tuple[float, float] | None, fmt: str = ".5g") -> str:
    if iv is None:
        return "<span class='muted'>no interval</span>"
    return f"[{_num(key + '.lower', iv[0], fmt)}, {_num(key + '.upper', iv[1], fmt)}]"


def _ext_text(e: Mapping[str, Any] | None) -> str:
    if e is None:
        return "—"
    out = [f"{html.escape(s)} by {v:.3g}" for s, v in (e.get("excess") or {}).items()]
    return ((", ".join(out) if out else "inside every source's sampled range")
            + f"; hull distance {e.get('hull_distance', float('nan')):.3g}")


def summary_html(d: Decision, unit: str = "tokens", held_out: str | None = None) -> str:
    """The summary section: verdict line, per-source table, losses, gain, extrapolation,
    per-domain changes. ``held_out`` adds the leave-one-mixture-out check (nested fits)."""
    pct = (lambda v: "" if v is None or d.base_loss is None else  # noqa: E731
           f" ({100 * v / d.base_loss:.2f} % of the baseline's loss)")
    lev = f"{100 * d.level:.0f} %"
    head = ["<h2 id='summary'>Summary: recommended mixture</h2>"]
    if d.gain is not None:
        verdict = (f"The recommended mixture is predicted to lower the aggregate loss by "
                   f"{_num('gain', d.gain)}{pct(d.gain)} against the baseline")
        if d.gain_interval is not None:
            verdict += f"; {lev} interval of the gain {_iv('gain', d.gain_interval)}"
        if d.p_better is not None:
            verdict += f"; P(better than the baseline) = {_num('p_better', d.p_better, '.3f')}"
        head.append(f"<p class='verdict'>{verdict}.</p>")
    rows = []
    for j, s in enumerate(d.sources):
        b = "—" if d.baseline is None else _num(f"baseline.{s}", d.baseline[j], ".4f")
        ch = "" if d.baseline is None else _num(f"change.{s}", d.optimum[j] - d.baseline[j], "+.4f")
        ex = (d.ext_opt.get("excess") or {}).get(s)
        ep = "" if not d.epochs else f"<td>{_num(f'epochs.{s}', d.epochs.get(s), '.3g')}</td>"
        rows.append(f"<tr><td>{html.escape(s)}</td><td>{_num(f'optimum.{s}', d.optimum[j], '.4f')}"
                    f"</td><td>{b}</td><td>{ch}</td>{ep}<td>{'' if ex is None else f'{ex:.3g}'}"
                    "</td></tr>")
    head.append("<table class='summary'><tr><th>source</th><th>recommended</th><th>baseline</th>"
                "<th>change</th>" + ("<th>epochs</th>" if d.epochs else "")
                + "<th>outside sampled range by</th></tr>" + "".join(rows) + "</table>")
    many = {s: e for s, e in d.epochs.items() if e > REPEAT_WARN}
    if many:
        head.append("<p class='warn'>Repeated data: " + ", ".join(
            f"{html.escape(s)} {e:.3g} epochs" for s, e in many.items()) + f" (beyond "
            f"{REPEAT_WARN:g} epochs repeated tokens are worth less, Muennighoff et al. 2023"
            + ("" if d.objective.startswith("repetition") else
               "; this optimum values them as fresh tokens: see --repetition-aware") + ").</p>")
    src = ("" if d.interval_source is None else
           f"<p class='muted'>Intervals ({lev}): {html.escape(d.interval_source)}.</p>")
    loss_rows = [f"<tr><td>recommended</td><td>{_num('loss', d.loss)}</td>"
                 f"<td>{_iv('loss', d.loss_interval)}</td></tr>"]
    if d.baseline is not None:
        loss_rows.append(f"<tr><td>baseline</td><td>{_num('base_loss', d.base_loss)}</td>"
                         f"<td>{_iv('base_loss', d.base_interval)}</td></tr>")
        loss_rows.append(f"<tr><td>gain (baseline − recommended)</td><td>{_num('gain', d.gain)}"
                         f"</td><td>{_iv('gain', d.gain_interval)}"
                         + ("" if d.p_better is None else
                            f"; P(better) {_num('p_better', d.p_better, '.3f')}") + "</td></tr>")
    head.append(f"<h3>Predicted aggregate loss at the target ({html.escape(d.objective)})</h3>"
                "<table class='summary'><tr><th></th><th>predicted</th>"
                f"<th>{lev} interval</th></tr>{''.join(loss_rows)}</table>{src}")
    head += [f"<p class='warn'>{html.escape(n)}</p>" for n in d.notes]
    if d.family_gains:
        fr = "".join(f"<tr><td>{html.escape(f)}</td><td>{w:.3f}</td><td>"
                     f"{_num(f'family_gain.{f}', g)}</td></tr>" for f, (g, w) in d.family_gains.items())
        head.append("<table class='summary'><tr><th>family</th><th>weight</th><th>gain</th></tr>"
                    f"{fr}</table>")
    sc = d.scale
    head.append(
        "<h3>How far the prediction extrapolates</h3><ul>"
        f"<li>model size: N* = {_num('scale.params', sc['params'], '.4g')} is "
        f"{_num('scale.params_ratio', sc['params_ratio'], '.3g')}× the largest trained size "
        f"({sc['max_params']:.4g})</li>"
        f"<li>training {html.escape(unit)}: D* = {_num('scale.tokens', sc['tokens'], '.4g')} is "
        f"{_num('scale.tokens_ratio', sc['tokens_ratio'], '.3g')}× the longest run at "
        f"N = {sc['tokens_at']:.4g} ({sc['max_tokens']:.4g})</li>"
        f"<li>recommended mixture: {_ext_text(d.ext_opt)} "
        f"(<span data-key='ext.hull_distance' hidden>{d.ext_opt.get('hull_distance', 0):.6g}</span>"
        f"largest range excess {_num('ext.max_excess', d.ext_opt.get('max_excess', 0.0), '.3g')})</li>"
        + ("" if d.ext_base is None else f"<li>baseline: {_ext_text(d.ext_base)}</li>")
        + (f"<li>{html.escape(held_out)}</li>" if held_out else "")
        + ("" if not d.unconstrained else
           "<li>without the trust region (max_extrapolation) the optimum would be "
           + html.escape(", ".join(f"{s}={v:.3f}" for s, v in d.unconstrained["mixture"].items()))
           + f" at predicted loss {_num('unconstrained.loss', d.unconstrained['predicted_loss'])}"
           f" ({_ext_text(d.unconstrained.get('extrapolation'))})</li>") + "</ul>")
    if d.ext_opt.get("max_excess", 0.0) > EXTRAPOLATION_WARN:
        head.append("<p class='warn'>The recommended mixture lies outside the range of mixtures "
                    "the sweep sampled (" + _ext_text(d.ext_opt) + "): the mixing law is "
                    "extrapolated there. Set max_extrapolation in the constraints (or "
                    "--max-extrapolation) to keep it near the sweep, or train a run near it.</p>")
    if d.active:
        head.append("<p>Active constraints: " + ", ".join(html.escape(a) for a in d.active)
                    + ".</p>")
    head.append(_domain_table(d, lev))
    return "\n".join(head)


def _domain_table(d: Decision, lev: str) -> str:
    rows = []
    for i, dom in enumerate(d.domains):
        b = "—" if d.dom_base is None else _num(f"domain_base.{dom}", d.dom_base[i])
        ch = "" if d.dom_base is None else _num(f"domain_change.{dom}", d.dom_opt[i] - d.dom_base[i],
                                                 "+.4g")
        civ = "" if d.dom_change_interval is None else _iv(f"domain_change.{dom}",
                                                           tuple(d.dom_change_interval[i]), "+.4g")
        wt = "" if d.dom_weights is None else f"<td>{d.dom_weights[i]:.3f}</td>"
        cls = "" if d.dom_base is None else (" class='better'" if d.dom_opt[i] < d.dom_base[i]
                                             else " class='worse'")
        rows.append(f"<tr{cls}><td>{html.escape(dom)}</td>{wt}"
                    f"<td>{_num(f'domain.{dom}', d.dom_opt[i])}</td>"
                    f"<td>{b}</td><td>{ch}</td><td>{civ}</td></tr>")
    n_worse = 0 if d.dom_base is None else int(np.sum(d.dom_opt > d.dom_base))
    return ("<h3>Per validation domain (negative change: the recommended mixture is better)</h3>"
            + ("" if d.dom_base is None else
               f"<p>{len(d.domains) - n_worse} of {len(d.domains)} domains improve, "
               f"{n_worse} get worse.</p>")
            + "<table class='summary'><tr><th>domain</th>"
            + ("" if d.dom_weights is None else "<th>weight</th>")
            + "<th>recommended</th><th>baseline</th>"
            f"<th>change</th><th>{lev} interval of the change</th></tr>{''.join(rows)}</table>")
