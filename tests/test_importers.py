"""`mixlaws import olmix|regmix|long`: other tools' files -> the canonical runs table."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from conftest import FIXTURES, shared
from mixlaws.cli import main
from mixlaws.errors import RunsTableError
from mixlaws.runs import import_long, import_olmix, import_regmix, read_runs, to_long

SWEEP = FIXTURES / "sweep.csv"


def _regmix_files(table: pd.DataFrame, d, stem: str) -> tuple:
    """RegMix's own layout: mixtures (index, train_the_pile_<source>) + losses (index, metric/...)."""
    index = table["run"].str.rsplit("-", n=1).str[1].astype(int)
    mix = pd.DataFrame({"index": index})
    loss = pd.DataFrame({"index": index})
    for c in table.columns:
        if c.startswith("mix:"):
            mix[f"train_the_pile_{c[4:]}"] = table[c]
        elif c.startswith("loss:"):
            loss[f"metric/the_pile_{c[5:]}_val_loss"] = table[c]
    mix_path, loss_path = d / f"{stem}.csv", d / f"{stem}_loss.csv"
    mix.sample(frac=1.0, random_state=1).to_csv(mix_path, index=False)  # join order must not matter
    loss.to_csv(loss_path, index=False)
    return mix_path, loss_path


def _ordered(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("run").loc[like["run"]].reset_index()


@pytest.mark.parametrize("split", ["train_1m", "test_1m"])
def test_regmix_importer_reproduces_the_shared_tables(tmp_path, split, capsys):
    ref = pd.read_csv(shared("regmix", f"{split}_runs.csv"))
    mix, loss = _regmix_files(ref, tmp_path, split)
    out = tmp_path / "runs.csv"
    assert main(["import", "regmix", str(mix), str(loss), "--params", "1M", "--tokens", "1B",
                 "-o", str(out)]) == 0, capsys.readouterr().err
    got = pd.read_csv(out)
    assert list(got.columns) == list(ref.columns)
    pd.testing.assert_frame_equal(_ordered(got, ref), ref)


def test_regmix_importer_on_a_small_table(tmp_path):
    ref = pd.DataFrame({"run": ["swarm-1", "swarm-2", "swarm-3"], "params": 1000000,
                        "tokens": 1000000000, "mix:pile_cc": [0.5, 0.2, 1.0],
                        "mix:github": [0.5, 0.8, 0.0], "loss:pile_cc": [4.1, 4.5, 3.9]})
    mix, loss = _regmix_files(ref, tmp_path, "swarm")
    got = pd.read_csv(io.StringIO(import_regmix(mix, loss, params=1e6, tokens=1e9).to_csv(index=False)))
    pd.testing.assert_frame_equal(_ordered(got, ref), ref)
    assert import_regmix(mix, loss, params=1e6, tokens=1e9, run_prefix="r")["run"].str.match(
        r"r-\d").all()
    with pytest.raises(RunsTableError, match="--params N --tokens D"):
        import_regmix(mix, loss)
    pd.read_csv(loss).iloc[:2].to_csv(loss, index=False)
    with pytest.raises(RunsTableError, match="no row for index"):
        import_regmix(mix, loss, params=1e6, tokens=1e9)


def test_olmix_importer_joins_on_run_and_keeps_names(tmp_path):
    ratios = tmp_path / "ratios.csv"
    metrics = tmp_path / "metrics.csv"
    ratios.write_text("run,name,index,dclm,arxiv,code\n"
                      "r1,mix-a,0,0.6,0.3,0.1\nr2,mix-b,1,0.2,0.2,0.6\n")
    metrics.write_text("run,name,index,pile_cc,arxiv_val\n"
                       "r2,mix-b,1,3.5,2.9\nr1,mix-a,0,3.1,2.7\n")
    got = import_olmix(ratios, metrics, params=3e7, tokens=3e9)
    assert list(got.columns) == ["run", "name", "params", "tokens", "mix:dclm", "mix:arxiv",
                                 "mix:code", "loss:pile_cc", "loss:arxiv_val"]
    assert got.loc[got["run"] == "r2", "loss:pile_cc"].item() == "3.5"
    out = tmp_path / "runs.csv"
    got.to_csv(out, index=False)
    table = read_runs(out)
    assert table.data["name"].tolist() == ["mix-a", "mix-b"] and table.is_single_scale


def test_long_format_round_trips_wide_long_wide(tmp_path):
    wide = pd.read_csv(SWEEP, dtype=str)
    wide.insert(1, "name", "mixture-" + wide["run"].str.split("-").str[1])
    long, mixtures = to_long(wide)
    assert set(long.columns) == {"run", "tokens", "step", "metric", "value"}
    assert len(long) == len(wide) * 4
    long.to_csv(tmp_path / "long.csv", index=False)
    mixtures.to_csv(tmp_path / "mix.csv", index=False)
    back = import_long(tmp_path / "long.csv", tmp_path / "mix.csv")
    assert list(back.columns) == list(wide.columns)
    assert back.to_csv(index=False) == wide.to_csv(index=False)  # every cell, as written


def test_long_format_with_plain_metrics_and_mixture_columns(tmp_path):
    (tmp_path / "long.csv").write_text("run,step,metric,value\n" + "".join(
        f"{r},{s},{m},{v}\n" for r in ("a", "b") for s in (100, 200, 300)
        for m, v in (("web", 3.0 + 100 / s), ("code", 2.0 + 50 / s))))
    (tmp_path / "mix.csv").write_text("run,params,web,code\na,1e8,0.7,0.3\nb,1e8,0.4,0.6\n")
    got = import_long(tmp_path / "long.csv", tmp_path / "mix.csv")
    assert list(got.columns) == ["run", "params", "step", "mix:web", "mix:code", "loss:web",
                                 "loss:code"]
    assert got["step"].tolist() == ["100", "200", "300"] * 2
    (tmp_path / "mix.csv").write_text("run,web,code\na,0.7,0.3\n")
    with pytest.raises(RunsTableError, match="no mixture for run 'b'"):
        import_long(tmp_path / "long.csv", tmp_path / "mix.csv", params=1e8)


def test_import_never_writes_over_an_input(tmp_path, capsys):
    ratios, metrics = tmp_path / "ratios.csv", tmp_path / "metrics.csv"
    ratios.write_text("run,name,index,a,b\nr1,x,0,0.5,0.5\n")
    metrics.write_text("run,name,index,l\nr1,x,0,3.0\n")
    before = metrics.read_bytes()
    assert main(["import", "olmix", str(ratios), str(metrics), "--params", "1e7", "--tokens",
                 "1e9", "-o", str(metrics)]) == 2
    assert "is an input of this command" in capsys.readouterr().err
    assert metrics.read_bytes() == before
    assert main(["import", "olmix", str(ratios), str(metrics), "-o", str(tmp_path / "o.csv")]) == 2
    assert "--params N --tokens D" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_name_column_labels_mixtures_in_the_fit(tmp_path):
    import warnings

    from mixlaws.fit import NestedMixingLaw

    df = pd.read_csv(SWEEP)
    df.insert(1, "mixture", "blend-" + df["run"].str.split("-").str[1])
    df.loc[df["run"].str.endswith("-3"), "mixture"] = "blend-2"  # two mixtures, one name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = NestedMixingLaw(tie_beta="all").fit(
            read_runs(_write(tmp_path / "named.csv", df.groupby("run").tail(1))))
    labels = model.mixture_labels_
    assert len(labels) == 16 and len(set(labels)) == 16
    assert {"blend-0", "blend-1", "blend-15"} <= set(labels) and "blend-2" not in labels
    ids = sorted(lab.split("-")[1] for lab in labels if not lab.startswith("blend"))
    assert ids == ["2", "3"]  # the ambiguous name falls back to a run id of each mixture
    df.loc[df["run"] == "20M-0", "mixture"] = ["x"] + ["blend-0"] * 9
    with pytest.raises(RunsTableError, match="run '20M-0' has different values in column 'name'"):
        read_runs(_write(tmp_path / "bad.csv", df))


def _write(path, frame):
    frame.to_csv(path, index=False)
    return path
