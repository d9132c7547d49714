"""Bad inputs of the README table "Bad input and what mixlaws says", and its generator.

Each case writes its files into a directory and names the CLI arguments to run there.
``python tests/bad_inputs.py`` runs the CLI on every case and prints the Markdown table
for the README; ``tests/test_errors_table.py`` checks that each documented message is
still produced (exit code 2, one line, no traceback).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass
from typing import Callable

import pandas as pd
from _expected import expected_warnings

HERE = os.path.dirname(os.path.abspath(__file__))
SWEEP = os.path.join(HERE, "..", "fixtures", "sweep.csv")


@dataclass(frozen=True)
class Case:
    """A bad input: ``make(dir)`` writes it; ``argv`` runs the CLI on it (``{d}`` = dir)."""

    name: str
    make: Callable[[str], None]
    argv: str
    needs_fit: bool = False


def _sweep() -> pd.DataFrame:
    return pd.read_csv(SWEEP)


def _csv(edit: Callable[[pd.DataFrame], pd.DataFrame], name: str = "runs.csv", **kw) -> Callable:
    def make(d: str) -> None:
        edit(_sweep()).to_csv(os.path.join(d, name), index=False, **kw)
    return make


def _text(text: str, name: str = "runs.csv") -> Callable:
    def make(d: str) -> None:
        with open(os.path.join(d, name), "w", encoding="utf-8") as f:
            f.write(text)
    return make


def _set(col: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df = df.astype({col: object})
        df.loc[row, col] = value
        return df
    return edit


def _mixture_changes(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[3, "mix:web"] -= 0.05
    df.loc[3, "mix:code"] += 0.05
    return df


def _duplicate(df: pd.DataFrame) -> pd.DataFrame:
    extra = df.iloc[[4]].copy()
    extra["loss:web"] *= 1.01
    return pd.concat([df, extra], ignore_index=True)


def _first_mixtures(k: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        idx = df["run"].str.split("-").str[1].astype(int)
        return df[idx < k]
    return edit


def _fitted(d: str) -> None:
    """A valid fit artifact of the sweep at ``d/fit.json`` (shared by the artifact cases)."""
    from mixlaws.fit import save_model
    from mixlaws.fit import NestedMixingLaw
    from mixlaws.runs import read_runs

    with expected_warnings():
        save_model(NestedMixingLaw(tie_beta="all").fit(read_runs(SWEEP)), os.path.join(d, "fit.json"))


def _old_version(d: str) -> None:
    with open(os.path.join(d, "fit.json")) as f:
        art = json.load(f)
    art["format_version"], art["mixlaws_version"] = 0, "0.0.1"
    with open(os.path.join(d, "old.json"), "w") as f:
        json.dump(art, f)


def _edited(d: str) -> None:
    """A hand edit of the fitted mixtures: the content hash no longer matches."""
    with open(os.path.join(d, "fit.json")) as f:
        art = json.load(f)
    art["mixtures"][0][0] = 0.9
    with open(os.path.join(d, "edited.json"), "w") as f:
        json.dump(art, f)


def _tokens_back(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[5, "tokens"] = df.loc[3, "tokens"]
    return df


def _olmix(d: str) -> None:
    with open(os.path.join(d, "ratios.csv"), "w") as f:
        f.write("run,name,index,web,code\nr1,a,0,0.5,0.5\nr2,b,1,0.2,0.8\n")
    with open(os.path.join(d, "metrics.csv"), "w") as f:
        f.write("run,name,index,pile_cc\nr1,a,0,3.1\nr2,b,1,3.3\n")


def _bytes(data: bytes, name: str) -> Callable:
    def make(d: str) -> None:
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return make


CASES: tuple[Case, ...] = (
    Case("missing column (`params`)", _csv(lambda df: df.drop(columns="params")), "fit {d}/runs.csv"),
    Case("column names in the wrong case (`Params`)",
         _csv(lambda df: df.rename(columns={"params": "Params"})), "fit {d}/runs.csv"),
    Case("no `loss:` columns", _csv(lambda df: df.drop(columns=[c for c in df if c.startswith("loss:")])),
         "fit {d}/runs.csv"),
    Case("misspelled column prefix (`los:code`)",
         _csv(lambda df: df.rename(columns={"loss:code": "los:code"})), "fit {d}/runs.csv"),
    Case("non-numeric cell", _csv(_set("loss:web", 3, "n/a?")), "fit {d}/runs.csv"),
    Case("NaN loss", _csv(_set("loss:code", 5, float("nan"))), "fit {d}/runs.csv"),
    Case("infinite loss", _csv(_set("loss:code", 5, float("inf"))), "fit {d}/runs.csv"),
    Case("negative loss", _csv(_set("loss:prose", 7, -1.0)), "fit {d}/runs.csv"),
    Case("proportion out of [0, 1]", _csv(_set("mix:web", 0, 1.4)), "fit {d}/runs.csv"),
    Case("proportions not summing to 1", _csv(lambda df: df.assign(**{"mix:web": df["mix:web"] + 0.2})),
         "fit {d}/runs.csv"),
    Case("a run's mixture changes between rows", _csv(_mixture_changes), "fit {d}/runs.csv"),
    Case("a run's size changes between rows", _csv(_set("params", 2, 3e7)), "fit {d}/runs.csv"),
    Case("duplicated checkpoint with a different loss", _csv(_duplicate), "fit {d}/runs.csv"),
    Case("empty file", _text(""), "fit {d}/runs.csv"),
    Case("header but no rows", _text("run,params,tokens,mix:a,mix:b,loss:x\n"), "fit {d}/runs.csv"),
    Case("wrong delimiter (`|`)", _csv(lambda df: df, sep="|"), "fit {d}/runs.csv"),
    Case("too few mixtures for the mixing law", _csv(_first_mixtures(5)),
         "run {d}/runs.csv --tie-beta all --params 1e9 --tokens 2e10 -o {d}/out"),
    Case("one model size, target at another size",
         _csv(lambda df: df[df["params"] == 2e7]),
         "run {d}/runs.csv --tie-beta all --params 1e9 --tokens 2e10 -o {d}/out"),
    Case("two model sizes (the size exponent is not identified)",
         _csv(lambda df: df[df["params"] <= 5e7]),
         "run {d}/runs.csv --law nested --tie-beta all --params 1e9 --tokens 2e10 -o {d}/out"),
    Case("too few sizes for `--tie-alpha none`",
         _csv(lambda df: df[df["params"] <= 5e7]),
         "run {d}/runs.csv --tie-beta all --tie-alpha none --params 1e9 --tokens 2e10 -o {d}/out"),
    Case("too few checkpoints for step laws",
         _csv(lambda df: df.groupby("run").tail(2)),
         "run {d}/runs.csv --law nested --params 1e9 --tokens 2e10 -o {d}/out"),
    Case("fit artifact from another version", _old_version,
         "predict {d}/old.json --params 1e9 --tokens 2e10 --mixture web=0.5,code=0.1,books=0.1,"
         "papers=0.2,wiki=0.1", needs_fit=True),
    Case("constraints naming an unknown source",
         _text("sources:\n  github: {max: 0.2}\n", "c.yaml"),
         "optimize {d}/fit.json --params 1e9 --tokens 2e10 --constraints {d}/c.yaml", needs_fit=True),
    Case("mixture naming an unknown source", lambda d: None,
         "predict {d}/fit.json --params 1e9 --tokens 2e10 --mixture web=0.5,reddit=0.5",
         needs_fit=True),
    Case("output file is an input", _csv(lambda df: df), "fit {d}/runs.csv -o {d}/runs.csv"),
    Case("tokens decrease while `step` grows", _csv(_tokens_back), "fit {d}/runs.csv"),
    Case("empty `--mixture`", lambda d: None, "predict {d}/fit.json --params 1e9 --tokens 2e10 "
         "--mixture=", needs_fit=True),
    Case("hand-edited fit artifact", _edited,
         "predict {d}/edited.json --params 1e9 --tokens 2e10 --mixture web=1", needs_fit=True),
    Case("`--steps` for a table with tokens", lambda d: None,
         "optimize {d}/fit.json --params 1e9 --steps 5e3", needs_fit=True),
    Case("`optimize --n-starts 0`", lambda d: None,
         "optimize {d}/fit.json --params 1e9 --tokens 2e10 --n-starts 0", needs_fit=True),
    Case("`sample --draws 0`", lambda d: None,
         "sample {d}/fit.json --params 1e9 --tokens 2e10 --draws 0", needs_fit=True),
    Case("constraints file not UTF-8", _bytes(b"sources:\n  web: {max: 0.5}\n# \xff\n", "c.yaml"),
         "optimize {d}/fit.json --params 1e9 --tokens 2e10 --constraints {d}/c.yaml", needs_fit=True),
    Case("duplicated key in a constraints file",
         _text("sources:\n  web: {max: 0.5}\n  web: {min: 0.1}\n", "c.yaml"),
         "optimize {d}/fit.json --params 1e9 --tokens 2e10 --constraints {d}/c.yaml", needs_fit=True),
    Case("constraints `total_tokens` disagreeing with `--tokens`", _text("total_tokens: 3.0e10\n", "c.yaml"),
         "optimize {d}/fit.json --params 1e9 --tokens 2e10 --constraints {d}/c.yaml", needs_fit=True),
    Case("single-scale swarm imported without `--params`", _olmix,
         "import olmix {d}/ratios.csv {d}/metrics.csv -o {d}/runs.csv"),
)


def run_case(case: Case, d: str) -> tuple[int, str]:
    """Write the case into ``d`` (which holds ``fit.json`` if needed), run the CLI; (code, stderr)."""
    from mixlaws.cli import main

    case.make(d)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        with expected_warnings():
            code = main(["--quiet"] + case.argv.format(d=d).split())
    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("mixlaws: error:")]
    return code, (lines[-1] if lines else err.getvalue()).replace(d + os.sep, "").replace(d, ".")


def table_row(case: Case, message: str) -> str:
    """One Markdown row: the input and the message (``|`` escaped)."""
    esc = lambda text: text.replace("|", "\\|")  # noqa: E731
    msg = esc(message.removeprefix("mixlaws: error: "))
    cmd = esc(case.argv.format(d=".").replace("./", ""))
    return f"| {esc(case.name)} | `mixlaws {cmd}` | {msg} |"


def main() -> int:
    import tempfile

    print("| bad input | command | message (exit code 2) |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        _fitted(d)
        for case in CASES:
            with tempfile.TemporaryDirectory() as c:
                if case.needs_fit:
                    os.link(os.path.join(d, "fit.json"), os.path.join(c, "fit.json"))
                code, msg = run_case(case, c)
            print(table_row(case, msg) if code == 2 else f"| {case.name} | exit {code}: {msg} |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(HERE, ".."))
    sys.exit(main())
