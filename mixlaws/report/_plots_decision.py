"""Figures of the report's decision: the mixture against the baseline, per-domain changes.

Dot plots with interval whiskers (no bars: a bar on a truncated loss axis exaggerates the
difference it shows).  Plain arrays in, a :class:`matplotlib.figure.Figure` out.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ._plots import _figure

__all__ = ["decision_dots", "domain_changes"]

Interval = tuple[float, float | None, float | None]
"""``(value, lower, upper)``; the bounds are None when no interval is available."""


def _whisker(ax, y: float, v: float, lo: float | None, hi: float | None, color: str,
             marker: str = "o", label: str | None = None) -> None:
    if lo is not None and hi is not None:
        ax.plot([lo, hi], [y, y], "-", lw=2.5, color=color, alpha=0.6, solid_capstyle="butt")
    ax.plot([v], [y], marker, ms=8, color=color, label=label)


def decision_dots(sources: Sequence[str], optimum: np.ndarray, baseline: np.ndarray | None,
                  losses: Mapping[str, Interval], gain: Interval | None, level: float) -> Figure:
    """Shares per source (optimum vs baseline), predicted losses and the gain, as dot plots.

    ``losses`` maps ``"recommended"``/``"baseline"`` to ``(loss, lower, upper)``; ``gain`` is
    the baseline's loss minus the optimum's with its interval (None without a baseline).
    """
    n = 2 + (gain is not None)
    fig, axes = _figure(n, width=4.6, height=max(2.6, 0.42 * len(sources) + 1.2), ncols=n)
    a1 = axes[0]
    y = np.arange(len(sources))[::-1]
    if baseline is not None:
        for yi, o, b in zip(y, optimum, baseline):
            a1.plot([b, o], [yi, yi], "-", color="0.75", lw=1)
        a1.plot(baseline, y, "s", ms=7, color="C1", label="baseline")
    a1.plot(optimum, y, "o", ms=8, color="C0", label="recommended")
    a1.set_yticks(y, list(sources), fontsize=9)
    a1.set(xlabel="share of training tokens", title="mixture", xlim=(-0.02, None))
    a1.grid(axis="x", alpha=0.3)
    a1.legend(fontsize=8, loc="best")
    a2 = axes[1]
    names = list(losses)
    cols = {"recommended": "C0", "baseline": "C1"}
    for i, nm in enumerate(names):
        v, lo, hi = losses[nm]
        _whisker(a2, len(names) - 1 - i, v, lo, hi, cols.get(nm, f"C{i}"),
                 "o" if nm == "recommended" else "s")
    a2.set_yticks(np.arange(len(names))[::-1], names, fontsize=9)
    a2.set_ylim(-0.6, len(names) - 0.4)
    has_iv = any(losses[nm][1] is not None for nm in names)
    a2.set(xlabel="predicted aggregate loss", title="predicted loss at the target"
           + (f"\n(lines: {100 * level:.0f} % intervals)" if has_iv else "\n(no intervals)"))
    a2.grid(axis="x", alpha=0.3)
    if gain is not None:
        a3 = axes[2]
        v, lo, hi = gain
        a3.axvline(0.0, color="k", lw=0.8)
        _whisker(a3, 0, v, lo, hi, "C2")
        a3.set_yticks([0], ["gain"], fontsize=9)
        a3.set_ylim(-0.6, 0.6)
        lo_x = min(0.0, v if lo is None else lo)
        hi_x = max(0.0, v if hi is None else hi)
        pad = 0.15 * (hi_x - lo_x or abs(v) or 1e-3)
        a3.set_xlim(lo_x - pad, hi_x + pad)
        a3.set(xlabel="baseline loss − recommended loss", title="gain (> 0: recommended better)"
               + ("" if lo is None else f"\n{100 * level:.0f} % interval"))
        a3.grid(axis="x", alpha=0.3)
    return fig


def domain_changes(domains: Sequence[str], change: np.ndarray, interval: np.ndarray | None,
                   level: float) -> Figure:
    """Per validation domain: predicted loss of the optimum minus the baseline's (dots, whiskers).

    ``interval`` is ``(n_domains, 2)`` or None.
    """
    fig, (ax,) = _figure(1, width=7.0, height=max(2.4, 0.3 * len(domains) + 1.2))
    y = np.arange(len(domains))[::-1]
    ax.axvline(0.0, color="k", lw=0.8)
    col = np.where(change < 0, "C2", "C3")
    if interval is not None:
        for yi, (lo, hi), c in zip(y, interval, col):
            ax.plot([lo, hi], [yi, yi], "-", lw=2.5, color=c, alpha=0.5, solid_capstyle="butt")
    ax.scatter(change, y, s=36, c=list(col), zorder=3)
    ax.set_yticks(y, list(domains), fontsize=8 if len(domains) > 12 else 9)
    ax.set_ylim(-0.7, len(domains) - 0.3)
    ax.set(xlabel="recommended − baseline (predicted loss; < 0: better)",
           title="change per validation domain"
           + (f" ({100 * level:.0f} % intervals)" if interval is not None else " (no intervals)"))
    ax.grid(axis="x", alpha=0.3)
    return fig
