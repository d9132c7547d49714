"""Tests of mixlaws.runs: reading and validating runs tables and user mixtures."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixlaws.errors import DataNote, MixtureError, RunsTableError
from mixlaws.runs import (
    RunsTable,
    mixture_from_mapping,
    parse_mixture,
    read_mixtures,
    read_runs,
    read_val_weights,
    validate_runs,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = ("web", "code", "books")
DOMAINS = ("pile", "github")


def raw_table() -> pd.DataFrame:
    """Two sizes x two mixtures x three checkpoints, in file order (not sorted)."""
    rows = []
    mixes = {"a": (0.5, 0.25, 0.25), "b": (0.2, 0.8, 0.0)}
    for size, params in (("70M", 7e7), ("160M", 1.6e8)):
        for key, mix in mixes.items():
            for step in (3, 1, 2):
                loss = 2.0 + 1e9 / params / step + mix[0]
                rows.append({"run": f"{size}-{key}", "size": size, "params": params,
                             "tokens": step * 1e9, "step": step,
                             **{f"mix:{s}": m for s, m in zip(SOURCES, mix)},
                             "loss:pile": loss, "loss:github": loss - 0.5})
    return pd.DataFrame(rows)


def quiet_validate(frame: pd.DataFrame, **kwargs) -> RunsTable:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataNote)
        return validate_runs(frame, **kwargs)


def write_csv(tmp_path: Path, frame: pd.DataFrame, name: str = "runs.csv", sep: str = ",") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False, sep=sep)
    return path


# ---------------------------------------------------------------- reading files

@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_csv_round_trip_any_delimiter(tmp_path, sep):
    frame = raw_table()
    table = read_runs(write_csv(tmp_path, frame, sep=sep))
    expected = validate_runs(frame)
    pd.testing.assert_frame_equal(table.data, expected.data)
    assert list(table.data.columns) == ["run", "params", "tokens", "mix:web", "mix:code",
                                        "mix:books", "loss:pile", "loss:github"]
    assert table.sources == SOURCES and table.domains == DOMAINS
    assert table.progress == "tokens" and table.path.endswith("runs.csv") and table.notes == ()
    assert expected.path == "<table>"
    assert all(table.data[c].dtype == np.float64 for c in table.data.columns[1:])


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet_round_trip(tmp_path, suffix):
    frame = raw_table()
    path = tmp_path / f"runs{suffix}"
    frame.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(read_runs(path).data, validate_runs(frame).data)


def test_sorted_by_run_then_tokens_and_extra_columns_dropped():
    frame = raw_table().sample(frac=1.0, random_state=3)
    data = validate_runs(frame).data
    assert list(data["run"]) == sorted(data["run"])
    for _, group in data.groupby("run"):
        assert np.all(np.diff(group["tokens"].to_numpy()) > 0)
    assert "size" not in data and "step" not in data
    assert list(data.index) == list(range(len(data)))


def test_step_column_used_when_no_tokens():
    frame = raw_table().drop(columns="tokens")
    table = validate_runs(frame)
    assert table.progress == "step"
    assert set(table.data["tokens"]) == {1.0, 2.0, 3.0}


def test_column_names_are_stripped():
    renames = {"run": " run ", "mix:web": "mix: web ", "loss:pile": "loss:pile "}
    frame = raw_table().rename(columns=renames)
    table = validate_runs(frame)
    assert table.sources == SOURCES and "mix:web" in table.data and "loss:pile" in table.data


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(RunsTableError, match="not found"):
        read_runs(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("  \n\n")
    with pytest.raises(RunsTableError, match="empty"):
        read_runs(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("run,params,tokens,mix:a,loss:x\n")
    with pytest.raises(RunsTableError, match="no data rows"):
        read_runs(tmp_path / "header.csv")


def test_wrong_delimiter_is_explained(tmp_path):
    write_csv(tmp_path, raw_table(), name="pipes.csv", sep="|")
    with pytest.raises(RunsTableError, match="single column.*delimiter"):
        read_runs(tmp_path / "pipes.csv")


def test_missing_required_columns_lists_found_and_expected():
    frame = raw_table().drop(columns=["params", "tokens", "step"])
    with pytest.raises(RunsTableError) as info:
        validate_runs(frame)
    message = str(info.value)
    assert "params" in message and "tokens (or step)" in message
    assert "found: run, size" in message and "expected: run, params" in message
    frame = raw_table().rename(columns={"run": "Run"})
    with pytest.raises(RunsTableError, match="case-sensitive"):
        validate_runs(frame)
    with pytest.raises(RunsTableError, match="loss:<domain>"):
        validate_runs(raw_table().drop(columns=["loss:pile", "loss:github"]))


# ---------------------------------------------------------------- cell errors

def test_non_numeric_cell_names_column_run_and_file_row(tmp_path):
    frame = raw_table().astype({"loss:github": object})
    frame.loc[4, "loss:github"] = "n.a.x"
    with pytest.raises(RunsTableError) as info:
        read_runs(write_csv(tmp_path, frame))
    err = info.value
    assert (err.column, err.run, err.row) == ("loss:github", "70M-b", 5)
    assert "'loss:github'" in str(err) and "70M-b" in str(err) and "row 5" in str(err)
    frame = raw_table().astype({"mix:web": object})
    frame.loc[0, "mix:web"] = "0,5"
    with pytest.raises(RunsTableError, match="decimal separator"):
        read_runs(write_csv(tmp_path, frame, sep=";"))


@pytest.mark.parametrize("column, value, match", [
    ("loss:pile", np.nan, "missing"),
    ("loss:pile", np.inf, "finite"),
    ("loss:github", 0.0, "> 0"),
    ("loss:github", -1.0, "> 0"),
    ("params", 0.0, "positive"),
    ("params", -5.0, "positive"),
    ("tokens", 0.0, "positive"),
    ("tokens", np.nan, "missing"),
    ("mix:code", -0.1, r"outside \[0, 1\]"),
    ("mix:code", 1.5, r"outside \[0, 1\]"),
    ("mix:code", np.nan, "missing"),
])
def test_bad_values_name_run_and_column(column, value, match):
    frame = raw_table()
    frame.loc[7, column] = value
    with pytest.raises(RunsTableError, match=match) as info:
        validate_runs(frame)
    err = info.value
    assert (err.run, err.column, err.row) == ("160M-a", column, 8)
    assert "'160M-a'" in str(err) and f"'{column}'" in str(err)


def test_empty_run_cell():
    frame = raw_table()
    frame.loc[2, "run"] = " "
    with pytest.raises(RunsTableError, match="row 3.*empty 'run'"):
        validate_runs(frame)


# ---------------------------------------------------------------- mixture sums

def test_rounded_mixture_renormalised_with_note_and_warning():
    frame = raw_table()
    rows = frame["run"] == "160M-a"
    frame.loc[rows, "mix:web"] = 0.503  # sum 1.003
    with pytest.warns(DataNote, match="rescaled the mixture of 3 row"):
        table = validate_runs(frame)
    assert len(table.notes) == 1 and "0.003" in table.notes[0]
    sums = table.data[["mix:web", "mix:code", "mix:books"]].sum(axis=1)
    np.testing.assert_allclose(sums, 1.0, rtol=0, atol=1e-15)
    web = table.data.loc[table.data["run"] == "160M-a", "mix:web"]
    np.testing.assert_allclose(web, 0.503 / 1.003, rtol=1e-15)


def test_large_sum_error_unless_renormalize():
    frame = raw_table()
    frame.loc[frame["run"] == "70M-a", "mix:web"] = 0.52  # sum 1.02
    fix = "pass --renormalize to rescale it, or fix the row"
    with pytest.raises(RunsTableError, match=fix) as info:
        validate_runs(frame)
    assert info.value.run == "70M-a" and "1.02" in str(info.value)
    with pytest.warns(DataNote, match="--renormalize"):
        table = validate_runs(frame, renormalize=True)
    assert any("1 run(s)" in n and "70M-a" in n for n in table.notes)
    np.testing.assert_allclose(table.data.filter(like="mix:").sum(axis=1), 1.0, atol=1e-15)
    frame.loc[frame["run"] == "70M-a", "mix:web"] = 0.503
    with pytest.raises(RunsTableError):
        validate_runs(frame, tolerance=0.001)


def test_all_zero_mixture_is_an_error_even_with_renormalize():
    frame = raw_table()
    frame.loc[frame["run"] == "70M-a", ["mix:web", "mix:code", "mix:books"]] = 0.0
    with pytest.raises(RunsTableError, match="every proportion is 0"):
        validate_runs(frame, renormalize=True)


def test_zero_source_noted_but_kept():
    frame = raw_table()
    frame["mix:unused"] = 0.0
    with pytest.warns(DataNote, match="unused"):
        table = validate_runs(frame)
    assert "unused" in table.sources and "mix:unused" in table.data
    assert any("cannot be estimated" in n for n in table.notes)


# ---------------------------------------------------------------- per-run consistency

@pytest.mark.parametrize("column, value", [("mix:web", 0.4), ("params", 9e7)])
def test_run_constants_must_not_vary(column, value):
    frame = raw_table()
    frame.loc[1, column] = value
    if column == "mix:web":
        frame.loc[1, "mix:books"] = 0.35
    with pytest.raises(RunsTableError, match="different values") as info:
        validate_runs(frame)
    assert info.value.run == "70M-a" and info.value.column == column
    assert "'70M-a'" in str(info.value) and f"'{column}'" in str(info.value)


def test_identical_duplicate_checkpoint_dropped_with_note():
    frame = raw_table()
    frame = pd.concat([frame, frame.iloc[[4]]], ignore_index=True)
    with pytest.warns(DataNote, match="dropped 1 duplicated"):
        table = validate_runs(frame)
    assert len(table.data) == len(raw_table())


def test_conflicting_duplicate_checkpoint_is_an_error():
    frame = raw_table()
    extra = frame.iloc[[4]].copy()
    extra["loss:github"] += 0.1
    frame = pd.concat([frame, extra], ignore_index=True)
    with pytest.raises(RunsTableError, match="two rows at tokens=1e") as info:
        validate_runs(frame)
    assert info.value.run == "70M-b" and info.value.column == "loss:github"


# ---------------------------------------------------------------- convenience views

def test_runs_mixtures_sizes_views():
    table = validate_runs(raw_table())
    runs = table.runs()
    assert list(runs["run"]) == ["160M-a", "160M-b", "70M-a", "70M-b"]
    assert list(runs.columns) == ["run", "params", "mix:web", "mix:code", "mix:books",
                                  "n_checkpoints", "min_tokens", "max_tokens"]
    assert runs["n_checkpoints"].tolist() == [3, 3, 3, 3]
    assert runs["min_tokens"].tolist() == [1e9] * 4 and runs["max_tokens"].tolist() == [3e9] * 4
    mixtures, index = table.mixtures()
    np.testing.assert_array_equal(mixtures, [[0.5, 0.25, 0.25], [0.2, 0.8, 0.0]])
    np.testing.assert_array_equal(index, [0, 1, 0, 1])
    np.testing.assert_array_equal(mixtures[index], runs[table.mix_columns].to_numpy())
    np.testing.assert_array_equal(table.sizes(), [7e7, 1.6e8])
    assert not table.is_single_scale
    single = validate_runs(raw_table().query("params == 7e7 and step == 2"))
    assert single.is_single_scale and len(single.mixtures()[0]) == 2


# ---------------------------------------------------------------- property

@st.composite
def valid_tables(draw):
    n_sources = draw(st.integers(1, 4))
    n_domains = draw(st.integers(1, 3))
    n_runs = draw(st.integers(1, 5))
    rows = []
    for r in range(n_runs):
        weights = draw(st.lists(st.integers(0, 50), min_size=n_sources, max_size=n_sources)
                       .filter(lambda w: sum(w) > 0))
        mix = np.array(weights, dtype=float) / sum(weights)
        params = draw(st.floats(1e5, 1e10))
        tokens = draw(st.lists(st.floats(1.0, 1e12), min_size=1, max_size=5, unique=True))
        for t in tokens:
            losses = draw(st.lists(st.floats(1e-3, 20.0), min_size=n_domains, max_size=n_domains))
            rows.append({"run": f"run{r}", "params": params, "tokens": t,
                         **{f"mix:s{j}": mix[j] for j in range(n_sources)},
                         **{f"loss:d{k}": v for k, v in enumerate(losses)}})
    order = draw(st.permutations(range(len(rows))))
    return pd.DataFrame([rows[i] for i in order])


@settings(max_examples=60, deadline=None)
@given(valid_tables())
def test_property_valid_tables_pass(frame):
    table = quiet_validate(frame)
    data = table.data
    assert len(data) == len(frame) and data.notna().all().all()
    np.testing.assert_allclose(data[table.mix_columns].sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert list(data["run"]) == sorted(data["run"])
    for _, group in data.groupby("run"):
        assert np.all(np.diff(group["tokens"].to_numpy()) > 0)
    mixtures, index = table.mixtures()
    assert len(index) == frame["run"].nunique() and mixtures.shape[1] == len(table.sources)


# ---------------------------------------------------------------- user mixtures

def test_parse_mixture():
    np.testing.assert_array_equal(parse_mixture("books=0.3, web = 0.7", SOURCES), [0.7, 0.0, 0.3])
    with pytest.raises(MixtureError, match="unknown source 'wiki'.*web, code, books"):
        parse_mixture("wiki=1", SOURCES)
    with pytest.raises(MixtureError, match="sum to 0.9"):
        parse_mixture("web=0.4,code=0.5", SOURCES)
    with pytest.raises(MixtureError, match=r"outside \[0, 1\]"):
        parse_mixture("web=1.5,code=-0.5", SOURCES)
    with pytest.raises(MixtureError, match="not source=proportion"):
        parse_mixture("web:1", SOURCES)
    with pytest.raises(MixtureError, match="twice"):
        parse_mixture("web=0.5,web=0.5", SOURCES)
    with pytest.raises(MixtureError, match="not a number"):
        parse_mixture("web=half,code=0.5", SOURCES)
    with pytest.raises(MixtureError):
        parse_mixture("", SOURCES)


def test_mixture_from_mapping_names_the_input():
    r = mixture_from_mapping({"code": 0.5, "web": 0.5}, SOURCES, what="--baseline")
    np.testing.assert_array_equal(r, [0.5, 0.5, 0.0])
    with pytest.raises(MixtureError, match="^--baseline: proportion of 'web' is 'x'"):
        mixture_from_mapping({"web": "x"}, SOURCES, what="--baseline")
    with pytest.raises(MixtureError, match="--baseline: proportions sum to 1.1"):
        mixture_from_mapping({"web": 0.6, "code": 0.5}, SOURCES, what="--baseline")


def test_read_mixtures_from_runs_table(tmp_path):
    mixtures, labels = read_mixtures(write_csv(tmp_path, raw_table()), SOURCES)
    np.testing.assert_array_equal(mixtures, [[0.5, 0.25, 0.25], [0.2, 0.8, 0.0]])
    assert labels == ["70M-a", "70M-b"]
    reordered = raw_table()[["mix:books", "mix:web", "mix:code", "loss:pile"]]
    mixtures, labels = read_mixtures(write_csv(tmp_path, reordered, "mix.csv"), SOURCES)
    assert labels == ["mixture-1", "mixture-2"] and mixtures[1, 1] == 0.8


def test_read_mixtures_labels_and_rounding(tmp_path):
    frame = pd.DataFrame({"name": ["x", "y", "x"], "mix:web": [0.333, 1.0, 0.333],
                          "mix:code": [0.333, 0.0, 0.333], "mix:books": [0.333, 0.0, 0.333]})
    path = tmp_path / "mix.parquet"
    frame.to_parquet(path)
    with pytest.warns(DataNote, match="rescaled 2 mixture row"):
        mixtures, labels = read_mixtures(path, SOURCES)
    assert labels == ["x", "y"]
    np.testing.assert_allclose(mixtures[0], [1 / 3] * 3, rtol=1e-15)


def test_read_mixtures_errors(tmp_path):
    frame = raw_table()
    with pytest.raises(MixtureError, match="missing mix: column.*wiki"):
        read_mixtures(write_csv(tmp_path, frame), (*SOURCES, "wiki"))
    with pytest.raises(MixtureError, match="unknown source.*books"):
        read_mixtures(write_csv(tmp_path, frame), SOURCES[:2])
    frame.loc[frame["run"] == "70M-b", "mix:code"] = 0.9
    with pytest.raises(MixtureError, match="'70M-b' .*sums to 1.1"):
        read_mixtures(write_csv(tmp_path, frame), SOURCES)
    frame.loc[frame["run"] == "70M-b", "mix:code"] = 1.2
    with pytest.raises(MixtureError, match=r"'code' is 1.2; it must be in \[0, 1\]"):
        read_mixtures(write_csv(tmp_path, frame), SOURCES)
    with pytest.raises(MixtureError, match="not found"):
        read_mixtures(tmp_path / "missing.csv", SOURCES)


# ---------------------------------------------------------------- validation weights

def test_read_val_weights(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"github": 1.0, "pile": 3.0}))
    np.testing.assert_allclose(read_val_weights(path, DOMAINS), [0.75, 0.25])
    path.write_text(json.dumps({"github": 2}))
    with pytest.warns(DataNote, match="pile"):
        np.testing.assert_array_equal(read_val_weights(path, DOMAINS), [0.0, 1.0])


@pytest.mark.parametrize("content, match", [
    (json.dumps({"wiki": 1.0}), "domain 'wiki'.*table domains: pile, github"),
    (json.dumps({"pile": -1.0}), "weight of 'pile'"),
    (json.dumps({"pile": True}), "weight of 'pile'"),
    (json.dumps({"pile": 0, "github": 0}), "all weights are 0"),
    (json.dumps([0.5, 0.5]), "JSON object"),
    ("{pile: 1", "not valid JSON"),
])
def test_read_val_weights_errors(tmp_path, content, match):
    path = tmp_path / "w.json"
    path.write_text(content)
    with pytest.raises(MixtureError, match=match):
        read_val_weights(path, DOMAINS)


# ---------------------------------------------------------------- real data

def test_redpajama_typo_run_errors_by_default():
    path = DATA / "ye2024" / "redpajama_runs.csv"
    if not path.exists():
        pytest.skip("shared RedPajama runs not available")
    with pytest.raises(RunsTableError, match="70M-999.*1.0199.*--renormalize") as info:
        read_runs(path)
    assert info.value.run == "70M-999"
    with pytest.warns(DataNote, match="--renormalize"):
        table = read_runs(path, renormalize=True)
    assert len(table.sources) == 7 and len(table.domains) == 22 and len(table.sizes()) == 4
    np.testing.assert_allclose(table.data[table.mix_columns].sum(axis=1), 1.0, atol=1e-12)


def test_regmix_train_loads_with_rounding_note():
    path = DATA / "regmix" / "train_1m_runs.csv"
    if not path.exists():
        pytest.skip("shared RegMix runs not available")
    with pytest.warns(DataNote, match="within 0.005 of 1"):
        table = read_runs(path)
    assert table.is_single_scale and len(table.runs()) == 512 and len(table.sources) == 17
    assert any("rescaled" in n for n in table.notes)


def test_duplicated_column_names_are_an_error(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("run,params,tokens,mix:a,loss:x, loss:x\nr,1,1,1,2,2\n")
    with pytest.raises(RunsTableError, match="duplicated column.*loss:x"):
        read_runs(path)
    path.write_text("run,params,tokens,mix:a,mix:\nr,1,1,1,0\n")
    with pytest.raises(RunsTableError, match="'mix:' has no name"):
        read_runs(path)


def test_misspelled_column_prefix_is_an_error():
    import pandas as pd

    from mixlaws.errors import RunsTableError
    from mixlaws.runs import validate_runs

    frame = pd.DataFrame({"run": ["a"], "params": [1e6], "tokens": [1e9], "mix:x": [1.0],
                          "loss:web": [3.0], "los:code": [3.1]})
    with pytest.raises(RunsTableError, match="'los:code' has an unknown prefix 'los:'") as info:
        validate_runs(frame)
    assert info.value.column == "los:code"
