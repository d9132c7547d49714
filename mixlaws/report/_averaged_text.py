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
        lines.append(f"    {f:12s} {w:8.4f}")
    lines.append(f"  stacked prediction's discrepancy: {model.stacked_discrepancy_!r} "
                 f"(mixture-space widening kappa = {model.kappa_:.4g})")
    lines.append("[[backtests]]")
    lines.append(model.backtest_.summary())
    if target is not None:
        lines.append(f"[[target]]  params = {target.params:.6g}, tokens = {target.tokens:.6g}, "
                     f"extrapolation distance u = {target.u:.3g}")
        lines.append(f"    stacked      discrepancy at u: bias {target.bias:+.4f}, sd "
                     f"{target.sd:.4f} (log-loss; the intervals')")
        for f in target.families:
            q = model.discrepancy_[f].predict(target.dN, target.dD)
            lines.append(f"    {f:12s} discrepancy at u: bias {float(q['bias']):+.4f}, sd "
                         f"{float(q['sd']):.4f} (log-loss; its own backtests)")
    for f, m in model.members_.items():
        lines.append(f"[[member: {f}]]")
        sub = None if target is None else target.members[target.families.index(f)]
        lines.append(fit_report(m, sub))
    return "\n".join(lines)
