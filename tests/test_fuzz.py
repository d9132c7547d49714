"""Fuzzing with hypothesis: malformed and edge-case runs tables.

Property: reading/fitting/predicting either raises a clean :class:`MixlawsError` with a
one-line message, or returns finite numbers — never another exception, never NaN.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixlaws.errors import MixlawsError
from mixlaws.fit import NestedMixingLaw
from mixlaws.runs import validate_runs
from _expected import expected_warnings

CORRUPTIONS = ("none", "nan", "inf", "negative", "zero", "text", "offsum", "outside",
               "dup_run", "dup_ckpt", "drop_col", "mix_change", "empty_run", "huge_tokens")


@st.composite
def tables(draw, max_mixtures: int = 6, *, fittable: bool = False,
           corruptions: tuple[str, ...] = CORRUPTIONS) -> pd.DataFrame:
    """A runs table from a mixing/scaling law, possibly corrupted.

    ``fittable`` draws enough mixtures (``M + 2``..8), sizes (1, or 3: two sizes do not
    identify a size exponent) and checkpoints (3-4) for every stage, so that the magnitudes
    and corruptions reach the fits.
    """
    M = draw(st.integers(2, 3))
    n_mix = draw(st.integers(M + 2, 8) if fittable else st.integers(1, max_mixtures))
    n_sizes = draw(st.sampled_from([1, 3]) if fittable else st.integers(1, 3))
    n_ckpt = draw(st.integers(3 if fittable else 1, 4))
    p_scale = 10.0 ** draw(st.integers(-3, 15))          # huge/small magnitudes
    t_scale = 10.0 ** draw(st.integers(-3, 15))
    l_scale = 10.0 ** draw(st.integers(-6, 6))
    seed = draw(st.integers(0, 2**16))
    corruption = draw(st.sampled_from(corruptions))
    rng = np.random.default_rng(seed)
    mixes = rng.dirichlet(np.ones(M), n_mix)
    t = rng.normal(0, 1, M)
    rows = []
    for i, r in enumerate(mixes):
        for s in range(n_sizes):
            N = p_scale * 2.0**s
            for c in range(n_ckpt):
                D = t_scale * 2.0**c
                base = 2 + 0.3 * np.exp(r @ t) + 0.5 * 2.0**-s + 0.5 * 2.0**-c
                row = {"run": f"r{i}-{s}", "params": N, "tokens": D}
                row.update({f"mix:s{j}": float(r[j]) for j in range(M)})
                row.update({"loss:a": l_scale * base * (1 + 1e-3 * rng.normal()),
                            "loss:b": l_scale * base * 1.1})
                rows.append(row)
    df = pd.DataFrame(rows)
    k = draw(st.integers(0, len(df) - 1))
    if corruption == "nan":
        df.loc[k, "loss:a"] = np.nan
    elif corruption == "inf":
        df.loc[k, "params"] = np.inf
    elif corruption == "negative":
        df.loc[k, "loss:b"] = -df.loc[k, "loss:b"]
    elif corruption == "zero":
        df.loc[k, "tokens"] = 0.0
    elif corruption == "text":
        df = df.astype({"loss:a": object})
        df.loc[k, "loss:a"] = draw(st.sampled_from(["", "nan?", "1,5", "x", " "]))
    elif corruption == "offsum":
        df.loc[df["run"] == df.loc[k, "run"], "mix:s0"] += 0.3
    elif corruption == "outside":
        df.loc[df["run"] == df.loc[k, "run"], "mix:s0"] = -0.2
    elif corruption == "dup_run":                         # the same run listed twice
        df = pd.concat([df, df[df["run"] == df.loc[k, "run"]]], ignore_index=True)
    elif corruption == "dup_ckpt":
        extra = df.iloc[[k]].copy()
        extra["loss:a"] *= 1.5
        df = pd.concat([df, extra], ignore_index=True)
    elif corruption == "drop_col":
        df = df.drop(columns=draw(st.sampled_from(["run", "params", "tokens", "mix:s0", "loss:a"])))
    elif corruption == "mix_change":
        df.loc[k, "mix:s0"] = min(1.0, df.loc[k, "mix:s0"] + 0.1)
        df.loc[k, "mix:s1"] = 1.0 - df.loc[k, [c for c in df if c.startswith("mix:") and c != "mix:s1"]].sum()
    elif corruption == "empty_run":
        df.loc[k, "run"] = ""
    elif corruption == "huge_tokens":
        df.loc[k, "tokens"] = 1e300
    df.attrs["corruption"] = corruption
    return df


def _one_line_error(exc: MixlawsError) -> None:
    msg = str(exc)
    assert msg.strip() and "\n" not in msg and "Traceback" not in msg


def _validate(df: pd.DataFrame):
    with expected_warnings():
        try:
            return validate_runs(df)
        except MixlawsError as exc:
            _one_line_error(exc)
            return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_validation_is_clean_or_finite(df):
    runs = _validate(df)
    if runs is not None:
        num = runs.data.drop(columns="run").to_numpy(float)
        assert np.all(np.isfinite(num))
        mix = runs.data[runs.mix_columns].to_numpy(float)
        assert np.all(mix >= 0) and np.allclose(mix.sum(1), 1.0)
        assert np.all(runs.data[runs.loss_columns].to_numpy(float) > 0)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(max_mixtures=7), st.sampled_from(["run", "all"]))
def test_fit_and_predict_are_clean_or_finite(df, tie_beta):
    _fit_predict(df, tie_beta)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(fittable=True, corruptions=("none", "dup_run", "dup_ckpt", "huge_tokens",
                                          "mix_change")),
       st.sampled_from(["run", "all"]))
@pytest.mark.slow
def test_fittable_tables_are_clean_or_finite(df, tie_beta):
    # a clean table drawn to have enough mixtures, sizes and checkpoints must fit and predict
    _fit_predict(df, tie_beta, must_fit=df.attrs["corruption"] == "none")


def _fit_predict(df: pd.DataFrame, tie_beta: str, must_fit: bool = False) -> None:
    corruption = df.attrs.get("corruption")
    runs = _validate(df)
    if runs is None:
        assert not must_fit, f"a clean table ({corruption}) was rejected"
        return
    with expected_warnings():
        try:
            model = NestedMixingLaw(tie_beta=tie_beta).fit(runs)
            if model.step_ is not None:
                for v in model.step_.params.values():
                    assert np.all(np.isfinite(v))
            multi = len(np.unique(model.runs_["params"])) > 1
            N = float(model.runs_["params"].max()) * (10.0 if multi else 1.0)
            D = float(model.runs_["last_tokens"].max()) * (2.0 if model.step_ is not None else 1.0)
            pred = model.predict(model.mixtures_, N, D)
        except MixlawsError as exc:
            _one_line_error(exc)
            assert not must_fit, f"a clean, fittable table failed: {exc}"
            return
    assert np.all(np.isfinite(pred["loss"])) and np.all(np.isfinite(pred["domains"]))
    assert np.all(pred["loss"] > 0)


@pytest.mark.parametrize("n_mix", [1, 2])
def test_single_or_few_mixtures_say_how_many(n_mix):
    rng = np.random.default_rng(0)
    mixes = rng.dirichlet([1, 1, 1], n_mix)
    rows = [{"run": f"r{i}", "params": 1e6, "tokens": 1e9, "mix:a": r[0], "mix:b": r[1],
             "mix:c": r[2], "loss:x": 3.0 + rng.random()} for i, r in enumerate(mixes)]
    runs = validate_runs(pd.DataFrame(rows))
    with expected_warnings():
        model = NestedMixingLaw().fit(runs)
        with pytest.raises(MixlawsError, match=rf"needs ≥ 5 distinct mixtures .*found {n_mix}"):
            model.target(1e6, 1e9)
