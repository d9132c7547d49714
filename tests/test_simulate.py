"""Tests of mixlaws.simulate: the known-truth sweep generator and the fixtures."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixlaws.errors import (ArtifactError, InfeasibleConstraintsError, MixlawsError, MixtureError,
                            ScaleError)
from mixlaws.simulate import (BASELINE, FIXTURE_DOMAINS, FIXTURE_SOURCES, SweepTruth, main,
                              project_to_simplex, random_truth, round_mixtures, sample_mixtures,
                              simulate_sweep, size_label, true_optimum, write_fixtures)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SOURCES = ("web", "code", "books", "papers", "wiki")
DOMAINS = ("web", "code", "prose", "science")


def _mix_cols(truth: SweepTruth) -> list[str]:
    return [f"mix:{s}" for s in truth.sources]


def _loss_cols(truth: SweepTruth) -> list[str]:
    return [f"loss:{d}" for d in truth.domains]


def _seq_sum(row: np.ndarray) -> float:
    seq = 0.0
    for x in row.tolist():
        seq += x
    return seq


def _all_sums_one(row: np.ndarray) -> bool:
    """Left-to-right (pandas, ``sum``) and numpy sums are exactly 1 (for M < 8 they coincide)."""
    return _seq_sum(row) == 1.0 and float(np.sum(row)) == 1.0


# --- layout ---------------------------------------------------------------------------------

def test_layout_columns_rows_and_ids() -> None:
    truth = random_truth(SOURCES, DOMAINS, seed=3)
    df = simulate_sweep(truth, n_mixtures=6, sizes=(2e7, 5e7), checkpoints=(0.5, 1.0), seed=1)
    assert list(df.columns) == ["run", "params", "tokens", "step", *_mix_cols(truth), *_loss_cols(truth)]
    assert len(df) == 6 * 2 * 2
    assert set(df["run"]) == {f"{s}-{i}" for s in ("20M", "50M") for i in range(6)}
    for col in ("params", "tokens", "step"):
        assert df[col].dtype == np.int64
    for run, g in df.groupby("run"):
        assert g["params"].nunique() == 1 and len(g) == 2
        assert g[_mix_cols(truth)].drop_duplicates().shape[0] == 1, run
        n = int(g["params"].iloc[0])
        assert g["tokens"].tolist() == [round(0.5 * 20 * n), round(20 * n)]
    assert (df["step"] == np.rint(df["tokens"] / 2**20)).all()
    # every mixture is trained at every size
    mixes = {s: df[df["params"] == s][_mix_cols(truth)].drop_duplicates().to_numpy() for s in (2e7, 5e7)}
    np.testing.assert_array_equal(mixes[2e7], mixes[5e7])
    assert np.isfinite(df[_loss_cols(truth)].to_numpy()).all()


def test_single_scale_sweep() -> None:
    truth = random_truth(SOURCES, DOMAINS, seed=0)
    df = simulate_sweep(truth, n_mixtures=12, sizes=(1e6,), tokens_per_param=1000.0,
                        checkpoints=(1.0,), seed=5)
    assert len(df) == 12 and df["run"].tolist() == [f"1M-{i}" for i in range(12)]
    assert (df["tokens"] == 10**9).all() and (df["params"] == 10**6).all()


def test_round_mixtures_mostly_all_sums_exact() -> None:
    out = round_mixtures(sample_mixtures(300, 12, seed=0))
    exact = [_all_sums_one(row) and math.fsum(row.tolist()) == 1.0 for row in out]
    assert all(_seq_sum(row) == 1.0 for row in out) and np.mean(exact) > 0.8
    assert np.array_equal(round_mixtures([[0.6, 0.1, 0.1, 0.1, 0.1]]).round(12), [[0.6, 0.1, 0.1, 0.1, 0.1]])
    with pytest.raises(MixtureError):
        round_mixtures([[0.5, -0.1, 0.6]])


def test_rows_sum_to_exactly_one() -> None:
    truth = random_truth(SOURCES, DOMAINS, seed=2)
    df = simulate_sweep(truth, n_mixtures=40, sizes=(1e6,), checkpoints=(1.0,), seed=2)
    mix = df[_mix_cols(truth)].to_numpy()
    assert (mix >= 0).all()
    assert all(_all_sums_one(row) for row in mix)
    back = pd.read_csv(io.StringIO(df.to_csv(index=False)))  # survives the CSV round trip
    assert all(_all_sums_one(row) for row in back[_mix_cols(truth)].to_numpy())


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_round_mixtures_property(m: int, seed: int) -> None:
    raw = sample_mixtures(8, m, seed=seed, include_uniform=seed % 2 == 0)
    out = round_mixtures(raw)
    assert out.shape == raw.shape and (out >= 0).all()
    assert all(_seq_sum(row) == 1.0 for row in out)
    if m < 8:  # numpy's pairwise sum is sequential below 8 terms
        assert all(float(np.sum(row)) == 1.0 for row in out)
    assert np.abs(out - raw).max() <= 1e-6 * m
    # all entries but (at most) the fixed one per row are 6-decimal numbers
    off = np.abs(out - np.round(out, 6)) > 0
    assert (off.sum(axis=1) <= 1).all()


# --- the law --------------------------------------------------------------------------------

def test_noiseless_sweep_equals_truth_exactly() -> None:
    truth = random_truth(SOURCES, DOMAINS, seed=4, noise=0.0, run_noise=0.0, mixture_scaling=0.3)
    df = simulate_sweep(truth, n_mixtures=5, seed=4)
    for table in (df, pd.read_csv(io.StringIO(df.to_csv(index=False)))):
        expected = truth.loss(table[_mix_cols(truth)].to_numpy(), table["params"].to_numpy(),
                              table["tokens"].to_numpy())
        assert np.array_equal(table[_loss_cols(truth)].to_numpy(), expected)


def test_slices_are_the_nested_laws() -> None:
    truth = random_truth(SOURCES, DOMAINS, seed=6)
    r = sample_mixtures(7, 5, seed=6)
    n, d = 1.3e8, 4e9
    c_eff = truth.c + truth.A * n ** -truth.alpha + truth.B * d ** -truth.beta
    mixing = c_eff + truth.k * np.exp(r @ truth.t.T)
    np.testing.assert_allclose(truth.loss(r, n, d), mixing, rtol=1e-13)
    dd = np.array([1e8, 1e9, 1e10])
    e_step = truth.loss(r[0], n, 1e300)  # B D^-beta vanishes
    np.testing.assert_allclose(truth.loss(r[0], n, dd),
                               e_step + truth.B * dd[:, None] ** -truth.beta, rtol=1e-13)
    # mixture_scaling only changes the size coefficient, by exp(s u_d . r)
    scaled = random_truth(SOURCES, DOMAINS, seed=6, mixture_scaling=0.5)
    diff = scaled.loss(r, n, d) - truth.loss(r, n, d)
    np.testing.assert_allclose(diff, truth.A * (np.exp(0.5 * r @ truth.u.T) - 1) * n ** -truth.alpha,
                               atol=1e-12)


def test_loss_broadcasting_and_aggregate() -> None:
    truth = random_truth(SOURCES, DOMAINS, seed=1)
    r = sample_mixtures(3, 5, seed=1)
    out = truth.loss(r, np.array([[1e7], [1e8]]), 2e9)
    assert out.shape == (2, 3, 4)
    assert np.array_equal(out[1, 2], truth.loss(r[2], 1e8, 2e9))
    np.testing.assert_allclose(truth.aggregate(r, 1e8, 2e9), truth.loss(r, 1e8, 2e9).mean(axis=-1),
                               rtol=1e-15)
    w = {"web": 0.5, "code": 0.5}
    np.testing.assert_allclose(truth.aggregate(r, 1e8, 2e9, w), truth.loss(r, 1e8, 2e9)[:, :2].mean(-1),
                               rtol=1e-15)
    with pytest.raises(MixtureError):
        truth.aggregate(r, 1e8, 2e9, [0.5, 0.5])
    with pytest.raises(MixtureError):
        truth.aggregate(r, 1e8, 2e9, {"nope": 1.0})
    with pytest.raises(MixtureError):
        truth.loss(r[:, :3], 1e8, 2e9)
    with pytest.raises(ScaleError):
        truth.loss(r, 0.0, 2e9)


def test_random_truth_is_realistic() -> None:
    pref_negative = []
    for seed in range(30):
        truth = random_truth(SOURCES, DOMAINS, seed=seed)
        assert np.abs(truth.t.sum(axis=1)).max() < 1e-12 and np.abs(truth.u.sum(axis=1)).max() < 1e-12
        assert 0.3 < truth.alpha < 0.38 and 0.25 < truth.beta < 0.31
        assert (truth.c >= 1.5).all() and (truth.c <= 2.0).all()
        assert (truth.k >= 0.2).all() and (truth.k <= 0.6).all()
        losses = truth.loss(sample_mixtures(50, 5, seed=seed), 1e8, 2e9)
        assert 3.0 < np.median(losses) < 5.0
        pref = [(0, 0), (1, 1), (2, 2), (3, 3)]  # web-web, code-code, prose-books, science-papers
        pref_negative += [truth.t[d, j] < 0 for d, j in pref]
    assert np.mean(pref_negative) > 0.85
    # the fixture truth has a non-trivial optimum: several sources, not uniform
    r, _ = true_optimum(random_truth(SOURCES, DOMAINS, seed=0), 1e9, 2e10)
    assert (r > 1e-3).sum() >= 3 and np.abs(r - 0.2).max() > 0.1


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.data())
def test_to_dict_round_trip_exact(m: int, n_dom: int, data: st.DataObject) -> None:
    pos = st.floats(1e-8, 1e8, allow_nan=False)
    real = st.floats(-50, 50, allow_nan=False)

    def arr(elem: st.SearchStrategy[float], shape: tuple[int, ...]) -> np.ndarray:
        return np.array(data.draw(st.lists(elem, min_size=int(np.prod(shape)),
                                           max_size=int(np.prod(shape))))).reshape(shape)

    t, u = arr(real, (n_dom, m)), arr(real, (n_dom, m))
    names = st.lists(st.text(min_size=1, max_size=8), unique=True)
    truth = SweepTruth(
        sources=tuple(data.draw(names.filter(lambda x: len(x) == m))) if m <= 3 else
        tuple(f"s{i}" for i in range(m)),
        domains=tuple(f"d{i}" for i in range(n_dom)),
        c=arr(pos, (n_dom,)), k=arr(pos, (n_dom,)), t=t - t.mean(axis=1, keepdims=True),
        A=arr(pos, (n_dom,)), alpha=data.draw(st.floats(1e-3, 2)), B=arr(pos, (n_dom,)),
        beta=data.draw(st.floats(1e-3, 2)), u=u - u.mean(axis=1, keepdims=True),
        mixture_scaling=data.draw(st.floats(0, 5)), noise=data.draw(st.floats(0, 0.1)),
        run_noise=data.draw(st.floats(0, 0.1)))
    back = SweepTruth.from_dict(json.loads(json.dumps(truth.to_dict())))
    assert back == truth and back.to_dict() == truth.to_dict()
    for f in ("c", "k", "t", "A", "B", "u"):
        assert np.array_equal(getattr(back, f), getattr(truth, f))
        assert not getattr(back, f).flags.writeable


def test_from_dict_rejects_bad_input() -> None:
    good = random_truth(SOURCES, DOMAINS, seed=0).to_dict()
    with pytest.raises(ArtifactError):
        SweepTruth.from_dict({**good, "kind": "mixlaws.Fit"})
    with pytest.raises(ArtifactError):
        SweepTruth.from_dict({**good, "version": 99})
    with pytest.raises(ArtifactError):
        SweepTruth.from_dict({k: v for k, v in good.items() if k != "alpha"})
    bad_t = [[x + 1.0 for x in row] for row in good["t"]]
    with pytest.raises(ArtifactError, match="sum to 0"):
        SweepTruth.from_dict({**good, "t": bad_t})
    with pytest.raises(MixlawsError):
        random_truth(SOURCES, DOMAINS, noise=-0.1)


# --- determinism and noise ------------------------------------------------------------------

def test_determinism_by_seed() -> None:
    truth = random_truth(SOURCES, DOMAINS, seed=8)
    assert truth == random_truth(SOURCES, DOMAINS, seed=8)
    assert truth != random_truth(SOURCES, DOMAINS, seed=9)
    a = simulate_sweep(truth, n_mixtures=4, seed=11)
    pd.testing.assert_frame_equal(a, simulate_sweep(truth, n_mixtures=4, seed=11), check_exact=True)
    b = simulate_sweep(truth, n_mixtures=4, seed=12)
    assert not np.array_equal(a[_loss_cols(truth)].to_numpy(), b[_loss_cols(truth)].to_numpy())
    np.testing.assert_array_equal(sample_mixtures(9, 4, seed=1), sample_mixtures(9, 4, seed=1))


def test_noise_statistics() -> None:
    noise, run_noise = 0.004, 0.0025
    truth = random_truth(SOURCES, DOMAINS, seed=10, noise=noise, run_noise=run_noise)
    df = simulate_sweep(truth, n_mixtures=60, seed=10)
    clean = truth.loss(df[_mix_cols(truth)].to_numpy(), df["params"].to_numpy(), df["tokens"].to_numpy())
    res = pd.DataFrame(np.log(df[_loss_cols(truth)].to_numpy() / clean))
    res["run"] = df["run"]
    n_ck = 10
    within = res.groupby("run").transform(lambda x: x - x.mean()).to_numpy()
    sd_within = np.sqrt((within**2).sum() / (within.size * (n_ck - 1) / n_ck))
    run_means = res.groupby("run").mean().to_numpy()
    sd_run = np.sqrt(max(run_means.var(ddof=1) - sd_within**2 / n_ck, 0.0))
    assert abs(sd_within / noise - 1) < 0.2
    assert abs(sd_run / run_noise - 1) < 0.2
    total = res.drop(columns="run").to_numpy().std()
    assert abs(total / math.hypot(noise, run_noise) - 1) < 0.2


def test_sample_mixtures() -> None:
    mix = sample_mixtures(64, 6, seed=3)
    assert mix.shape == (64, 6)
    np.testing.assert_allclose(mix.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (mix >= 0).all() and np.array_equal(mix[0], np.full(6, 1 / 6))
    assert 5 <= ((mix == 0).any(axis=1)).sum() < 40  # some sparse rows, mostly dense
    assert not np.allclose(sample_mixtures(5, 6, seed=3, include_uniform=False)[0], 1 / 6)
    assert sample_mixtures(0, 3).shape == (0, 3)
    np.testing.assert_array_equal(sample_mixtures(3, 1), np.ones((3, 1)))
    with pytest.raises(MixtureError):
        sample_mixtures(3, 0)


def test_size_labels() -> None:
    assert [size_label(x) for x in (2e7, 5e7, 1e8, 2e8, 1e6, 1e9, 1.5e8, 7e4)] == \
        ["20M", "50M", "100M", "200M", "1M", "1B", "150M", "70K"]


def test_bad_sweep_arguments() -> None:
    truth = random_truth(SOURCES, DOMAINS, seed=0)
    bad = np.full((3, 5), 0.2)
    bad[1] = [0.5, 0.5, 0.5, 0.0, 0.0]
    with pytest.raises(MixtureError, match="mixture 1") as info:
        simulate_sweep(truth, mixtures=bad)
    assert info.value.index == 1
    with pytest.raises(MixtureError):
        simulate_sweep(truth, mixtures=np.full((2, 4), 0.25))
    with pytest.raises(ScaleError):
        simulate_sweep(truth, sizes=(2e7, -1.0))
    with pytest.raises(ScaleError):
        simulate_sweep(truth, sizes=(2e7, 2e7))
    with pytest.raises(ScaleError):
        simulate_sweep(truth, checkpoints=(0.5, 0.2))


# --- the true optimum -----------------------------------------------------------------------

def _grid_min(truth: SweepTruth, n: float, d: float, w: object, lo: np.ndarray, hi: np.ndarray,
              step: float, centre: np.ndarray | None = None, half: float = 1.0) -> tuple[float, np.ndarray]:
    """Minimum of the aggregate over the simplex grid points (r1, r2) of spacing ``step``."""
    a = np.arange(-half, half + step / 2, step) + (0 if centre is None else centre[0])
    b = np.arange(-half, half + step / 2, step) + (0 if centre is None else centre[1])
    r1, r2 = np.meshgrid(a, b, indexing="ij")
    pts = np.stack([r1.ravel(), r2.ravel(), 1 - r1.ravel() - r2.ravel()], axis=1)
    pts = pts[np.all((pts >= lo - 1e-12) & (pts <= hi + 1e-12), axis=1)]
    vals = truth.aggregate(pts, n, d, w)
    i = int(np.argmin(vals))
    return float(vals[i]), pts[i]


@pytest.mark.parametrize("seed,scaling,weights,bounds", [
    (0, 0.0, None, None),
    (1, 0.8, [0.1, 0.2, 0.7], None),
    (2, 0.0, None, [(0.1, 0.5), (0.0, 1.0), (0.2, 0.6)]),
    (3, 0.3, {"a": 1.0}, None),
])
def test_true_optimum_matches_dense_grid(seed: int, scaling: float, weights: object,
                                         bounds: object) -> None:
    truth = random_truth(("a", "b", "c"), ("a", "b", "x"), seed=seed, mixture_scaling=scaling)
    n, d = 3e8, 6e9
    r, loss = true_optimum(truth, n, d, weights=weights, bounds=bounds, seed=seed)
    lo, hi = (np.zeros(3), np.ones(3)) if bounds is None else np.array(bounds).T
    assert abs(r.sum() - 1) < 1e-15 and (r >= lo).all() and (r <= hi).all()
    assert loss == pytest.approx(float(truth.aggregate(r, n, d, weights)), abs=0)
    coarse, best = _grid_min(truth, n, d, weights, lo, hi, 1 / 500)
    fine, _ = _grid_min(truth, n, d, weights, lo, hi, 1e-5, centre=best, half=4e-3)
    assert loss <= min(coarse, fine) + 1e-12  # beats every grid point
    assert min(coarse, fine) - loss < 1e-6


def test_true_optimum_bad_bounds() -> None:
    truth = random_truth(("a", "b", "c"), ("a", "b"), seed=0)
    with pytest.raises(InfeasibleConstraintsError):
        true_optimum(truth, 1e8, 2e9, bounds=[(0.5, 1), (0.5, 1), (0.1, 1)])
    with pytest.raises(MixtureError):
        true_optimum(truth, 1e8, 2e9, bounds={"zzz": (0, 1)})
    with pytest.raises(ScaleError):
        true_optimum(truth, -1.0, 2e9)


def test_project_to_simplex() -> None:
    r = project_to_simplex([0.9, 0.9, -3.0])
    np.testing.assert_allclose(r, [0.5, 0.5, 0.0], atol=1e-15)
    r = project_to_simplex([1.0, 0.0, 0.0], lo=[0, 0.2, 0.3], hi=[1, 1, 1])
    np.testing.assert_allclose(r, [0.5, 0.2, 0.3], atol=1e-15)


# --- fixtures -------------------------------------------------------------------------------

def _numbers_equal(a: object, b: object, rtol: float) -> bool:
    """Structural equality of parsed JSON, floats compared with a relative tolerance."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            bool(np.isclose(a, b, rtol=rtol, atol=1e-8))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            _numbers_equal(a[k], b[k], rtol) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(
            _numbers_equal(x, y, rtol) for x, y in zip(a, b))
    return a == b


