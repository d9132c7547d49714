"""The public API, pinned (as pyhf's test_public_api): a change to it is a decision, not an accident."""

from __future__ import annotations

import importlib
import inspect

import pytest

import mixlaws

TOP = {
    "__version__", "NestedMixingLaw", "JointMixingLaw", "AveragedMixingLaw",
    "BacktestResult", "TargetFit", "MixtureChoice", "FAMILIES",
    "make_estimator", "clone", "load_model", "save_model", "RunsTable", "read_runs",
    "validate_runs", "load_constraints", "sample_posterior", "predict_intervals", "PosteriorDraws",
    "MixlawsError", "RunsTableError", "InsufficientDataError", "ScaleError", "ConstraintError",
    "InfeasibleConstraintsError", "ArtifactError", "MixtureError", "FitError", "NotFittedError",
    "ConvergenceWarning", "ChainWarning", "ExtrapolationWarning", "DataNote",
}

SUBPACKAGES = ("runs", "laws", "fit", "posterior", "optimize", "export", "report", "simulate",
               "backtest", "design", "cli")


def test_top_level_api_is_pinned() -> None:
    assert set(mixlaws.__all__) == TOP
    assert len(mixlaws.__all__) == len(TOP)


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_subpackage_exports_resolve_and_are_documented(name: str) -> None:
    mod = importlib.import_module(f"mixlaws.{name}")
    assert mod.__doc__, f"mixlaws.{name} has no docstring"
    assert len(mod.__all__) == len(set(mod.__all__)), f"duplicate names in mixlaws.{name}.__all__"
    for item in mod.__all__:
        assert not item.startswith("_"), f"private name {item} exported by mixlaws.{name}"
        obj = getattr(mod, item)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"mixlaws.{name}.{item} has no docstring"


def test_top_level_names_are_the_subpackages_objects() -> None:
    from mixlaws.fit import NestedMixingLaw
    from mixlaws.optimize import MixtureChoice

    assert mixlaws.NestedMixingLaw is NestedMixingLaw
    assert mixlaws.MixtureChoice is MixtureChoice


def test_estimators_follow_the_estimator_protocol() -> None:
    for name, fam in mixlaws.FAMILIES.items():
        est = fam.make()
        params = est.get_params()
        assert mixlaws.clone(est).get_params() == params, name
        assert est.set_params(seed=7) is est and est.get_params()["seed"] == 7
        with pytest.raises(mixlaws.MixlawsError, match="no setting"):
            est.set_params(not_a_setting=1)
        for meth in ("fit", "predict"):
            assert callable(getattr(est, meth)), (name, meth)


def test_the_readme_snippet_runs(sweep_path, baseline_text) -> None:
    import numpy as np
    import pandas as pd

    model = mixlaws.NestedMixingLaw(tie_beta="all").fit(str(sweep_path))
    at = model.target(params=1e9, tokens=2e10)
    base = dict((k, float(v)) for k, v in (kv.split("=") for kv in baseline_text.split(",")))
    one = at.predict(base)
    assert isinstance(one, float) and np.isfinite(one)
    frame = pd.DataFrame([base, {**base, "web": 0.5, "code": 0.2}])
    many = at.predict(frame)
    assert many.shape == (2,) and many[0] == pytest.approx(one, rel=1e-12)
    best = at.optimize(baseline=base, constraints=sweep_path.parent / "constraints.yaml")
    assert best.predicted_loss < one and best.gain == pytest.approx(one - best.predicted_loss)
    assert sum(best.mixture.values()) == pytest.approx(1.0, abs=1e-12)
    text = best.export("megatron")
    weights = [float(line.split()[0]) for line in text.splitlines()]
    assert sum(weights) == pytest.approx(1.0, abs=1e-12)
    assert best.to_dict()["kind"] == "mixlaws.mixture"


def test_fit_accepts_a_dataframe_and_a_runs_table(sweep_path) -> None:
    import pandas as pd

    a = mixlaws.NestedMixingLaw(tie_beta="all").fit(mixlaws.read_runs(sweep_path))
    b = mixlaws.NestedMixingLaw(tie_beta="all").fit(pd.read_csv(sweep_path))
    assert (a.step_.params["E"] == b.step_.params["E"]).all()


def test_subpackages_are_not_shadowed_by_functions() -> None:
    import types

    for name in SUBPACKAGES:
        assert isinstance(getattr(mixlaws, name), types.ModuleType), name
