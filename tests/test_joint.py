"""The joint law L(r, N, D) recovers a noiseless simulated sweep and cross-checks the nesting."""

from __future__ import annotations

import numpy as np
import pytest

from mixlaws.errors import InsufficientDataError
from mixlaws.fit import JointMixingLaw
from mixlaws.errors import NotFittedError
from mixlaws.runs import validate_runs
from mixlaws.simulate import random_truth, simulate_sweep

SOURCES = ("web", "code", "books", "papers", "wiki")
DOMAINS = ("web", "code", "prose", "science")


def test_noiseless_joint_fit_recovers_the_truth():
    truth = random_truth(SOURCES, DOMAINS, seed=3, noise=0.0, run_noise=0.0)
    model = JointMixingLaw().fit(validate_runs(simulate_sweep(truth, seed=1)))
    assert model.fit_.converged.all()
    r = np.random.default_rng(0).dirichlet(np.ones(5), 6)
    pred = model.predict(r, 1e9, 2e10)
    np.testing.assert_allclose(pred["domains"], truth.loss(r, 1e9, 2e10), rtol=1e-8)
    np.testing.assert_allclose(pred["loss"], truth.loss(r, 1e9, 2e10).mean(1), rtol=1e-8)
    np.testing.assert_allclose(model.fit_.params["alpha"], truth.alpha, rtol=1e-6)
    np.testing.assert_allclose(model.fit_.params["t"], truth.t, atol=1e-6)


def test_joint_law_needs_several_sizes_and_is_unusable_unfitted():
    truth = random_truth(SOURCES, DOMAINS, seed=1)
    single = validate_runs(simulate_sweep(truth, n_mixtures=24, sizes=(1e6,), checkpoints=(1.0,)))
    with pytest.raises(InsufficientDataError, match="≥ 2 model sizes"):
        JointMixingLaw().fit(single)
    with pytest.raises(NotFittedError):
        JointMixingLaw().predict(np.full((1, 5), 0.2), 1e9, 1e10)
