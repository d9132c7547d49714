"""Parameter and optimum recovery on simulated sweeps with known truth; stage errors; artifacts."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixlaws.fit import load_model, model_from_dict, model_to_dict, save_model
from mixlaws.fit import holdout_largest_size, leave_mixtures_out, summarise_errors
from mixlaws.errors import ArtifactError, ConvergenceWarning, InsufficientDataError, ScaleError
from mixlaws.fit import solve_groups
from mixlaws.errors import NotFittedError
from mixlaws.fit import NestedMixingLaw
from mixlaws.optimize import optimize_mixture
from mixlaws.runs import validate_runs
from mixlaws.simulate import random_truth, simulate_sweep, true_optimum
from mixlaws.fit import fit_mixing_stage, fit_size_stage, fit_step_stage
from mixlaws.laws import mixing_law, sum_zero_basis
from _expected import expected_warnings

SOURCES = ("web", "code", "books", "papers", "wiki")
DOMAINS = ("web", "code", "prose", "science")
N_T, D_T = 1e9, 2e10


def sweep(seed: int, noise: float, run_noise: float, **kw):
    truth = random_truth(SOURCES, DOMAINS, seed=seed, noise=noise, run_noise=run_noise)
    return truth, validate_runs(simulate_sweep(truth, seed=seed, **kw))


@pytest.fixture(scope="module")
def noiseless():
    truth, runs = sweep(3, 0.0, 0.0)
    with expected_warnings():
        model = NestedMixingLaw(tie_beta="all").fit(runs)
    return truth, runs, model


def test_noiseless_sweep_recovers_the_truth_at_the_target(noiseless):
    truth, _, model = noiseless
    fit = model.target(N_T, D_T)
    pred = model.predict(fit.mixtures, N_T, D_T)
    np.testing.assert_allclose(pred["domains"], truth.loss(fit.mixtures, N_T, D_T), rtol=1e-7)
    np.testing.assert_allclose(fit.size.params["alpha"], truth.alpha, rtol=1e-6)
    np.testing.assert_allclose(model.step_.params["beta"], truth.beta, rtol=1e-6)
    # mixing-law effects t_dj are the truth's, in the sum-zero gauge
    np.testing.assert_allclose(fit.mixing.params["t"], truth.t, atol=1e-5)
    assert model.step_.converged.all() and fit.size.converged.all() and fit.mixing.converged.all()


def test_noiseless_optimum_is_the_true_optimum(noiseless):
    truth, _, model = noiseless
    fit = model.target(N_T, D_T)
    res = optimize_mixture(fit.loss, model.sources_, seed=0)
    r_true, L_true = true_optimum(truth, N_T, D_T)
    regret = truth.aggregate(res.mixture, N_T, D_T) - L_true
    assert regret / L_true < 1e-8
    np.testing.assert_allclose(res.mixture, r_true, atol=1e-5)


def test_low_noise_regret_below_a_tenth_of_a_percent():
    truth, runs = sweep(5, 0.001, 0.0005)
    with expected_warnings():
        model = NestedMixingLaw(tie_beta="all").fit(runs)
    fit = model.target(N_T, D_T)
    res = optimize_mixture(fit.loss, model.sources_, seed=0)
    _, L_true = true_optimum(truth, N_T, D_T)
    regret = (truth.aggregate(res.mixture, N_T, D_T) - L_true) / L_true
    assert 0 <= regret < 1e-3


def test_step_stage_recovers_parameters_and_reports_correlation():
    rng = np.random.default_rng(0)
    G, C, nd = 12, 9, 3
    D = np.geomspace(1e9, 1e10, C)[None].repeat(G, 0)
    E = rng.uniform(2, 3, (G, nd))
    B = rng.uniform(200, 600, (G, nd))
    beta = rng.uniform(0.2, 0.4, G)
    L = E[:, None, :] + B[:, None, :] * D[..., None] ** -beta[:, None, None]
    fit = fit_step_stage([f"r{i}" for i in range(G)], D, L, np.ones((G, C)))
    np.testing.assert_allclose(fit.params["beta"], beta, rtol=1e-6)
    np.testing.assert_allclose(fit.params["E"], E, rtol=1e-6)
    np.testing.assert_allclose(fit.params["B"], B, rtol=1e-5)
    assert fit.converged.all()
    assert fit.correlations["E~B"] < -0.9  # amplitude and floor trade off: reported, expected


def test_huber_resists_a_spiking_checkpoint():
    D = np.geomspace(1e9, 1e10, 10)[None]
    L = (2.5 + 400 * D**-0.3)[..., None]
    spiked = L.copy()
    spiked[0, 4, 0] *= 1.05
    clean = fit_step_stage(["r"], D, L, np.ones((1, 10)))
    robust = fit_step_stage(["r"], D, spiked, np.ones((1, 10)))
    squares = fit_step_stage(["r"], D, spiked, np.ones((1, 10)), delta=10.0)  # plain least squares
    pred = lambda f: f.params["E"][0, 0] + f.params["B"][0, 0] * 1e11 ** -f.params["beta"][0]  # noqa
    err_robust = abs(pred(robust) / pred(clean) - 1)
    err_squares = abs(pred(squares) / pred(clean) - 1)
    assert err_robust < 0.5 * err_squares


def test_size_stage_profiles_a_shared_exponent_with_stderr():
    rng = np.random.default_rng(1)
    N = np.array([2e7, 5e7, 1e8, 2e8])[None].repeat(8, 0)
    E, A = rng.uniform(2, 3, 8), rng.uniform(200, 600, 8)
    L = (E[:, None] + A[:, None] * N**-0.34) * (1 + 1e-3 * rng.normal(size=N.shape))
    fit = fit_size_stage([f"g{i}" for i in range(8)], N, L, np.ones_like(N), np.zeros(8, int), 1)
    assert np.unique(fit.params["alpha"]).size == 1
    assert abs(fit.params["alpha"][0] - 0.34) < 4 * fit.stderr["alpha"][0]
    assert np.isfinite(fit.stderr["alpha"][0]) and fit.stderr["alpha"][0] > 0


def _mixing_log_residual(theta, data):
    """log-residual of the mixing law in the (c, log k, u) layout (as the mixing stage fits it)."""
    import jax.numpy as jnp

    RH, y = data
    return jnp.log(mixing_law(RH, theta[0], jnp.exp(theta[1]), theta[2:])) - jnp.log(y)


def test_unconverged_fits_are_reported_not_hidden():
    rng = np.random.default_rng(2)
    R = rng.dirichlet(np.ones(4), 12)
    H = sum_zero_basis(4)
    y = (2 + 0.5 * np.exp(R @ np.array([1.0, -1.0, 0.5, -0.5])))[None]
    bounds = np.array([[[0, y.min()], [-30, 5]] + [[-50, 50]] * 3])
    import jax.numpy as jnp
    sol = solve_groups(_mixing_log_residual, (jnp.asarray(R @ H)[None], jnp.asarray(y)), np.ones((1, 12)),
                       bounds, np.array([[[1.0, 0.0, 3.0, -3.0, 3.0]]]), max_iter=1)
    assert not sol.converged[0]


def test_mixing_stage_needs_enough_mixtures():
    with pytest.raises(InsufficientDataError, match=r"needs ≥ 7 distinct mixtures .*; found 5"):
        fit_mixing_stage(["d"], np.full((5, 5), 0.2), np.full((5, 1), 3.0))


def test_single_scale_sweep_predicts_only_at_its_scale():
    truth = random_truth(SOURCES, DOMAINS, seed=1)
    runs = validate_runs(simulate_sweep(truth, n_mixtures=24, sizes=(1e6,), checkpoints=(1.0,)))
    model = NestedMixingLaw().fit(runs)
    assert model.step_ is None
    D0 = float(runs.data["tokens"].iloc[0])
    out = model.predict(np.full((1, 5), 0.2), 1e6, D0)
    assert np.isfinite(out["loss"]).all()
    with pytest.raises(ScaleError, match="single model size"):
        model.predict(np.full((1, 5), 0.2), 1e9, D0)
    with pytest.raises(ScaleError, match="no run has a step law"):
        model.predict(np.full((1, 5), 0.2), 1e6, 10 * D0)


def test_unfitted_model_is_an_error():
    with pytest.raises(NotFittedError):
        NestedMixingLaw().predict(np.full((1, 5), 0.2), 1e9, 1e10)


def test_artifact_round_trip_is_exact(fitted_fixture, tmp_path):
    d = model_to_dict(fitted_fixture)
    text = json.dumps(d)
    back = model_from_dict(json.loads(text))
    assert json.dumps(model_to_dict(back)) == text
    path = tmp_path / "fit.json"
    save_model(fitted_fixture, path)
    again = load_model(path)
    r = np.full((2, 5), 0.2)
    r[1] = [0.6, 0.1, 0.1, 0.1, 0.1]
    a = fitted_fixture.predict(r, N_T, D_T)
    b = again.predict(r, N_T, D_T)
    np.testing.assert_array_equal(a["loss"], b["loss"])
    np.testing.assert_array_equal(a["domains"], b["domains"])


def test_artifact_from_another_version_says_what_to_do(fitted_fixture):
    d = model_to_dict(fitted_fixture)
    d["format_version"] = 99
    with pytest.raises(ArtifactError, match="refit with `mixlaws fit`"):
        model_from_dict(d)
    with pytest.raises(ArtifactError, match="not a mixlaws fit artifact"):
        model_from_dict({"kind": "mixlaws.mixture"})


def test_fit_is_deterministic(fitted_fixture, sweep_path):
    from mixlaws.runs import read_runs
    with expected_warnings():
        other = NestedMixingLaw(tie_beta="all").fit(read_runs(sweep_path))
    assert json.dumps(model_to_dict(other)) == json.dumps(model_to_dict(fitted_fixture))


@pytest.mark.slow
def test_holdout_and_leave_mixtures_out_on_a_simulated_sweep():
    truth, runs = sweep(7, 0.002, 0.001)
    make = lambda: NestedMixingLaw(tie_beta="all")  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, pred = holdout_largest_size(runs, make)
        s = summarise_errors(pred)
        assert s["n"] == 16 and s["mean_abs_rel_error"] < 0.01
        cv = leave_mixtures_out(runs, make, n_folds=4)
    assert len(cv) == len(runs.data["run"].unique())
    assert np.abs(cv["rel_error"]).mean() < 0.02


@settings(max_examples=12, deadline=None)
@given(C=st.integers(2, 4), nd=st.integers(1, 3), tie=st.sampled_from(["run", "none", "all"]),
       seed=st.integers(0, 2**16))
def test_step_jacobian_structure_matches_the_dense_jacobian(C, nd, tie, seed):
    import jax.numpy as jnp

    from mixlaws.fit._stages import _step_residual, _step_residual_shared, step_structure

    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=C), rng.uniform(2, 4, (C, nd))
    theta = np.concatenate([rng.uniform(0.5, 1.5, nd), rng.uniform(0.1, 2, nd)])
    if tie == "all":
        fn, data, struct = (_step_residual_shared, (jnp.asarray(x), jnp.asarray(y), -1.0),
                            step_structure(C, nd, None))
    else:
        nb = nd if tie == "none" else 1
        theta = np.concatenate([theta, rng.normal(-1, 0.3, nb)])
        fn, data, struct = _step_residual, (jnp.asarray(x), jnp.asarray(y)), step_structure(C, nd, nb)
    assert struct.check(fn, theta, data) < 1e-12


def _step_problem(seed, G, C, nd, *, tokens_span, shift, noise, beta_start):
    """``G`` runs of step laws (``beta`` shared by a run's ``nd`` domains) at ``C`` checkpoints
    with log-normal noise: ``(data, bounds, starts)`` for :func:`solve_groups` in the step
    stage's parameterisation ``(E_d, B_d, log beta)``, one start per group."""
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    x = np.log(np.geomspace(1, tokens_span, C)) - shift
    E, B, beta = rng.uniform(1.5, 2.5, (G, nd)), rng.uniform(0.5, 1.0, (G, nd)), rng.uniform(0.3, 0.6, G)
    y = (E[:, None] + B[:, None] * np.exp(-beta[:, None, None] * x[None, :, None])) * np.exp(
        noise * rng.standard_normal((G, C, nd)))
    data = (jnp.asarray(np.tile(x, (G, 1))), jnp.asarray(y))
    bounds = np.tile(np.array([[0.0, 1.4]] * nd + [[0.0, 50.0]] * nd + [[-7.0, 1.1]]), (G, 1, 1))
    starts = np.concatenate([np.full((1, G, nd), 1.0), np.full((1, G, nd), 1.0),
                             np.full((1, G, 1), np.log(beta_start))], -1)
    return data, bounds, starts


def test_structured_solve_gives_the_dense_solution():
    """Same groups, same starts: the sparse normal equations reach the dense ones' optimum."""
    from mixlaws.fit._stages import _step_residual, step_structure

    G, C, nd = 6, 8, 3
    data, bounds, starts = _step_problem(4, G, C, nd, tokens_span=20, shift=1.5, noise=0.002,
                                         beta_start=0.4)
    w = np.ones((G, C * nd))
    dense = solve_groups(_step_residual, data, w, bounds, starts)
    sparse = solve_groups(_step_residual, data, w, bounds, starts,
                          structure=step_structure(C, nd, 1))
    assert dense.converged.all() and sparse.converged.all()
    np.testing.assert_allclose(sparse.objective, dense.objective, rtol=1e-9)
    np.testing.assert_allclose(sparse.theta, dense.theta, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("tie", ["run", "none"])
def test_blocked_solve_gives_the_dense_solution_per_tie(tie):
    """The arrowhead (Schur) Newton solves reach the dense solves' optimum, for a run's shared
    exponent (one global parameter) and per-domain exponents (no global one)."""
    import dataclasses

    from mixlaws.fit._stages import _step_residual, step_structure

    G, C, nd = 5, 8, 3
    data, bounds, starts = _step_problem(9, G, C, nd, tokens_span=20, shift=1.5, noise=0.002,
                                         beta_start=0.4)
    if tie == "none":
        bounds = np.concatenate([bounds, np.repeat(bounds[:, -1:], nd - 1, 1)], 1)
        starts = np.concatenate([starts, np.repeat(starts[..., -1:], nd - 1, -1)], -1)
    struct = step_structure(C, nd, nd if tie == "none" else 1)
    assert struct.blocks is not None
    w = np.ones((G, C * nd))
    blocked = solve_groups(_step_residual, data, w, bounds, starts, structure=struct)
    dense = solve_groups(_step_residual, data, w, bounds, starts,
                         structure=dataclasses.replace(struct, blocks=None))
    assert blocked.converged.all() and dense.converged.all()
    np.testing.assert_allclose(blocked.objective, dense.objective, rtol=1e-9)
    np.testing.assert_allclose(blocked.theta, dense.theta, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("plan", [True, False])
@pytest.mark.parametrize("tie", ["run", "none", "all"])
def test_block_normal_equations_equal_the_dense_ones(tie, plan, monkeypatch):
    """The block-form system (never the dense matrix) has the dense system's gradient,
    diagonal and damped solutions, with parameters held on bounds among them; so has the
    Schur solve of the dense matrix, used when the colours allow no block plan."""
    import dataclasses

    import jax.numpy as jnp

    from mixlaws.fit import JacobianStructure
    from mixlaws.fit._engine import _linear_system
    from mixlaws.fit._stages import _step_residual, _step_residual_shared, step_structure

    rng = np.random.default_rng(3)
    C, nd = 6, 4
    x, y = jnp.asarray(rng.normal(size=C)), jnp.asarray(rng.uniform(2, 4, (C, nd)))
    theta = np.concatenate([rng.uniform(0.5, 1.5, nd), rng.uniform(0.1, 2, nd)])
    if tie == "all":
        fn, data, struct = _step_residual_shared, (x, y, -1.0), step_structure(C, nd, None)
    else:
        nb = nd if tie == "none" else 1
        theta = np.concatenate([theta, rng.normal(-1, 0.3, nb)])
        fn, data, struct = _step_residual, (x, y), step_structure(C, nd, nb)
    assert struct.arrays()[2][2] is not None, "the step structure should have a block plan"
    if not plan:
        monkeypatch.setattr(JacobianStructure, "_plan", lambda self, local, glob: None)
    lo, hi = np.full(theta.size, -5.0), np.full(theta.size, 5.0)
    lo[0], theta[0] = theta[0], theta[0]           # E_0 on its lower bound (held if g > 0)
    hi[nd + 1], theta[nd + 1] = theta[nd + 1], theta[nd + 1]
    args = (fn, jnp.asarray(theta), data, jnp.ones(C * nd), jnp.asarray(lo), jnp.asarray(hi),
            1e-2)
    gb, db, solve_b = _linear_system(*args, struct.arrays())
    gd, dd, solve_d = _linear_system(*args, dataclasses.replace(struct, blocks=None).arrays())
    np.testing.assert_allclose(gb, gd, rtol=1e-12, atol=1e-12 * float(np.abs(gd).max()))
    np.testing.assert_allclose(db, dd, rtol=1e-12)
    v = jnp.asarray(rng.uniform(0.0, 1.0, theta.size)) * jnp.asarray(dd)
    np.testing.assert_allclose(solve_b(v), solve_d(v), rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(n_blocks=st.integers(1, 6), m=st.integers(1, 3), q=st.integers(0, 2),
       seed=st.integers(0, 2**31 - 1))
def test_block_solve_solves_any_arrowhead_system(n_blocks, m, q, seed):
    """Random well-conditioned arrowhead matrices, blocks and globals interleaved in a random
    order: the Schur solve equals the dense solve."""
    import jax.numpy as jnp

    from mixlaws.fit import JacobianStructure
    from mixlaws.fit._engine import block_solve

    rng = np.random.default_rng(seed)
    P = n_blocks * m + q
    perm = rng.permutation(P)
    local, glob = perm[:n_blocks * m].reshape(n_blocks, m), perm[n_blocks * m:]
    M = np.zeros((P, P))
    for blk in local:
        A = rng.standard_normal((m, m))
        M[np.ix_(blk, blk)] = A @ A.T + m * np.eye(m)
        border = 0.3 * rng.standard_normal((m, q))
        M[np.ix_(blk, glob)], M[np.ix_(glob, blk)] = border, border.T
    M[np.ix_(glob, glob)] = (n_blocks + 2) * np.eye(q)
    rhs = rng.standard_normal(P)
    # a residual per block (its parameters and every global one) declares the structure
    index = np.concatenate([local, np.tile(glob, (n_blocks, 1))], 1)
    blocks = JacobianStructure(index, P, blocks=local).arrays()[2]
    x = np.asarray(block_solve(jnp.asarray(M), jnp.asarray(rhs), blocks))
    np.testing.assert_allclose(x, np.linalg.solve(M, rhs), rtol=1e-9, atol=1e-12)


def _record_batches(monkeypatch, engine, name):
    """Patch the engine's ``name`` (called as ``f(residual, theta, ...)``) to record the
    number of groups of each call; returns the list it fills."""
    sizes = []
    real = getattr(engine, name)

    def spy(residual, theta, *a):
        sizes.append(theta.shape[0])
        return real(residual, theta, *a)

    monkeypatch.setattr(engine, name, spy)
    return sizes


def _two_basins(theta, d):
    """One parameter, minima near theta = -1 and +1; ``d`` tilts them apart."""
    import jax.numpy as jnp

    return jnp.stack([0.01 * (theta[0] ** 2 - 1.0), 0.002 * d * (theta[0] - 1.0)])


def test_later_starts_run_only_on_undecided_groups(monkeypatch):
    """Nine groups whose first two starts agree, one whose starts land in two basins: the
    third and fourth starts run on that group alone (a padded batch of 8), and every group
    ends where running all starts on all groups ends."""
    import jax.numpy as jnp

    import mixlaws.fit._engine as engine

    G = 10
    tilt = np.zeros(G)
    tilt[-1] = 1.0
    starts = np.full((4, G, 1), -1.5)
    starts[1, -1], starts[2, -1], starts[3, -1] = 1.5, -1.2, 1.2
    args = (_two_basins, jnp.asarray(tilt), np.ones((G, 2)), np.tile([[-3.0, 3.0]], (G, 1, 1)),
            starts)
    sizes = _record_batches(monkeypatch, engine, "_lm")
    early = solve_groups(*args, agree=2)
    assert sizes == [G, G, 8, 8] and early.n_starts == 4
    every = solve_groups(*args)
    np.testing.assert_allclose(early.theta, every.theta, rtol=1e-9)
    assert early.theta[-1, 0] > 0.9 and np.all(early.theta[:-1, 0] < -0.9)


def test_a_colour_of_local_and_global_parameters_has_no_block_plan():
    from mixlaws.fit import JacobianStructure

    mixed = JacobianStructure(np.array([[0, 2], [3, 1]]), 4, blocks=np.array([[0], [1]]))
    assert mixed.arrays()[2][2] is None                  # the dense Schur solve is used
    clean = JacobianStructure(np.array([[0, 2], [1, 2]]), 3, blocks=np.array([[0], [1]]))
    rows, local_colours, global_colours, onehot = clean.arrays()[2][2]
    np.testing.assert_array_equal(rows, [[0], [1]])
    assert list(local_colours) == [0] and list(global_colours) == [1]
    np.testing.assert_array_equal(onehot[:2, 0, 0], [1.0, 1.0])


def test_jacobian_structure_rejects_blocks_that_share_a_residual():
    from mixlaws.fit import JacobianStructure

    with pytest.raises(ValueError, match="two local blocks"):
        JacobianStructure(np.array([[0, 1], [2, 3]]), 4, blocks=np.array([[0, 3], [1, 2]]))


def test_jacobian_structure_rejects_a_parameter_in_two_colours():
    from mixlaws.fit import JacobianStructure

    with pytest.raises(ValueError, match="another colour"):
        JacobianStructure(np.array([[0, 1], [1, 2]]), 3)


def test_finished_groups_leave_the_batch_without_changing_the_solution(monkeypatch):
    """A few slow groups in a large batch: the active ones move to a smaller batch; the
    solution is the full batch's, to the convergence tolerance."""
    import mixlaws.fit._engine as engine
    from mixlaws.fit._stages import _step_residual, step_structure

    G, C, nd = 72, 8, 2
    data, bounds, starts = _step_problem(7, G, C, nd, tokens_span=30, shift=1.7, noise=0.003,
                                         beta_start=0.45)
    starts[0, :6] = np.concatenate([np.full(nd, 0.01), np.full(nd, 40.0), [np.log(2.5)]])  # slow
    args = (_step_residual, data, np.ones((G, C * nd)), bounds, starts)
    sizes = _record_batches(monkeypatch, engine, "_lm_step")
    compact = solve_groups(*args, structure=step_structure(C, nd, 1))
    assert min(sizes) < G, "no group left the batch"
    monkeypatch.setattr(engine, "COMPACT_MIN", 10**9)
    sizes.clear()
    whole = solve_groups(*args, structure=step_structure(C, nd, 1))
    assert set(sizes) == {G}
    assert compact.converged.all() and whole.converged.all()
    np.testing.assert_allclose(compact.objective, whole.objective, rtol=1e-8)
    # the fitted curves agree to 3e-5 (noise 3e-3): a group that leaves the batch stops at the
    # loop's tolerance, while in the whole batch it goes on iterating with the slow ones; along
    # a flat direction of its objective (a compensating parameter pair) that moves it 2e-4
    np.testing.assert_allclose(compact.residuals, whole.residuals, rtol=0, atol=5e-5)
    np.testing.assert_allclose(compact.theta, whole.theta, rtol=1e-3, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), m=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_mixing_stage_closed_form_normal_equations_equal_the_differentiated_ones(n, m, seed):
    import jax
    import jax.numpy as jnp

    from mixlaws.fit._engine import _normal_equations
    from mixlaws.fit._stages import _mixing_residual

    rng = np.random.default_rng(seed)
    data = (jnp.asarray(rng.uniform(-1, 1, (n, m))), jnp.asarray(rng.uniform(1.5, 4.0, n)))
    theta = jnp.asarray(np.r_[rng.uniform(0.5, 3.0), rng.normal(0, 1), rng.normal(0, 1, m)])
    w = jnp.asarray(rng.uniform(0, 1, n) * (rng.uniform(size=n) > 0.2))     # some masked rows
    g, H = _normal_equations(_mixing_residual, theta, data, w, 1e-3, None)    # closed form
    J = jax.jacfwd(lambda t: _mixing_residual(t, data))(theta)
    z = _mixing_residual(theta, data) / 1e-3
    psi, omega = w * jnp.clip(z, -1, 1), w * jnp.minimum(1.0, 1.0 / jnp.abs(z))
    scale = float(jnp.max(jnp.abs(H))) + 1e-300
    np.testing.assert_allclose(g, J.T @ psi / 1e-3, rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(H, (J * omega[:, None]).T @ J / 1e-6, rtol=1e-9, atol=1e-9 * scale)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5000))
def test_padding_buckets_round_up_by_at_most_a_quarter(n):
    from mixlaws.fit._engine import _fine_bucket, _row_bucket

    for bucket in (_fine_bucket(n), _row_bucket(n)):
        assert bucket >= max(n, 8)
    assert _fine_bucket(n) <= max(8, 1.25 * n)
    assert _row_bucket(n) <= max(8, 2 * n if n <= 64 else 1.25 * n)
    assert _fine_bucket(_fine_bucket(n)) == _fine_bucket(n)      # buckets are fixed points


def test_padded_solve_is_the_unpadded_one():
    """``pad=True`` solves a problem padded to bucketed sizes (copies of the last group, rows
    of weight 0) and returns the unpadded problem's solution, residuals trimmed."""
    import jax.numpy as jnp

    from mixlaws.fit._stages import _mixing_residual

    rng = np.random.default_rng(5)
    G, n, M = 11, 23, 4                          # pads to 12 groups x 32 rows
    H = sum_zero_basis(M)
    R = rng.dirichlet(np.ones(M), n)
    RH = R @ H
    c, k, t = rng.uniform(1.5, 2.5, G), rng.uniform(0.2, 0.8, G), rng.normal(0, 1, (G, M))
    y = np.stack([mixing_law(RH, c[g], k[g], t[g] @ H) for g in range(G)])
    y = y * np.exp(rng.normal(0, 0.01, y.shape))
    w = (rng.uniform(size=(G, n)) > 0.1).astype(float)          # some masked cells too
    bounds = np.zeros((G, M + 1, 2))
    bounds[:, 0] = np.stack([np.zeros(G), y.min(1)], -1)
    bounds[:, 1] = [-30.0, 5.0]
    bounds[:, 2:] = [-50.0, 50.0]
    starts = np.zeros((2, G, M + 1))
    starts[:, :, 0] = 0.9 * y.min(1)
    starts[1, :, 2:] = rng.normal(0, 1, (G, M - 1))
    data = (jnp.broadcast_to(jnp.asarray(RH), (G, n, M - 1)), jnp.asarray(y))
    plain = solve_groups(_mixing_residual, data, w, bounds, starts)
    padded = solve_groups(_mixing_residual, data, w, bounds, starts, pad=True)
    assert padded.theta.shape == (G, M + 1) and padded.residuals.shape == (G, n)
    assert padded.cov.shape == (G, M + 1, M + 1) and padded.sigma2.shape == (G,)
    np.testing.assert_allclose(padded.objective, plain.objective, rtol=1e-9)
    np.testing.assert_allclose(padded.theta, plain.theta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(padded.residuals, plain.residuals, atol=1e-8)
    np.testing.assert_allclose(padded.sigma2, plain.sigma2, rtol=1e-6)
