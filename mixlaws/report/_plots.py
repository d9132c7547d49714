"""Matplotlib figures of the report (Agg canvas, no pyplot global state).

Every function takes plain arrays and returns a :class:`matplotlib.figure.Figure`;
:func:`to_png` renders one to PNG bytes.  The data assembly lives in
:mod:`mixlaws.report`.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg", force=False)
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter, NullLocator  # noqa: E402

__all__ = ["to_png", "step_curves", "size_curves", "mixing_parity", "residuals_plot",
           "tokens_bars"]


def _figure(n_panels: int = 1, *, width: float = 5.0, height: float = 3.6,
            ncols: int | None = None) -> tuple[Figure, np.ndarray]:
    ncols = min(n_panels, 2) if ncols is None else ncols
    nrows = int(np.ceil(n_panels / ncols))
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def to_png(fig: Figure, dpi: int = 90) -> bytes:
    """PNG bytes of ``fig``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def step_curves(groups: Sequence[tuple[str, Sequence[tuple]]], target_tokens: float | None,
                unit: str, level: float | None = None) -> Figure:
    """Loss vs tokens per run: points = data, lines = fitted ``E + B D^-beta`` (aggregated).

    Parameters
    ----------
    groups : one panel per ``(title, runs)``; each run is ``(D_data, L_data, D_grid, L_fit)``
        or ``(D_data, L_data, D_grid, L_fit, lower, upper)`` with a band on the grid
        (arrays may be empty: no runs table, no step law, no band).
    target_tokens : drawn as a vertical line when given.
    unit : progress unit (``"tokens"`` or ``"step"``) for the x label.
    level : the bands' level, for the legend (None: no bands).
    """
    fig, axes = _figure(len(groups))
    for ax, (title, runs) in zip(axes, groups):
        for i, run in enumerate(runs):
            Dd, Ld, Dg, Lg = run[:4]
            col = f"C{i % 10}"
            if len(run) > 4 and run[4] is not None and len(run[4]):
                ax.fill_between(Dg, run[4], run[5], color=col, alpha=0.18, lw=0)
            if len(Dd):
                ax.plot(Dd, Ld, "o", ms=3, color=col)
            if len(Dg):
                ax.plot(Dg, Lg, "-", lw=1, color=col)
        if target_tokens:
            ax.axvline(target_tokens, color="k", ls=":", lw=1, label="target D*")
        if level is not None:
            ax.fill_between([], [], [], color="0.5", alpha=0.3,
                            label=f"{100 * level:.0f} % band (point fit)")
        if target_tokens or level is not None:
            ax.legend(fontsize=7)
        ax.set(xscale="log", xlabel=unit, ylabel="aggregate loss", title=title)
    return fig


