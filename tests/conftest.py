"""Shared fixtures: paths to the bundled fixture and to ../shared/data (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings
from _expected import expected_warnings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def sweep_path() -> Path:
    return FIXTURES / "sweep.csv"


@pytest.fixture(scope="session")
def baseline_text() -> str:
    return (FIXTURES / "baseline.txt").read_text().strip()


@pytest.fixture(scope="session")
def fitted_fixture():
    """The bundled sweep fitted once per session (tie_beta='all', as in the Quickstart)."""
    from mixlaws.fit import NestedMixingLaw
    from mixlaws.runs import read_runs

    with expected_warnings():
        return NestedMixingLaw(tie_beta="all").fit(read_runs(FIXTURES / "sweep.csv"))


@pytest.fixture(scope="session")
def fixture_fit(tmp_path_factory, sweep_path) -> Path:
    """``mixlaws fit --tie-beta all`` of the bundled sweep, once per session (read it only;
    copy it to change it)."""
    from mixlaws.cli import main

    out = tmp_path_factory.mktemp("fixture-fit") / "fit.json"
    assert main(["--quiet", "fit", str(sweep_path), "--tie-beta", "all", "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def fixture_posterior(tmp_path_factory, fixture_fit) -> dict:
    """A copy of :func:`fixture_fit` sampled by ``mixlaws sample --draws 300`` at the README
    target (1e9 parameters, 2e10 tokens), once per session: ``{"fit", "npz", "dir"}``. Tests
    may write new files into ``dir``; they must not change ``fit`` or ``npz``."""
    import shutil

    from mixlaws.cli import main

    d = tmp_path_factory.mktemp("fixture-posterior")
    fit = d / "fit.json"
    shutil.copy(fixture_fit, fit)
    assert main(["--quiet", "sample", str(fit), "--params", "1e9", "--tokens", "2e10",
                 "--draws", "300"]) == 0
    return {"fit": str(fit), "npz": str(d / "fit.posterior.npz"), "dir": d}


@pytest.fixture(scope="session")
def fixture_run(tmp_path_factory, sweep_path, baseline_text) -> tuple[Path, str]:
    """``mixlaws run`` of the bundled sweep (tie-beta all, the fixture's baseline, every
    export format) at the README target, once per session: ``(output dir, stdout)``. Read only."""
    import contextlib
    import io

    from mixlaws.cli import main

    out = tmp_path_factory.mktemp("fixture-run") / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
        code = main(["--quiet", "run", str(sweep_path), "--params", "1e9", "--tokens", "2e10",
                     "--tie-beta", "all", "--baseline", baseline_text, "-o", str(out)])
    assert code == 0
    return out, stdout.getvalue()


def shared(*parts: str) -> Path:
    """Path into ../shared/data, skipping the test when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


os.environ.setdefault("MPLBACKEND", "Agg")

# Property tests check properties, not speed: a first JAX compilation on a loaded 2-core machine
# takes longer than hypothesis's default 200 ms deadline (seen: 696 ms).
settings.register_profile("mixlaws", deadline=None)
settings.load_profile("mixlaws")
