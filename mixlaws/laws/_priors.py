"""Every prior and physical bound of the posteriors, defined once.

The README's prior table is checked against these values by
``tests/test_laws.py``; the stage posteriors import them from here.

========================  ==========================================================
name                      meaning
========================  ==========================================================
``EXPONENT_MAX``          size and data exponents ``alpha, beta ~ U(0, EXPONENT_MAX)``
``NU``                    Student-t degrees of freedom of checkpoint errors (step and
                          joint posteriors)
``STEP_LOG_SIGMA``        support of ``log sigma`` of a run's checkpoint scatter
``RUN_LOG_TAU``           support of ``log tau``, the run-to-run scatter (size stage)
``STEP_VAR_LOG_SCALE``    support of ``log lambda``: the size stage takes ``lambda^2`` times the
                          step stage's predictive variance as independent measurement error
``SCATTER_LOG_SIGMA``     support of ``log sigma``, a law's own scatter (mixing, joint)
``SCATTER_SCALE``         scale of the half-Cauchy prior on the mixing law's scatter
``EFFECT_PRIOR_SD``       ``t ~ N(0, EFFECT_PRIOR_SD^2)`` in the sum-zero basis
========================  ==========================================================
"""

from __future__ import annotations

import math

__all__ = ["EXPONENT_MAX", "NU", "STEP_LOG_SIGMA", "RUN_LOG_TAU", "STEP_VAR_LOG_SCALE", "SCATTER_LOG_SIGMA",
           "SCATTER_SCALE", "EFFECT_PRIOR_SD", "PRIORS"]

EXPONENT_MAX = 2.0
NU = 4.0
STEP_LOG_SIGMA = (math.log(1e-6), math.log(0.2))
RUN_LOG_TAU = (math.log(1e-6), math.log(0.2))
STEP_VAR_LOG_SCALE = (math.log(0.01), 0.0)
SCATTER_LOG_SIGMA = (math.log(1e-6), math.log(0.5))
SCATTER_SCALE = 0.01
EFFECT_PRIOR_SD = 10.0

PRIORS: dict[str, str] = {
    "exponents": f"alpha, beta ~ U(0, {EXPONENT_MAX:g})",
    "checkpoint errors": f"Student-t, nu = {NU:g}",
    "step scatter": f"log sigma flat on ({math.exp(STEP_LOG_SIGMA[0]):g}, "
                    f"{math.exp(STEP_LOG_SIGMA[1]):g})",
    "run scatter": f"log tau flat on ({math.exp(RUN_LOG_TAU[0]):g}, {math.exp(RUN_LOG_TAU[1]):g})",
    "step variance scale": f"log lambda flat on ({math.exp(STEP_VAR_LOG_SCALE[0]):g}, "
                           f"{math.exp(STEP_VAR_LOG_SCALE[1]):g})",
    "mixing scatter": f"sigma ~ half-Cauchy({SCATTER_SCALE:g})",
    "source effects": f"t ~ N(0, {EFFECT_PRIOR_SD:g}^2)",
}
"""Human-readable statement of each prior (the README's table says the same)."""