def size_curves(curves: Sequence[tuple], target_params: float, level: float | None = None,
                ncols: int = 4) -> Figure:
    """Loss vs model size at the target tokens, one small panel per mixture (every mixture).

    ``curves`` holds ``(label, N_data, L_data, N_grid, L_fit)`` or, with a band,
    ``(label, N_data, L_data, N_grid, L_fit, lower, upper)`` per mixture; the panels share
    their axes so that mixtures compare at a glance.
    """
    n = len(curves)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    height = 2.2 * nrows + 0.9
    fig = Figure(figsize=(3.0 * ncols, height))   # fixed margins: constrained layout is slow
    FigureCanvasAgg(fig)                          # for many panels
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.55 / height, top=1 - 0.7 / height,
                        wspace=0.08, hspace=0.32)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    ys = [np.concatenate([np.atleast_1d(c[2]), np.atleast_1d(c[4])]
                         + [np.atleast_1d(v) for v in c[5:] if v is not None]) for c in curves]
    lo, hi = float(np.nanmin(np.concatenate(ys))), float(np.nanmax(np.concatenate(ys)))
    pad = 0.04 * (hi - lo or 1.0)
    for k, (ax, c) in enumerate(zip(axes, curves)):
        lab, Nd, Ld, Ng, Lg = c[:5]
        if len(c) > 5 and c[5] is not None:
            ax.fill_between(Ng, c[5], c[6], color="C0", alpha=0.2, lw=0)
        ax.plot(Ng, Lg, "-", lw=1.2, color="C0")
        if len(c) > 5 and c[5] is not None and np.isclose(Ng[-1], target_params):
            ax.errorbar([Ng[-1]], [Lg[-1]], yerr=[[Lg[-1] - c[5][-1]], [c[6][-1] - Lg[-1]]],
                        fmt="D", ms=3, color="C0", capsize=3)     # the band at N*, visible
        ax.plot(Nd, Ld, "o", ms=4, color="k")
        ax.axvline(target_params, color="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())   # ticks are costly objects x 16+ panels
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(f"{lab}: {Lg[-1]:.4g} at N*", fontsize=9)
        ax.tick_params(labelsize=7, labelbottom=k + ncols >= n)  # x labels where none below
        if k % ncols == 0:
            ax.set_ylabel("loss at D*", fontsize=8)
        if k + ncols >= n:
            ax.set_xlabel("parameters N", fontsize=8)
    fig.suptitle(f"size stage: all {n} mixtures (dotted: target N*"
                 + (f"; band: {100 * level:.0f} % of the point fit)" if level else ")"), fontsize=10)
    return fig


def mixing_parity(observed: np.ndarray, fitted: np.ndarray, held_out: np.ndarray | None,
                  labels: Sequence[str],
                  marks: Mapping[str, tuple[float, float | None, float | None]] | None = None
                  ) -> Figure:
    """Predicted vs observed stage losses of the mixing law (fit and leave-one-mixture-out).

    ``marks`` maps a name (``"recommended"``, ``"baseline"``) to its predicted loss and
    interval; they have no observed loss, so they are drawn as horizontal lines (bands) on
    the prediction axis.
    """
    fig, (ax,) = _figure(1, width=6.0, height=5.0)
    ax.plot(observed, fitted, "o", ms=5, label="fit (all mixtures)")
    if held_out is not None:
        ok = np.isfinite(held_out)
        ax.plot(observed[ok], held_out[ok], "x", ms=6, color="C3",
                label="held out")
    allv = [observed, fitted] + ([held_out[np.isfinite(held_out)]] if held_out is not None else [])
    for v, a, b in (marks or {}).values():
        allv.append(np.array([x for x in (v, a, b) if x is not None]))
    allv = np.concatenate(allv)
    lo, hi = float(np.min(allv)), float(np.max(allv))
    pad = 0.05 * (hi - lo or abs(hi) or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k-", lw=0.8)
    for k, (name, (v, a, b)) in enumerate((marks or {}).items()):
        col = {"recommended": "C2", "baseline": "C1"}.get(name, f"C{k + 4}")
        if a is not None and b is not None:
            ax.axhspan(a, b, color=col, alpha=0.15, lw=0)
        ax.axhline(v, color=col, ls="--", lw=1.2, label=f"{name} (predicted)")
    ax.set(xlabel="stage loss (from the size/step laws)", ylabel="mixing-law prediction",
           title=f"mixing stage, {len(labels)} mixtures", aspect="equal",
           xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad))
    ax.legend(fontsize=8, loc="lower right")
    return fig


def residuals_plot(panels: Sequence[tuple[str, np.ndarray, np.ndarray, str, bool]]) -> Figure:
    """Log-residuals ``log(pred) - log(obs)`` per stage: ``(title, x, residuals, xlabel, logx)``."""
    fig, axes = _figure(len(panels), height=3.0)
    for ax, (title, x, r, xlabel, logx) in zip(axes, panels):
        ax.axhline(0.0, color="k", lw=0.8)
        ax.plot(x, r, "o", ms=3)
        ax.set(title=title, xlabel=xlabel, ylabel="log-residual", xscale="log" if logx else "linear")
        if logx:
            ax.xaxis.set_minor_formatter(NullFormatter())
    return fig


def tokens_bars(sources: Sequence[str], tokens: np.ndarray, available: np.ndarray | None,
                epochs: np.ndarray | None, unit: str) -> Figure:
    """Tokens per source of the optimum (and available tokens); epochs annotated."""
    fig, (ax,) = _figure(1, width=7.0)
    x = np.arange(len(sources))
    ax.bar(x, tokens, 0.6, label=f"{unit} of the optimum")
    if available is not None and np.isfinite(available).any():
        ax.plot(x, available, "_", ms=30, mew=2, color="C3", label="available")
    if epochs is not None:
        for xi, t, e in zip(x, tokens, epochs):
            if np.isfinite(e):
                ax.annotate(f"{e:.2f} ep", (xi, t), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, list(sources), rotation=45, ha="right", fontsize=8)
    vals = np.concatenate([tokens, [] if available is None else available])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if vals.size and vals.max() > 30 * vals.min():     # available tokens dwarf the shares
        ax.set_yscale("log")
    ax.set(ylabel=unit, title=f"{unit} and epochs per source")
    ax.legend(fontsize=8)
    return fig
