"""Plain-text fit reports, in the spirit of :func:`lmfit.fit_report`.

``fit_report(model)`` describes the step stage; ``fit_report(model, target)``
adds the size and mixing stages fitted at a target scale.  Numbers, not
adjectives: law, data and parameter counts, residual statistics (log-residuals
are relative errors), convergence, parameters with standard errors, the
correlations that are expected to be extreme (amplitude with exponent), and
every warning.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..fit import NestedMixingLaw, TargetFit
from ..fit import StageFit

__all__ = ["fit_report", "stage_report"]


def _pm(v: float, e: float) -> str:
    if not np.isfinite(e):
        return f"{v:.6g} (stderr n/a)"
    return f"{v:.6g} ± {e:.2g}"


def columns(header: Sequence[str], rows: Sequence[Sequence[str]], indent: int = 4) -> list[str]:
    """Lines of a text table: the first column left-aligned, the others right-aligned, each as
    wide as its widest cell and two spaces apart (cells never run into each other)."""
    table = [list(header)] + [list(r) for r in rows]
    widths = [max(len(r[j]) for r in table) for j in range(len(header))]
    return [" " * indent + "  ".join([r[0].ljust(widths[0])]
                                     + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]).rstrip()
            for r in table]


def _range(name: str, v: np.ndarray) -> str:
    v = np.asarray(v, float).ravel()
    return (f"    {name:<6} median {np.median(v):.5g}  range [{v.min():.5g}, {v.max():.5g}]")


def stage_report(s: StageFit, *, sources: tuple[str, ...] = ()) -> str:
    """Report of one stage fit."""
    lines = [
        f"[[{s.stage} stage]]  {s.law}",
        f"    fits: {len(s.labels)}   data points: {s.n_data}   free parameters: {s.n_params}",
        f"    converged: {int(s.converged.sum())}/{s.converged.size}   "
        f"at a bound: {int(s.at_bound.sum())}",
        f"    log-residuals: rms {s.rmse:.3e}   max |r| {s.max_abs_residual:.3e}",
    ]
    if s.stage == "step":
        lines.append("  [[parameters over runs]]")
        for k in ("beta", "E", "B"):
            lines.append(_range(k, s.params[k]))
    elif s.stage == "size":
        lines.append("  [[parameters]]")
        a, ae = s.params["alpha"], s.stderr["alpha"]
        ua = np.unique(np.round(a, 12))
        if ua.size <= 3:
            for v in ua:
                i = int(np.flatnonzero(np.isclose(a, v))[0])
                lines.append(f"    alpha  {_pm(a[i], ae[i])}")
        else:
            lines.append(_range("alpha", a))
        lines.append(_range("E", s.params["E"]))
        lines.append(_range("A", s.params["A"]))
    elif s.stage == "mixing" and "a" in s.params:
        K = s.params["a"].shape[1]
        lines.append(f"  [[parameters per domain]]  c, then a_k and t_k for each of the {K} terms "
                     "(t_kj < 0: source j lowers term k)")
        rows = []
        for i, lab in enumerate(s.labels):
            rows.append([lab[:18], _pm(s.params['c'][i], s.stderr['c'][i])] + [""] * len(sources))
            rows += [[f"  term {j + 1}", f"{s.params['a'][i, j]:.4g}"]
                     + [f"{v:.3f}" for v in s.params["t"][i, j]] for j in range(K)]
        lines += columns(["domain", "c / a_k"] + [x[:9] for x in sources], rows)
    elif s.stage == "mixing":
        lines.append("  [[parameters per domain]]  c, k and t_j (t_j < 0: source j helps)")
        lines += columns(["domain", "c", "k"] + [x[:9] for x in sources],
                         [[lab[:18], _pm(s.params["c"][i], s.stderr["c"][i]),
                           _pm(s.params["k"][i], s.stderr["k"][i])]
                          + [f"{v:.3f}" for v in s.params["t"][i]]
                          for i, lab in enumerate(s.labels)])
    elif s.stage == "implicit":
        lines.append(f"    c      {_pm(s.params['c'][0], s.stderr['c'][0])}")
        for j, a in enumerate(s.params["a"][0]):
            t = " ".join(f"{v:.3f}" for v in s.params["t"][0][j])
            lines.append(f"    a_{j + 1:<4} {a:.5g}   t_{j + 1} = [{t}]")
    if s.correlations:
        cs = ", ".join(f"{k} {v:+.3f}" for k, v in s.correlations.items() if np.isfinite(v))
        if cs:
            lines.append(f"  [[median correlations]]  {cs}")
    for w in s.warnings:
        lines.append(f"  WARNING: {w}")
    return "\n".join(lines)


def fit_report(model: NestedMixingLaw, target: TargetFit | None = None) -> str:
    """Text report of a fitted model, and of its target-scale stages when given (any family)."""
    if getattr(model, "family", None) == "auto":
        from ._averaged_text import averaged_fit_report

        return averaged_fit_report(model, target)
    if not isinstance(model, NestedMixingLaw):
        from ._joint_text import joint_fit_report

        return joint_fit_report(model, target)
    model._check_fitted()
    R = model.runs_
    agg = ("implicit, K=%d" % model.implicit if model.implicit is not None else
           "explicit validation weights" if model.val_weights is not None else
           "mean over validation domains")
    lines = [
        "[[mixlaws fit]]",
        f"    table: {model.source_path_}",
        f"    runs: {len(R['run'])}   mixtures: {len(model.mixtures_)}   "
        f"sizes: {', '.join(f'{n:.4g}' for n in np.unique(R['params']))}",
        f"    sources ({len(model.sources_)}): {', '.join(model.sources_)}",
        f"    validation domains ({len(model.domains_)}): {', '.join(model.domains_)}",
        f"    aggregate: {agg}   progress unit: {model.progress_}   "
        f"warm-up dropped: tokens < {model.warmup:g} x last",
    ]
    for n in model.notes_:
        lines.append(f"  NOTE: {n}")
    if model.step_ is not None:
        lines.append(stage_report(model.step_))
    if target is not None:
        lines.append(f"[[target]]  params N* = {target.params:.6g}   tokens D* = {target.tokens:.6g}"
                     f"   mixtures in the mixing stage: {len(target.mixture_labels)}")
        for n in target.notes:
            lines.append(f"  NOTE: {n}")
        if target.size is not None:
            lines.append(stage_report(target.size))
        lines.append(stage_report(target.mixing, sources=model.sources_))
        if target.implicit is not None:
            lines.append(stage_report(target.implicit, sources=model.sources_))
    return "\n".join(lines)
