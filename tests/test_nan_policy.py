"""Missing loss cells: ``nan_policy="raise"`` (an error naming the flag) or ``"omit"`` (cells, not
rows, left out of the fits, with a note)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES, shared
from mixlaws.cli import main
from mixlaws.errors import DataNote, RunsTableError
from mixlaws.fit import NestedMixingLaw, fit_step_stage
from mixlaws.runs import validate_runs

SWEEP = FIXTURES / "sweep.csv"
TARGET = (1e9, 2e10)
# (row, column): interior checkpoints, plus the last checkpoint of run 50M-3 in one domain
HOLES = [(3, "loss:web"), (4, "loss:web"), (5, "loss:code"), (13, "loss:prose"),
         (209, "loss:science"), (209, "loss:web")]


def _holes() -> pd.DataFrame:
    df = pd.read_csv(SWEEP)
    for row, col in HOLES:
        df.loc[row, col] = np.nan
    return df


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def test_raise_is_the_default_and_names_the_flag():
    with pytest.raises(RunsTableError, match="--nan-policy omit") as info:
        validate_runs(_holes())
    assert info.value.column == "loss:web" and info.value.row == 4


def test_omit_keeps_rows_and_notes_cells_per_run_and_domain():
    with pytest.warns(DataNote, match=r"omitted 6 missing loss cell\(s\).* in 3 run\(s\)"):
        table = validate_runs(_holes(), nan_policy="omit")
    assert len(table.data) == 640 and table.nan_policy == "omit"
    assert int(table.data[table.loss_columns].isna().to_numpy().sum()) == 6
    note = table.notes[0]
    assert "'20M-0' (3), '20M-1' (1), '50M-4' (2)" in note and "domain(s): web, code, prose, science" in note


def test_unknown_policy_is_an_error():
    with pytest.raises(RunsTableError, match="nan_policy must be one of raise, omit"):
        validate_runs(pd.read_csv(SWEEP), nan_policy="drop")


def test_step_stage_accepts_cell_masks_and_ignores_masked_cells():
    rng = np.random.default_rng(0)
    D = np.geomspace(1e8, 2e9, 8)[None].repeat(3, 0)
    Y = 2.0 + np.array([[[5.0, 8.0]]]) * D[..., None] ** -0.3 * (1 + 1e-3 * rng.standard_normal((3, 8, 2)))
    full = fit_step_stage(["a", "b", "c"], D, Y, np.ones((3, 8)))
    cells = np.ones((3, 8, 2))
    same = fit_step_stage(["a", "b", "c"], D, Y, cells)
    np.testing.assert_allclose(same.params["E"], full.params["E"], rtol=1e-10)
    cells[1, 2, 0] = cells[2, 5, 1] = 0.0
    spoiled = Y.copy()
    spoiled[1, 2, 0] = spoiled[2, 5, 1] = 1e3  # masked: must not matter
    a = fit_step_stage(["a", "b", "c"], D, Y, cells)
    b = fit_step_stage(["a", "b", "c"], D, spoiled, cells)
    for k in ("E", "B", "beta"):
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-9)
    assert a.n_data == 3 * 8 * 2 - 2


@pytest.mark.parametrize("family", ["joint", "joint-mix"])
def test_joint_families_leave_omitted_cells_out_of_their_fit(family):
    """Missing cells get weight 0 in the joint laws' fits (not NaN objectives, not a refusal)."""
    from mixlaws.fit import FAMILIES

    full = _quiet(lambda: FAMILIES[family].make().fit(validate_runs(pd.read_csv(SWEEP))))
    holes = _quiet(lambda: FAMILIES[family].make().fit(validate_runs(_holes(), nan_policy="omit")))
    assert holes.fit_.n_data == full.fit_.n_data - len(HOLES)
    for k in ("c", "alpha", "beta"):
        assert np.isfinite(holes.fit_.params[k]).all()
    a, b = full.predict(full.mixtures_, *TARGET), holes.predict(full.mixtures_, *TARGET)
    assert np.max(np.abs(b["loss"] / a["loss"] - 1)) < 2e-3


