"""Plain-text report of a joint-family fit (``joint``, ``joint-mix``), like :func:`fit_report`.

Table shape, the law, residuals (log-residuals are relative errors), convergence,
per-domain parameters with standard errors, the amplitude-exponent correlations
(expected near +-1, DESIGN §4) and every warning; with a target, the predicted
aggregate loss of the table's mixtures there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._text import _pm, columns, stage_report

__all__ = ["joint_fit_report"]


def joint_fit_report(model: Any, target: Any = None) -> str:
    """Text report of a fitted joint-family estimator (and of its target, when given)."""
    model._check_fitted()
    R, s = model.runs_, model.fit_
    ckpt = R["n_checkpoints"]
    lines = [
        f"[[mixlaws fit]]  law family: {model.family}",
        f"    table: {model.source_path_}",
        f"    runs: {len(R['run'])}   mixtures: {len(model.mixtures_)}   checkpoints per run "
        f"after warm-up: {int(ckpt.min())}-{int(ckpt.max())}   sizes: "
        f"{', '.join(f'{n:.4g}' for n in np.unique(R['params'])[:8])}"
        f"{' ...' if np.unique(R['params']).size > 8 else ''}",
        f"    sources ({len(model.sources_)}): {', '.join(model.sources_)}",
        f"    validation domains ({len(model.domains_)}): {', '.join(model.domains_)}",
        f"    aggregate: {'explicit validation weights' if model.val_weights else 'mean'}   "
        f"progress unit: {model.progress_}   warm-up dropped: tokens < {model.warmup:g} x last",
    ]
    lines += [f"  NOTE: {n}" for n in model.notes_]
    lines.append(stage_report(s))
    p, e = s.params, s.stderr
    amp = ("A", "B") if "A" in p else ("a", "b")
    names = ("c", "k", amp[0], "alpha", amp[1], "beta")
    lines.append("  [[parameters per domain]]")
    lines += columns(("domain",) + names,
                     [[lab[:18]] + [_pm(float(p[n][i]), float(e[n][i])) if n in e
                                    else f"{float(p[n][i]):.6g}" for n in names]
                      for i, lab in enumerate(s.labels)])
    if "p" in p:
        lines.append("    mixture effects on the size (p) and data (q) amplitudes, per source: "
                     f"max |p| {np.abs(p['p']).max():.3g}, max |q| {np.abs(p['q']).max():.3g}")
    if target is not None:
        L = np.asarray(target.loss(model.mixtures_))
        lines.append(f"[[target]]  params N* = {target.params:.6g}   tokens D* = {target.tokens:.6g}"
                     f"   predicted loss of the table's mixtures: {L.min():.5g}-{L.max():.5g}")
    return "\n".join(lines)
