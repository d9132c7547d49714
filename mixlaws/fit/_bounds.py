"""The warning of a stage fit with parameters on their box bounds: which, where, and whether
it matters.

A count ("a parameter is at its bound in 51 fits") cannot be acted on.  :func:`bound_warning`
names the parameter kind, the bound and what it is (the smallest observed loss, an
exponent's range), the fits and domains concerned, what sitting there says about the data,
and compares the residuals of those fits with the others' to say whether the bound costs fit
quality.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ._engine import GroupSolution

__all__: list[str] = []

_BOUNDS = {   # what each bound of a parameter kind means, and what sitting on it says
    "E": ("0", "the smallest observed loss",
          "asymptote not identified: the losses look like a pure power law",
          "asymptote held at the smallest observed loss: the losses stop falling at the last "
          "checkpoints, and the extrapolation cannot go below the losses already seen"),
    "B": ("0", "100× the largest loss", "no decrease with training", "amplitude at its cap"),
    "beta": ("1e-3", "3", "exponent at its floor (a flat curve)", "exponent at its cap"),
    "A": ("its floor", "100× the largest loss", "no decrease with size", "amplitude at its cap"),
    "alpha": ("1e-3", "2", "exponent at its floor (no gain with size)", "exponent at its cap"),
    "c": ("0", "the smallest loss of the domain",
          "the law's floor is not identified by these mixtures",
          "the law's floor is held at the best mixture's loss: no predicted loss of the domain goes "
          "below it"),
    "k": ("its floor", "10× the largest loss", "no effect of the mixture", "amplitude at its cap"),
    "t": ("-50", "50", "a source effect without limit (too few mixtures vary it)",
          "a source effect without limit (too few mixtures vary it)"),
}


def bound_warning(stage: str, labels: Sequence[str], sol: GroupSolution, mask: np.ndarray,
                   names: Sequence[tuple[str, str | None]] | None) -> str:
    """Which parameter sits on which bound in which fits, and whether the fit suffers from it.

    ``names`` gives, per parameter of ``theta``, its kind (a key of :data:`_BOUNDS`) and its
    domain (None: the group's own); without it (or ``bound_side``) the count alone is given.
    """
    hit = np.flatnonzero(sol.at_bound)
    head = f"{stage} stage: {len(hit)} of {len(labels)} fits have a parameter on a bound"
    if names is None or sol.bound_side is None or sol.bound_side.shape[1] != len(names):
        return f"{head} ({', '.join(labels[i] for i in hit[:5])}{', ...' if hit.size > 5 else ''})"
    parts = []
    side = sol.bound_side
    for kind in dict.fromkeys(k for k, _ in names):
        cols = [j for j, (k, _) in enumerate(names) if k == kind]
        for sgn, what in ((-1, 0), (1, 1)):
            on = side[:, cols] == sgn                     # (G, n_cols)
            groups = np.flatnonzero(on.any(1))
            if groups.size == 0:
                continue
            doms = [names[cols[c]][1] for c in np.flatnonzero(on.any(0))]
            doms = [d for d in doms if d is not None]
            where = ", ".join(labels[i] for i in groups[:4]) + (", ..." if groups.size > 4 else "")
            parts.append(f"{kind} at its {'lower' if sgn < 0 else 'upper'} bound "
                         f"({_BOUNDS[kind][what]}) in {groups.size} fit(s): {where}"
                         + (f" — domains {', '.join(doms[:4])}{', ...' if len(doms) > 4 else ''}"
                            if doms else "") + f" ({_BOUNDS[kind][2 + what]})")
    r2 = np.where(mask, sol.residuals**2, 0.0)
    rms = np.sqrt(r2.sum(1) / np.maximum(mask.sum(1), 1))
    on, off = rms[sol.at_bound], rms[~sol.at_bound]
    if off.size:
        worse = np.median(on) > 1.5 * np.median(off)
        verdict = (f"median rms log-residual of those fits {np.median(on):.2g} vs "
                   f"{np.median(off):.2g} for the others: "
                   + ("the bound costs fit quality there — inspect those fits" if worse else
                      "the bound does not degrade the fit; the held parameter is just poorly "
                      "identified by the data"))
    else:
        verdict = f"median rms log-residual {np.median(on):.2g}"
    return f"{head}: " + "; ".join(parts) + f"; {verdict}"
