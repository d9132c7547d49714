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

__all__ = ["to_png", "step_curves", "size_curves", "mixing_parity", "residuals_plot",
           "mixture_bars", "tokens_bars"]


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


def step_curves(groups: Sequence[tuple[str, Sequence[tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                np.ndarray]]]],
                target_tokens: float | None, unit: str) -> Figure:
    """Loss vs tokens per run: points = data, lines = fitted ``E + B D^-beta`` (aggregated).

    Parameters
    ----------
    groups : one panel per ``(title, runs)``; each run is ``(D_data, L_data, D_grid, L_fit)``
        (data arrays may be empty when the runs table is unavailable).
    target_tokens : drawn as a vertical line when given.
    unit : progress unit (``"tokens"`` or ``"step"``) for the x label.
    """
    fig, axes = _figure(len(groups))
    for ax, (title, runs) in zip(axes, groups):
        for i, (Dd, Ld, Dg, Lg) in enumerate(runs):
            col = f"C{i % 10}"
            if len(Dd):
                ax.plot(Dd, Ld, "o", ms=3, color=col)
            if len(Dg):
                ax.plot(Dg, Lg, "-", lw=1, color=col)
        if target_tokens:
            ax.axvline(target_tokens, color="k", ls=":", lw=1, label="target D*")
            ax.legend(fontsize=7)
        ax.set(xscale="log", xlabel=unit, ylabel="aggregate loss", title=title)
    return fig


def size_curves(curves: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                target_params: float, max_lines: int = 12) -> Figure:
    """Loss vs model size per mixture at the target tokens: points (stage data) and fitted law.

    ``curves`` holds ``(label, N_data, L_data, N_grid, L_fit)`` per mixture; at most
    ``max_lines`` are drawn (evenly spaced over the list).
    """
    fig, (ax,) = _figure(1, width=7.0, height=4.5)
    pick = np.unique(np.linspace(0, len(curves) - 1, min(len(curves), max_lines)).astype(int))
    for i, j in enumerate(pick):
        lab, Nd, Ld, Ng, Lg = curves[j]
        ax.plot(Nd, Ld, "o", ms=4, color=f"C{i % 10}")
        ax.plot(Ng, Lg, "-", lw=1, color=f"C{i % 10}", label=lab)
    ax.axvline(target_params, color="k", ls=":", lw=1)
    ax.set(xscale="log", xlabel="parameters N", ylabel="aggregate loss at D*",
           title=f"size stage ({len(pick)} of {len(curves)} mixtures)")
    ax.legend(fontsize=6, ncols=2)
    return fig


def mixing_parity(observed: np.ndarray, fitted: np.ndarray, held_out: np.ndarray | None,
                  labels: Sequence[str]) -> Figure:
    """Predicted vs observed stage losses of the mixing law (fit and leave-one-mixture-out)."""
    fig, (ax,) = _figure(1, width=5.5, height=5.0)
    ax.plot(observed, fitted, "o", ms=5, label="fit (all mixtures)")
    if held_out is not None:
        ok = np.isfinite(held_out)
        ax.plot(observed[ok], held_out[ok], "x", ms=6, color="C3",
                label="leave-one-mixture-out")
    allv = np.concatenate([observed, fitted] + ([held_out[np.isfinite(held_out)]]
                                                if held_out is not None else []))
    lo, hi = float(np.min(allv)), float(np.max(allv))
    pad = 0.05 * (hi - lo or abs(hi) or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k-", lw=0.8)
    ax.set(xlabel="stage loss (from the size/step laws)", ylabel="mixing-law prediction",
           title=f"mixing stage, {len(labels)} mixtures", aspect="equal")
    ax.legend(fontsize=8)
    return fig


def residuals_plot(panels: Sequence[tuple[str, np.ndarray, np.ndarray, str, bool]]) -> Figure:
    """Log-residuals ``log(pred) - log(obs)`` per stage: ``(title, x, residuals, xlabel, logx)``."""
    fig, axes = _figure(len(panels), height=3.0)
    for ax, (title, x, r, xlabel, logx) in zip(axes, panels):
        ax.axhline(0.0, color="k", lw=0.8)
        ax.plot(x, r, "o", ms=3)
        ax.set(title=title, xlabel=xlabel, ylabel="log-residual", xscale="log" if logx else "linear")
    return fig


def mixture_bars(sources: Sequence[str], optimum: np.ndarray, baseline: np.ndarray | None,
                 losses: Mapping[str, tuple[float, float | None, float | None]]) -> Figure:
    """Optimum against baseline: proportions per source, and predicted losses with intervals.

    ``losses`` maps a name (``"optimum"``, ``"baseline"``) to ``(loss, lower, upper)``;
    the bounds are drawn as error bars when not None.
    """
    fig, (a1, a2) = _figure(2, width=5.0)
    x = np.arange(len(sources))
    w = 0.4 if baseline is not None else 0.8
    a1.bar(x - (w / 2 if baseline is not None else 0), optimum, w, label="optimum")
    if baseline is not None:
        a1.bar(x + w / 2, baseline, w, label="baseline")
    a1.set_xticks(x, list(sources), rotation=45, ha="right", fontsize=8)
    a1.set(ylabel="proportion", title="mixture")
    a1.legend(fontsize=8)
    names = list(losses)
    vals = np.array([losses[n][0] for n in names])
    err = np.array([[v - (losses[n][1] if losses[n][1] is not None else v),
                     (losses[n][2] if losses[n][2] is not None else v) - v]
                    for n, v in zip(names, vals)]).T.clip(min=0.0)  # point may sit outside
    a2.bar(names, vals, color=[f"C{i}" for i in range(len(names))],
           yerr=err if np.any(err > 0) else None, capsize=6)
    span = vals.max() - vals.min() if len(vals) > 1 else 0.0
    pad = max(span, float(np.abs(err).max()) if err.size else 0.0, 1e-3 * vals.max())
    a2.set_ylim(vals.min() - 2 * pad, vals.max() + 2 * pad)
    a2.set(ylabel="predicted loss", title="predicted loss at the target"
           + (" (with intervals)" if np.any(err > 0) else ""))
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
    ax.set(ylabel=unit, title=f"{unit} and epochs per source")
    ax.legend(fontsize=8)
    return fig
