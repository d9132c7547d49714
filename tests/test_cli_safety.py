"""Inputs that cannot hurt: one test per class of harm (overwritten inputs, half-written or stale
outputs, tracebacks, silently wrong results, tampered artifacts)."""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest

from conftest import FIXTURES
from mixlaws.cli import main
from mixlaws.errors import ArtifactError, ConstraintError, MixlawsError, RunsTableError
from mixlaws.fit import load_model, save_model
from mixlaws.optimize import load_constraints
from mixlaws.runs import read_runs, validate_runs

SWEEP = FIXTURES / "sweep.csv"
TARGET = ["--params", "1e9", "--tokens", "2e10"]
SOURCES = ["web", "code", "books", "papers", "wiki"]


@pytest.fixture(scope="module")
def work(tmp_path_factory, fitted_fixture):
    """A directory with a copy of the sweep, its fit and an optimised mixture."""
    d = tmp_path_factory.mktemp("safety")
    shutil.copy(SWEEP, d / "runs.csv")
    save_model(fitted_fixture, d / "fit.json")  # = `mixlaws fit sweep.csv --tie-beta all`
    assert main(["--quiet", "optimize", str(d / "fit.json"), *TARGET, "--n-starts", "2",
                 "-o", str(d / "mix.json")]) == 0
    return d


