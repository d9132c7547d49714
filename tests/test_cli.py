"""Every CLI command on the bundled fixture; user errors are one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mixlaws.cli import main, parse_quantity
from mixlaws.export import parse_export

TARGET = ["--params", "1e9", "--tokens", "2e10"]


@pytest.fixture(scope="module")
def fit_json(fixture_fit):
    return fixture_fit          # `mixlaws fit --tie-beta all` of the bundled sweep (conftest)


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_parse_quantity():
    assert parse_quantity("805.7M") == pytest.approx(805.7e6)
    assert parse_quantity("100B") == 1e11
    assert parse_quantity("2e10") == 2e10


def test_fit_writes_an_artifact(fit_json):
    d = json.loads(fit_json.read_text())
    assert d["kind"] == "mixlaws.fit" and d["sources"] == ["web", "code", "books", "papers", "wiki"]


def test_predict_one_mixture_per_domain(fit_json, capsys, baseline_text):
    code, out, _ = run_cli(["predict", str(fit_json), *TARGET, "--mixture", baseline_text,
                            "--per-domain"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 1 and set(rows[0]) >= {"mixture", "loss", "domains"}
    assert rows[0]["mixture"]["web"] == pytest.approx(0.6)
    assert 2.5 < rows[0]["loss"] < 4.0
    assert rows[0]["loss"] == pytest.approx(sum(rows[0]["domains"].values()) / 4, rel=1e-12)


def test_predict_mixtures_file_predicts_each_distinct_mixture_once(fit_json, sweep_path, capsys):
    code, out, _ = run_cli(["predict", str(fit_json), *TARGET, "--mixtures", str(sweep_path)], capsys)
    assert code == 0
    assert len(json.loads(out)) == 16


def test_optimize_then_export(fit_json, tmp_path, capsys, baseline_text):
    mix = tmp_path / "mix.json"
    code, _, _ = run_cli(["optimize", str(fit_json), *TARGET, "--baseline", baseline_text,
                          "-o", str(mix)], capsys)
    assert code == 0
    m = json.loads(mix.read_text())
    assert m["kind"] == "mixlaws.mixture"
    assert abs(sum(m["mixture"].values()) - 1) < 1e-12 and min(m["mixture"].values()) >= 0
    assert m["gain"] > 0 and m["predicted_loss"] < m["baseline"]["predicted_loss"]
    nonzero = {k: v for k, v in m["mixture"].items() if v > 0}
    for fmt in ("json", "megatron", "hf"):
        code, out, _ = run_cli(["export", str(mix), "--format", fmt], capsys)
        assert code == 0
        back = parse_export(out, fmt)        # the loader file says the optimised shares
        assert set(nonzero) <= set(back) <= set(m["mixture"])   # zero weights may be dropped
        for k, v in back.items():
            assert v == pytest.approx(m["mixture"][k], abs=1e-12), (fmt, k)
    hf = json.loads(run_cli(["export", str(mix), "--format", "hf"], capsys)[1])
    assert abs(sum(hf["probabilities"]) - 1) < 1e-12
    # a list of formats, as run --formats takes, writes one file per format into -o DIR
    code, _, _ = run_cli(["export", str(mix), "--format", "json,megatron", "-o",
                          str(tmp_path / "ex")], capsys)
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "ex").iterdir()) == ["export.json",
                                                                  "export.megatron.txt"]
    code, _, err = run_cli(["export", str(mix), "--format", "json,megatron"], capsys)
    assert code == 2 and "give -o DIR" in err
    code, _, err = run_cli(["export", str(mix), "--format", "json,nope"], capsys)
    assert code == 2 and "unknown format nope" in err and err.count("\n") == 1


def test_predict_mixture_takes_a_run_id_as_baseline_does(fit_json, sweep_path, capsys):
    import pandas as pd

    from mixlaws.fit import load_model

    df = pd.read_csv(sweep_path)
    r = df.loc[df["run"] == "20M-3", [c for c in df if c.startswith("mix:")]].to_numpy(float)[:1]
    code, out, _ = run_cli(["predict", str(fit_json), *TARGET, "--mixture", "20M-3"], capsys)
    assert code == 0
    by_id = json.loads(out)[0]
    explicit = load_model(fit_json).predict(r / r.sum(), 1e9, 2e10)["loss"][0]
    assert by_id["label"] == "20M-3" and by_id["loss"] == pytest.approx(explicit, rel=1e-9)
    code, _, err = run_cli(["predict", str(fit_json), *TARGET, "--mixture", "nope"], capsys)
    assert code == 2 and "neither a mixture" in err


def test_run_writes_every_output(fixture_run):
    out, stdout = fixture_run   # `mixlaws --quiet run` of the bundled sweep (conftest)
    summary = json.loads(stdout)
    for name in summary["files"]:
        assert (out / name).stat().st_size > 0
    assert summary["fit"]["converged"] is True


@pytest.mark.parametrize("args, message", [
    (["predict", "{fit}", *TARGET, "--mixture", "web=0.5,cake=0.5"], "cake"),
    (["predict", "{fit}", *TARGET, "--mixture", "web=0.5,code=0.4"], "sum"),
    (["predict", "{fit}", "--params", "1e9", "--tokens", "2e10", "--mixtures", "/nonexistent.csv"],
     "nonexistent"),
    (["predict", "{sweep}", *TARGET, "--mixture", "web=1"], "is it a fit artifact"),
    (["fit", "/nonexistent.csv"], "nonexistent"),
])
def test_user_errors_are_one_line_with_exit_code_2(args, message, fit_json, sweep_path, capsys):
    args = [a.format(fit=fit_json, sweep=sweep_path) for a in args]
    code, out, err = run_cli(args, capsys)
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("mixlaws: error:")]
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in err


def test_console_script_entry_point(fit_json, baseline_text):
    res = subprocess.run([sys.executable, "-m", "mixlaws.cli", "predict", str(fit_json), *TARGET,
                          "--mixture", baseline_text], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["loss"] > 0