def assert_same_file(stored: Path, regenerated: Path) -> None:
    """The simulated data must regenerate exactly; derived optima (found by scipy's optimiser,
    whose last digits move between releases) within 1e-7 relative or 1e-8 absolute."""
    if stored.suffix == ".json":
        a, b = json.loads(stored.read_text()), json.loads(regenerated.read_text())
        assert _numbers_equal(a, b, rtol=1e-7), stored.name
    elif stored.suffix == ".csv":
        pd.testing.assert_frame_equal(pd.read_csv(stored), pd.read_csv(regenerated),
                                      check_exact=False, rtol=1e-12, obj=stored.name)
    else:
        assert stored.read_bytes() == regenerated.read_bytes(), stored.name


def test_fixtures_regenerate(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["sweep.csv", "sweep_truth.json", "single_scale.csv",
                            "single_scale_truth.json", "baseline.txt", "README.md"])
    for name in names:
        assert_same_file(FIXTURES / name, tmp_path / name)
    assert (FIXTURES / "sweep.csv").stat().st_size < 300_000


def test_fixture_contents() -> None:
    sweep = pd.read_csv(FIXTURES / "sweep.csv")
    truth_file = json.loads((FIXTURES / "sweep_truth.json").read_text())
    truth = SweepTruth.from_dict(truth_file)
    assert truth == random_truth(FIXTURE_SOURCES, FIXTURE_DOMAINS, seed=0)
    assert truth.noise == 0.003 and truth.run_noise == 0.002
    assert len(sweep) == 16 * 4 * 10 and sweep["run"].nunique() == 64
    first = sweep[sweep["run"] == "20M-0"][_mix_cols(truth)].iloc[0].to_numpy()
    base = dict(kv.split("=") for kv in (FIXTURES / "baseline.txt").read_text().strip().split(","))
    assert (FIXTURES / "baseline.txt").read_text() == BASELINE + "\n"
    np.testing.assert_allclose(first, [float(base[s]) for s in truth.sources], atol=1e-15)
    uniform = sweep[sweep["run"] == "20M-1"][_mix_cols(truth)].iloc[0].to_numpy()
    np.testing.assert_allclose(uniform, 0.2, atol=1e-15)
    single = pd.read_csv(FIXTURES / "single_scale.csv")
    assert len(single) == 64 and (single["params"] == 10**6).all() and (single["tokens"] == 10**9).all()
    assert SweepTruth.from_dict(json.loads((FIXTURES / "single_scale_truth.json").read_text())) == truth
    target = truth_file["generation"]["target"]
    assert target["optimum_loss"] < target["first_mixture_loss"]
    assert "python -m mixlaws.simulate --out fixtures/" in (FIXTURES / "README.md").read_text()


def test_write_fixtures_other_seed_and_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = write_fixtures(tmp_path / "x", seed=1)
    assert "--seed 1" in (tmp_path / "x" / "README.md").read_text() and len(paths) == 6
    assert (tmp_path / "x" / "sweep.csv").read_bytes() != (FIXTURES / "sweep.csv").read_bytes()
    assert main(["--out", str(tmp_path / "y"), "--noise", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "noise" in err
