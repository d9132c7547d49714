"""Report hook: the proposals table and a figure of how the target optimum's uncertainty shrinks.

For ``mixlaws report`` (wired in by the report module): :func:`suggestion_report` returns the
proposals as a DataFrame and a matplotlib :class:`~matplotlib.figure.Figure` with, against the
cumulative compute of the proposed runs (in the order they were picked), the expected regret of
the target optimum and the posterior spread of its location (mean L1 distance of the ensemble
members' optima from their weighted mean), both under the fantasised outcomes.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ._suggest import Suggestion  # noqa: E402

__all__ = ["suggestion_figure", "suggestion_report"]


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
