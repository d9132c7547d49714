"""The size-stage posterior stays centred on the point fit on a sweep of issue #10's shape.

5 sizes 122M..1.2B, one group per (mixture, domain), target 2.7B. The stage data carry a 1 %
run scatter while the step stage reports a 3-5 % predictive sd (overstated, as when the step
errors are shared by the runs); one variant bends the size law out of the fitted family.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mixlaws.errors import ChainWarning
from mixlaws.fit._stages import fit_size_stage
from mixlaws.laws import size_law
from mixlaws.posterior import sample_size_stage

SIZES = np.array([1.22e8, 2.2e8, 4.0e8, 7.0e8, 1.2e9])
TARGET = 2.7e9


def _sweep(bend: float, seed: int, G: int = 84):
    rng = np.random.default_rng(seed)
    E = rng.uniform(1.8, 2.6, G)[:, None]
    A = 400 * np.exp(rng.normal(0, 0.15, G))[:, None]
    y = (E + A * SIZES[None] ** -0.34) * (1 - bend * np.log(SIZES / SIZES[0])[None] ** 2)
    y = y * (1 + 0.01 * rng.standard_normal(y.shape))
    s2 = np.broadcast_to((np.array([0.03, 0.05, 0.045, 0.04, 0.035]) ** 2)[None], y.shape).copy()
    return y, s2


@pytest.mark.parametrize("bend", [0.0, 0.004])
def test_size_posterior_mean_stays_near_the_point_fit(bend):
    y, s2 = _sweep(bend, seed=1)
    G, S = y.shape
    N = np.broadcast_to(SIZES, y.shape)
    w = np.ones_like(y)
    fit = fit_size_stage([str(g) for g in range(G)], N, y, w, np.zeros(G, int), 1)
    p = fit.params
    point = np.asarray(size_law(TARGET, p["E"], p["A"], p["alpha"]))
    xl = np.log(N) - np.log(N).mean()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChainWarning)     # no unphysical-draw warning either
        Y, tau, chain = sample_size_stage(xl, y, s2, w, np.zeros(G, int), p["alpha"][:1],
                                          float(np.log(TARGET) - np.log(N).mean()), 400, seed=0)
    agg = Y.mean(1)                                        # the mean over groups, per draw
    z = (agg.mean() - point.mean()) / agg.std()
    assert abs(z) < 1.5, (z, agg.mean(), point.mean(), agg.std())
    # and close in loss: the flat-prior marginal (profile=False, scale_step=False) sat 1.3 %
    # (in family) and 0.6 % (bent) off, with 9 % unphysical group laws when bent
    assert abs(agg.mean() / point.mean() - 1) < 0.005, agg.mean() / point.mean() - 1
    assert chain.diagnostics.unphysical < 0.05 * Y.size
