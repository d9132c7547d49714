"""The README's "Bad input and what mixlaws says" table is what the CLI actually says."""

from __future__ import annotations

import contextlib
import io
import os

import pytest

from bad_inputs import CASES, _fitted, run_case, table_row
from mixlaws.cli import main

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


@pytest.fixture(scope="module")
def fit_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fit")
    _fitted(str(d))
    return str(d)


@pytest.fixture(scope="module")
def readme() -> str:
    with open(README, encoding="utf-8") as f:
        text = f.read()
    assert "## Bad input and what mixlaws says" in text
    return text


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_documented_message_is_produced(case, fit_dir, readme, tmp_path):
    if case.needs_fit:
        os.link(os.path.join(fit_dir, "fit.json"), tmp_path / "fit.json")
    code, msg = run_case(case, str(tmp_path))
    assert code == 2, msg
    assert msg.startswith("mixlaws: error: ") and "\n" not in msg and "Traceback" not in msg
    assert table_row(case, msg) in readme.splitlines(), f"README row outdated for {case.name}: {msg}"


def test_debug_shows_traceback(tmp_path):
    (tmp_path / "runs.csv").write_text("")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["--debug", "fit", str(tmp_path / "runs.csv")]) == 2
    assert "Traceback" in err.getvalue() and "mixlaws: error:" in err.getvalue()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["fit", str(tmp_path / "runs.csv")]) == 2
    assert "Traceback" not in err.getvalue()