@pytest.mark.slow  # two nested fits of the sweep
def test_omit_fit_predicts_finite_losses_close_to_the_complete_fit(fitted_fixture):
    full = fitted_fixture  # tie_beta="all" on the complete sweep
    holes = _quiet(lambda: NestedMixingLaw(tie_beta="all").fit(
        validate_runs(_holes(), nan_policy="omit")))
    a = full.predict(full.mixtures_, *TARGET)
    b = holes.predict(full.mixtures_, *TARGET)
    assert np.isfinite(b["domains"]).all()
    assert np.max(np.abs(b["loss"] / a["loss"] - 1)) < 2e-3
    assert holes.reading_["nan_policy"] == "omit"


def test_single_scale_missing_cell_leaves_that_run_out_of_that_domain_only():
    df = pd.read_csv(SWEEP)
    last = df[df["params"] == 2e7].groupby("run").tail(1).drop(columns="step").reset_index(drop=True)
    last.loc[0, "loss:code"] = np.nan
    model = _quiet(lambda: NestedMixingLaw().fit(validate_runs(last, nan_policy="omit")))
    N, D = 2e7, float(last["tokens"].iloc[0])
    target = model.target(N, D)
    assert any("left out of those domains only" in n for n in target.notes)
    # that mixture lacks a code loss at its only run: left out of the mixing stage, with a note
    assert len(target.mixtures) == len(model.mixtures_) - 1
    assert np.isfinite(model.predict(model.mixtures_, N, D)["domains"]).all()


@pytest.mark.slow  # ~30 s on the shared 2-core machine (fit, target, optimise, report)
@pytest.mark.filterwarnings("default::mixlaws.errors.DataNote")  # the CLI prints the note
def test_cli_run_with_omit_finishes_with_a_note(tmp_path, capsys):
    runs = tmp_path / "holes.csv"
    _holes().to_csv(runs, index=False)
    out = tmp_path / "out"
    code = main(["run", str(runs), "--tie-beta", "all", "--params", "1e9", "--tokens", "2e10",
                 "--formats", "json", "-o", str(out), "--nan-policy", "omit", "--no-report"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "mixlaws: note:" in captured.err and "omitted 6 missing loss cell(s)" in captured.err
    assert (out / "mixture.json").exists() and (out / "summary.json").exists()
    files = json.loads(captured.out)["files"]       # --no-report: no report, and none listed
    assert not (out / "report.html").exists() and not (out / "figures").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(files + ["summary.json"])
    code = main(["--quiet", "fit", str(runs)])
    assert code == 2 and "--nan-policy omit" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.filterwarnings("default::mixlaws.errors.DataNote")  # the CLI prints the note
def test_ye_5mix_raw_table_runs_with_omit(tmp_path, capsys):
    path = shared("ye2024", "5mix_runs.csv")
    assert main(["--quiet", "fit", str(path)]) == 2
    assert "--nan-policy omit" in capsys.readouterr().err
    # --law nested: the default (auto) would add ~6 backtest refits of each family (minutes
    # here); the omitted cells' path through the joint families is tested above
    code = main(["run", str(path), "--law", "nested", "--nan-policy", "omit", "--params", "1.2e9",
                 "--tokens", "31457280000", "--formats", "json", "--no-report",
                 "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "omitted 88 missing loss cell(s)" in err and "'70M-3' (88)" in err


def test_posterior_refuses_missing_cells_instead_of_nan_draws(fitted_fixture):
    from mixlaws.errors import MixlawsError
    from mixlaws.posterior import sample_posterior

    with pytest.raises(MixlawsError, match="does not handle missing loss cells"):
        sample_posterior(fitted_fixture, _quiet(validate_runs, _holes(), nan_policy="omit"),
                         *TARGET, n_draws=10)
