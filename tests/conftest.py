"""Shared fixtures: paths to the bundled fixture and to ../shared/data (skipped when absent)."""

from __future__ import annotations

import os
import warnings
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
