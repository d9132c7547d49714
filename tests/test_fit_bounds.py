"""Warnings on parameters at their bounds name the parameter, the bound, the fits and domains,
and say whether the fit suffers (issue #11: a bare count cannot be acted on)."""

from __future__ import annotations

import numpy as np

from mixlaws.fit import fit_step_stage
from _expected import expected_warnings


def _runs(rising: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    D = np.geomspace(1e8, 1e10, 8)
    L = np.stack([3.0 + 40.0 * D**-0.3, 2.0 + 30.0 * D**-0.25], -1)   # (C, 2 domains)
    if rising:                  # domain "b" rises with training (as Ubuntu_IRC in RedPajama)
        L[:, 1] = 5.0 + 0.02 * np.log(D / 1e8) + 0.01 * np.sin(np.arange(D.size))
    return D, L


def test_bound_warning_names_parameter_bound_runs_and_domains():
    runs = [_runs(i % 2 == 0) for i in range(4)]
    T = np.stack([r[0] for r in runs])
    Y = np.stack([r[1] for r in runs])
    with expected_warnings():
        fit = fit_step_stage(["r0", "r1", "r2", "r3"], T, Y, np.ones(T.shape), tie="run",
                             domains=["a", "b"])
    assert fit.at_bound.tolist() == [True, False, True, False]
    (msg,) = [w for w in fit.warnings if "bound" in w]
    assert msg.startswith("step stage: 2 of 4 fits have a parameter on a bound: ")
    # b's asymptote is held at its smallest loss; the run's shared exponent then pushes a's to 0
    assert "E at its upper bound (the smallest observed loss) in 2 fit(s): r0, r2 — domains b (" in msg
    assert "E at its lower bound (0) in 2 fit(s): r0, r2 — domains a (" in msg
    assert "r1" not in msg and "losses stop falling" in msg
    assert "median rms log-residual" in msg and "the bound costs fit quality" in msg


def test_unidentified_mixing_fit_reports_infinite_stderr_without_a_numpy_warning():
    """A constant domain leaves t unidentified: infinite stderr, and no leaked numpy
    "invalid value encountered in matmul" (filterwarnings = error would raise it here)."""
    import warnings

    from mixlaws.errors import ConvergenceWarning
    from mixlaws.fit import fit_mixing_stage

    X = np.random.default_rng(0).dirichlet(np.ones(3), 5)
    Y = np.column_stack([np.full(5, 2.0), 2.0 + 0.3 * np.exp(X @ [-1.0, 0.5, 0.5])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # the bound note on domain a
        fit = fit_mixing_stage(["a", "b"], X, Y)
    assert np.isinf(fit.stderr["t"][0]).all() and np.isfinite(fit.params["t"]).all()
