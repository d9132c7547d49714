"""Plain-text report of a model-averaged fit (``--law auto``): weights, backtests, members."""

from __future__ import annotations

from typing import Any

__all__ = ["averaged_fit_report"]


def averaged_fit_report(model: Any, target: Any = None) -> str:
    """Weights and backtest table of an :class:`~mixlaws.AveragedMixingLaw`, then each member's
    own report; with a target, each family's prediction of the fitted mixtures there."""
    from ._text import fit_report

    model._check_fitted()
    lines = ["[[mixlaws fit]]  law family: auto (stacking of "
             f"{', '.join(model.members_)} on the sweep's own backtests; method {model.method})"]
    lines += [f"  NOTE: {n}" for n in model.notes_]
    lines.append("  weights (stacking of leave-one-fold-out predictive densities):")
    for f, w in model.law_weights_.items():
        k = model.kappa_.get(f, 0.0)
        lines.append(f"    {f:12s} {w:8.4f}   mixture-space widening kappa = {k:.4g}")
    lines.append("[[backtests]]")
    lines.append(model.backtest_.summary())
    if target is not None:
        lines.append(f"[[target]]  params = {target.params:.6g}, tokens = {target.tokens:.6g}, "
                     f"extrapolation distance u = {target.u:.3g}")
        for f, b, s in zip(target.families, target.bias, target.sd):
            lines.append(f"    {f:12s} discrepancy at u: bias {b:+.4f}, sd {s:.4f} (log-loss)")
    for f, m in model.members_.items():
        lines.append(f"[[member: {f}]]")
        sub = None if target is None else target.members[target.families.index(f)]
        lines.append(fit_report(m, sub))
    return "\n".join(lines)