def _err(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("mixlaws: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- outputs never onto an input; atomic; all-or-nothing run -------------------------------------

def test_output_onto_an_input_is_refused_and_the_input_kept(work, tmp_path, capsys):
    shutil.copy(work / "fit.json", tmp_path / "fit.json")
    before = (tmp_path / "fit.json").read_bytes()
    assert main(["optimize", str(tmp_path / "fit.json"), *TARGET, "-o",
                 str(tmp_path / "fit.json")]) == 2
    assert "is an input of this command" in _err(capsys)
    assert (tmp_path / "fit.json").read_bytes() == before
    os.symlink(tmp_path / "fit.json", tmp_path / "link.json")  # same file by another name
    assert main(["optimize", str(tmp_path / "link.json"), *TARGET, "-o",
                 str(tmp_path / "fit.json")]) == 2
    assert "link.json" in _err(capsys)
    shutil.copy(SWEEP, tmp_path / "runs.csv")
    assert main(["fit", str(tmp_path / "runs.csv"), "-o", str(tmp_path / "runs.csv")]) == 2
    assert "is an input" in _err(capsys)
    assert (tmp_path / "runs.csv").read_bytes() == SWEEP.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["fit.json", "link.json", "runs.csv"]  # no temp files


def test_failed_run_leaves_outdir_as_it_was(tmp_path, capsys):
    df = pd.read_csv(SWEEP)
    df[df["run"].str.split("-").str[1].astype(int) < 5].to_csv(tmp_path / "few.csv", index=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "fit.json").write_text("{}")  # an older run's output
    assert main(["run", str(tmp_path / "few.csv"), "--tie-beta", "all", *TARGET, "-o",
                 str(out)]) == 2
    _err(capsys)
    assert sorted(os.listdir(out)) == ["fit.json", "notes.txt"]
    assert (out / "fit.json").read_text() == "{}"
    assert [p for p in os.listdir(tmp_path) if "staging" in p] == []


@pytest.mark.slow  # a whole `mixlaws run`
def test_successful_run_replaces_its_previous_outputs_and_keeps_the_users_files(work, tmp_path,
                                                                                capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "export.nanotron.yaml").write_text("stale")
    (out / "summary.json").write_text(json.dumps({"files": ["export.nanotron.yaml"]}))
    code = main(["--quiet", "run", str(work / "runs.csv"), "--tie-beta", "all", *TARGET,
                 "--n-starts", "2", "--formats", "json", "--held-out-refits", "0", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    files = set(os.listdir(out))
    assert "notes.txt" in files and "export.nanotron.yaml" not in files
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["files"]) | {"summary.json", "notes.txt"} >= files - {"figures"}


# -- Ctrl-C and global flags ----------------------------------------------------------------------

def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys):
    import mixlaws.cli._main as cli_main

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli_main, "cmd_fit", interrupted)
    assert main(["fit", str(SWEEP)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err


def test_global_flags_work_after_the_subcommand(work, capsys):
    from mixlaws.cli._main import build_parser

    parser = build_parser()
    for argv in (["--debug", "fit", "x.csv"], ["fit", "x.csv", "--debug"]):
        args = parser.parse_args(argv)
        assert args.debug and not args.quiet
    assert main(["predict", str(work / "fit.json"), *TARGET, "--mixture",
                 "web=0.6,code=0.1,books=0.1,papers=0.1,wiki=0.1", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["fit", str(work / "missing.csv"), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


# -- what used to be a traceback ------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["predict", "{fit}", *TARGET, "--mixture", ""], "expected source=proportion pairs"),
    (["optimize", "{fit}", *TARGET, "--n-starts", "0"], "--n-starts must be ≥ 1"),
    (["sample", "{fit}", *TARGET, "--draws", "0"], "--draws and --max-steps must be ≥ 1"),
    (["report", "{fit}", *TARGET, "--held-out-refits", "1"], "must be 0 (no held-out check) or ≥ 2"),
])
def test_former_tracebacks_are_one_line_errors(work, capsys, argv, message):
    assert main([a.format(fit=work / "fit.json") for a in argv]) == 2
    assert message in _err(capsys)


def test_non_utf8_constraints_file(tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"sources:\n  web: {max: 0.5}\n# \xff\xfe\n")
    with pytest.raises(ConstraintError, match="not UTF-8"):
        load_constraints(tmp_path / "c.yaml", SOURCES)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["runs"]["mixture"].__setitem__(0, 999), "content hash mismatch"),
    (lambda d: d["mixtures"][0].__setitem__(0, 0.9), "content hash mismatch"),
    (lambda d: d.update(mixtures="nan"), "content hash mismatch"),
])
def test_edited_artifact_is_refused(work, tmp_path, edit, message):
    d = json.loads((work / "fit.json").read_text())
    edit(d)
    (tmp_path / "fit.json").write_text(json.dumps(d))
    with pytest.raises(ArtifactError, match=message):
        load_model(tmp_path / "fit.json")


def test_damaged_artifact_without_hash_is_refused(work, tmp_path):
    d = json.loads((work / "fit.json").read_text())
    d.pop("integrity")
    d["runs"]["mixture"][0] = 999
    (tmp_path / "a.json").write_text(json.dumps(d))
    with pytest.raises(ArtifactError, match="damaged fit artifact.*IndexError"):
        load_model(tmp_path / "a.json")
    text = (work / "fit.json").read_text().replace('"weights": null', '"weights": NaN', 1)
    text = text.replace('"rmse": ', '"rmse": NaN, "x": ', 1)
    (tmp_path / "b.json").write_text(text)
    with pytest.raises(ArtifactError, match="bare NaN"):
        load_model(tmp_path / "b.json")
    assert load_model(work / "fit.json").mixtures_.shape == (16, 5)


# -- what used to be silently wrong ---------------------------------------------------------------

def test_tokens_decreasing_while_step_grows_is_an_error():
    df = pd.read_csv(SWEEP)
    df.loc[5, "tokens"] = df.loc[3, "tokens"]
    with pytest.raises(RunsTableError, match="run '20M-0': step grows.*tokens must increase"):
        validate_runs(df)


def test_step_only_table_needs_steps_not_tokens(work, tmp_path, capsys):
    df = pd.read_csv(SWEEP).drop(columns="tokens")
    df.to_csv(tmp_path / "steps.csv", index=False)
    assert main(["--quiet", "fit", str(tmp_path / "steps.csv"), "--tie-beta", "all", "-o",
                 str(tmp_path / "fit.json")]) == 0
    mixture = ["--mixture", "web=0.6,code=0.1,books=0.1,papers=0.1,wiki=0.1"]
    assert main(["predict", str(tmp_path / "fit.json"), *TARGET, *mixture]) == 2
    assert "give the target as --steps S" in _err(capsys)
    assert main(["predict", str(tmp_path / "fit.json"), "--params", "1e9", "--steps", "5e3",
                 *mixture]) == 0
    assert json.loads(capsys.readouterr().out)[0]["loss"] > 0
    assert main(["predict", str(work / "fit.json"), "--params", "1e9", "--steps", "5e3",
                 *mixture]) == 2
    assert "has a tokens column" in _err(capsys)


def test_duplicate_keys_in_constraints_and_paths_files(work, tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("sources:\n  web: {max: 0.5}\n  web: {min: 0.1}\n")
    with pytest.raises(ConstraintError, match="line 3.*duplicate key 'web'"):
        load_constraints(tmp_path / "c.yaml", SOURCES)
    (tmp_path / "c.json").write_text('{"total_tokens": 1e10, "total_tokens": 2e10}')
    with pytest.raises(ConstraintError, match="duplicate key 'total_tokens'"):
        load_constraints(tmp_path / "c.json", SOURCES)
    (tmp_path / "p.yaml").write_text("web: /data/web\ncode: /data/code\nweb: /data/web2\n")
    assert main(["export", str(work / "mix.json"), "--format", "megatron", "--paths",
                 str(tmp_path / "p.yaml")]) == 2
    assert "duplicate key 'web'" in _err(capsys)


def test_total_tokens_must_match_the_target(work, tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("total_tokens: 3.0e10\n")
    assert main(["optimize", str(work / "fit.json"), *TARGET, "--constraints",
                 str(tmp_path / "c.yaml")]) == 2
    assert "total_tokens=3e+10 disagrees with the target's tokens 2e+10 (--tokens)" in _err(capsys)
    from mixlaws.errors import ConstraintError        # the library checks it, not only the CLI
    from mixlaws.fit import load_model
    from mixlaws.optimize import constraints_from_dict

    model = load_model(work / "fit.json")
    with pytest.raises(ConstraintError, match="disagrees with the target's tokens"):
        model.target(1e9, 2e10).optimize(constraints=constraints_from_dict(
            {"total_tokens": 3e10}, model.sources_))


@pytest.mark.parametrize("fmt", ["megatron", "nanotron", "hf"])
def test_export_with_a_paths_file_lacking_a_source_names_it(work, tmp_path, capsys, fmt):
    mix = json.loads((work / "mix.json").read_text())
    used = [s for s, w in mix["mixture"].items() if w > 0]
    (tmp_path / "p.yaml").write_text("".join(f"{s}: /data/{s}\n" for s in used[1:]))
    assert main(["export", str(work / "mix.json"), "--format", fmt, "--paths",
                 str(tmp_path / "p.yaml")]) == 2
    assert f"source '{used[0]}' has no data path" in _err(capsys)


# -- the artifact remembers how the table was read ------------------------------------------------

@pytest.mark.filterwarnings("ignore::mixlaws.errors.DataNote")   # the renormalisation note
def test_sample_reads_the_table_as_the_fit_did(tmp_path, monkeypatch, capsys):
    import mixlaws.posterior as posterior

    df = pd.read_csv(SWEEP)
    df.loc[df["run"] == "20M-0", "mix:web"] += 0.02  # sums to 1.02: needs --renormalize
    df.to_csv(tmp_path / "runs.csv", index=False)
    assert main(["--quiet", "fit", str(tmp_path / "runs.csv"), "--renormalize", "--tie-beta",
                 "all", "-o", str(tmp_path / "fit.json")]) == 0
    reading = json.loads((tmp_path / "fit.json").read_text())["reading"]
    assert reading["renormalize"] is True and reading["nan_policy"] == "raise"
    assert reading["table_sha256"] == read_runs(tmp_path / "runs.csv", renormalize=True).content_hash()

    def reached(*a, **k):
        raise MixlawsError("reached the sampler")
    monkeypatch.setattr(posterior, "sample_posterior", reached)
    fit = str(tmp_path / "fit.json")
    assert main(["sample", fit, *TARGET]) == 2  # no --renormalize needed
    assert "reached the sampler" in _err(capsys)

    df.loc[0, "loss:web"] *= 1.01  # the table changed after the fit
    df.to_csv(tmp_path / "runs.csv", index=False)
    assert main(["sample", fit, *TARGET]) == 2
    assert "differs from the one" in _err(capsys)

    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(fit, moved / "fit.json")
    os.remove(tmp_path / "runs.csv")
    assert main(["sample", str(moved / "fit.json"), *TARGET]) == 2
    assert "comes from the artifact" in (msg := _err(capsys)) and "--runs" in msg
