"""Report hook: the proposals table and a figure of how the target optimum's uncertainty shrinks.

:func:`suggestion_report` returns the proposals as a DataFrame and a matplotlib
:class:`~matplotlib.figure.Figure` with, against the cumulative compute of the proposed runs
(in the order they were picked), the expected regret of the target optimum and the posterior
spread of its location (mean L1 distance of the ensemble members' optima from their weighted
mean), both under the fantasised outcomes.  :func:`suggestion_section` renders both as the
"What to train next" section that ``mixlaws report``/``run --suggest-budget`` append at the end
of the HTML report (``build_report(..., sections=[...])``).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg", force=False)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..report import Figure as ReportFigure  # noqa: E402
from ..report import to_png  # noqa: E402
from ._suggest import Suggestion  # noqa: E402

__all__ = ["suggestion_figure", "suggestion_report", "SuggestionSection", "suggestion_section"]


def suggestion_figure(s: Suggestion) -> Figure:
    """Expected regret and optimum spread at the target against the proposals' cumulative FLOPs."""
    fig = Figure(figsize=(9.0, 3.4))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    if s.regret_before is None:
        for ax in (ax1, ax2):
            ax.text(0.5, 0.5, "target not predictable yet:\nproposals follow the design rule",
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return fig
    x = np.array([0.0] + [p[0] for p in s.path])
    reg = np.array([s.regret_before] + [p[1] for p in s.path])
    spr = np.array([s.spread_before] + [p[2] for p in s.path])
    ax1.plot(x, reg, "o-")
    ax1.set_xlabel("cumulative FLOPs of the proposals")
    ax1.set_ylabel("expected regret at target (nats)")
    ax2.plot(x, spr, "o-", color="C1")
    ax2.set_xlabel("cumulative FLOPs of the proposals")
    ax2.set_ylabel("spread of the optimum (mean L1)")
    for ax in (ax1, ax2):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.suptitle(f"How the proposed runs would shrink the uncertainty of the optimum at "
                 f"N*={s.target[0]:.3g}, D*={s.target[1]:.3g}", fontsize=9)
    fig.tight_layout()
    return fig


def suggestion_report(s: Suggestion) -> tuple[pd.DataFrame, Figure]:
    """The proposals table (a copy) and :func:`suggestion_figure`."""
    return s.proposals.copy(), suggestion_figure(s)


@dataclass(frozen=True)
class SuggestionSection:
    """An HTML report section: the ``html`` fragment (figure embedded) and its ``figures``."""

    html: str
    figures: tuple[ReportFigure, ...]


def _mix_text(sources, row) -> str:
    r = np.array([float(row[f"mix:{s}"]) for s in sources])
    order = np.argsort(-r)
    return ", ".join(f"{sources[j]} {r[j]:.3f}" for j in order if r[j] >= 5e-4)


def suggestion_section(s: Suggestion) -> SuggestionSection:
    """The "What to train next" section: the proposals, the regret before/after and the figure."""
    png = to_png(suggestion_figure(s))
    fig = ReportFigure("suggest", "What to train next",
                       "Expected regret and spread of the target optimum as the proposed runs "
                       "are added (fantasised outcomes).", png)
    P = s.proposals
    head = ("<tr><th>#</th><th>params</th><th>tokens</th><th>mixture</th><th>FLOPs</th>"
            "<th>value (nats/FLOP)</th><th>why</th></tr>")
    rows = "".join(
        f"<tr><td>{i + 1}</td><td>{rec['params']:.4g}</td><td>{rec['tokens']:.4g}</td>"
        f"<td>{html.escape(_mix_text(s.sources, rec))}</td><td>{rec['flops']:.3g}</td>"
        f"<td>{rec['value']:.3g}</td><td>{html.escape(str(rec['reason']))}</td></tr>"
        for i, rec in enumerate(P.to_dict("records")))
    if s.regret_before is None:
        summary = ("The target cannot be predicted from this table yet: the runs below follow "
                   "the design rule (space-filling mixtures, then second sizes).")
    else:
        summary = (f"{len(P)} runs, {P['flops'].sum():.3g} of {s.budget:.3g} FLOPs; expected "
                   f"regret of the target optimum {s.regret_before:.3g} → {s.regret_after:.3g} "
                   f"nats, spread of its location {s.spread_before:.3g} → {s.spread_after:.3g} "
                   f"(mean L1). Criterion: {s.criterion}; laws {', '.join(s.laws)}.")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in s.notes)
    b64 = base64.b64encode(png).decode("ascii")
    body = (f"<h2 id='suggest'>What to train next</h2><p>{html.escape(summary)}</p>"
            f"<table>{head}{rows}</table><p>{html.escape(fig.caption)}</p>"
            f"<img alt='suggest' src='data:image/png;base64,{b64}'>"
            + (f"<ul>{notes}</ul>" if notes else ""))
    return SuggestionSection(body, (fig,))
