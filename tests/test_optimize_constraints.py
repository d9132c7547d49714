"""Tests of the constraint language and the linear feasibility / minimal-conflict search."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixlaws.optimize import (Constraints, availability_upper, check_feasible,
                                 constraints_from_dict, is_feasible, linear_items, load_constraints,
                                 minimal_conflict)
from mixlaws.errors import ConstraintError, InfeasibleConstraintsError

SOURCES = ["CommonCrawl", "Books", "Wikipedia", "GitHub", "StackExchange", "ArXiv"]

EXAMPLE = """
total_tokens: 1.0e11
max_epochs: 4
sources:
  CommonCrawl: {min: 0.2, max: 0.7, available_tokens: 3.0e12}
  Books:       {available_tokens: 2.6e10, max_epochs: 2}
  Wikipedia:   {fixed: 0.05}
groups:
  - {name: code, sources: [GitHub, StackExchange], max: 0.25}
  - {name: reference, sources: [Wikipedia, ArXiv], min: 0.1}
loss_caps:
  - {domain: Github, max_increase: 0.01, relative_to: baseline}
  - {domain: ArXiv, max_loss: 2.1}
"""


def test_example_file_resolves(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(EXAMPLE)
    c = load_constraints(p, SOURCES)
    assert c.sources == tuple(SOURCES)
    assert c.total_tokens == 1e11
    np.testing.assert_array_equal(c.lower, [0.2, 0, 0.05, 0, 0, 0])
    np.testing.assert_array_equal(c.upper, [0.7, 1, 0.05, 1, 1, 1])
    np.testing.assert_array_equal(c.fixed, [False, False, True, False, False, False])
    np.testing.assert_array_equal(c.available_tokens[:2], [3e12, 2.6e10])
    assert np.isnan(c.available_tokens[2:]).all()
    np.testing.assert_array_equal(c.max_epochs[:2], [4.0, 2.0])  # global, then per-source override
    assert [(g.name, list(g.indices), g.lo, g.hi) for g in c.groups] == [
        ("code", [3, 4], None, 0.25), ("reference", [2, 5], 0.1, None)]
    assert [(k.domain, k.max_increase, k.max_loss) for k in c.loss_caps] == [
        ("Github", 0.01, None), ("ArXiv", None, 2.1)]
    np.testing.assert_allclose(availability_upper(c, None)[:2], [4 * 3e12 / 1e11, 2 * 2.6e10 / 1e11])
    items = check_feasible(c, None)
    names = [it.name for it in items]
    assert "availability.Books" in names and "groups.code.max" in names and names[-1] == "sum to 1"


def test_json_file_and_empty_file(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"sources": {"Books": {"max": 0.3}}}))
    assert load_constraints(p, SOURCES).upper[1] == 0.3
    e = tmp_path / "empty.yaml"
    e.write_text("")
    c = load_constraints(e, SOURCES)
    assert not c.fixed.any() and c.groups == () and c.loss_caps == ()


def test_default_max_epochs_is_one_and_file_total_tokens_wins():
    c = constraints_from_dict({"sources": {"Books": {"available_tokens": 1e10}}}, SOURCES)
    assert c.max_epochs[1] == 1.0
    assert availability_upper(c, 1e11)[1] == pytest.approx(0.1)
    c2 = constraints_from_dict({"total_tokens": 2e10, "sources": {"Books": {"available_tokens": 1e10}}},
                               SOURCES)
    assert availability_upper(c2, 1e11)[1] == pytest.approx(0.5)


def test_yaml_exponent_without_dot_is_a_number(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("total_tokens: 1e11\nsources:\n  Books: {available_tokens: 2e10}\n")
    c = load_constraints(p, SOURCES)
    assert c.total_tokens == 1e11 and c.available_tokens[1] == 2e10


@pytest.mark.parametrize("d, key", [
    ({"sources": {"Bookz": {"max": 0.1}}}, "sources.Bookz"),
    ({"sources": {"Books": {"mx": 0.1}}}, "sources.Books.mx"),
    ({"colour": 1}, "colour"),
    ({"sources": {"Books": {"min": 0.5, "max": 0.2}}}, "sources.Books.min"),
    ({"sources": {"Books": {"min": -0.1}}}, "sources.Books.min"),
    ({"sources": {"Books": {"fixed": 1.2}}}, "sources.Books.fixed"),
    ({"sources": {"Books": {"fixed": 0.2, "max": 0.3}}}, "sources.Books"),
    ({"sources": {"Books": {"available_tokens": -5}}}, "sources.Books.available_tokens"),
    ({"sources": {"Books": {"max_epochs": 2}}}, "sources.Books.max_epochs"),
    ({"sources": {"Books": {"max": "lots"}}}, "sources.Books.max"),
    ({"max_epochs": 0}, "max_epochs"),
    ({"groups": [{"name": "g", "sources": ["Books", "Nope"], "max": 0.2}]}, "groups.g.sources"),
    ({"groups": [{"name": "g", "sources": ["Books"], "min": 0.5, "max": 0.2}]}, "groups.g.min"),
    ({"groups": [{"name": "g", "sources": ["Books"]}]}, "groups.g"),
    ({"groups": [{"sources": ["Books"], "max": 0.2}]}, "groups[0].name"),
    ({"loss_caps": [{"domain": "x"}]}, "loss_caps.x"),
    ({"loss_caps": [{"domain": "x", "max_increase": 0.1, "relative_to": "mean"}]},
     "loss_caps.x.relative_to"),
])
def test_malformed_constraints_name_the_key(d, key):
    with pytest.raises(ConstraintError) as info:
        constraints_from_dict(d, SOURCES, path="c.yaml")
    assert info.value.key == key
    assert str(info.value).startswith("c.yaml: ") and "\n" not in str(info.value)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConstraintError, match="cannot read"):
        load_constraints(tmp_path / "missing.yaml", SOURCES)
    p = tmp_path / "bad.yaml"
    p.write_text("sources: {Books: [\n")
    with pytest.raises(ConstraintError, match="not valid YAML"):
        load_constraints(p, SOURCES)


def test_availability_needs_total_tokens():
    c = constraints_from_dict({"sources": {"Books": {"available_tokens": 1e10}}}, SOURCES)
    with pytest.raises(ConstraintError, match="total_tokens"):
        check_feasible(c, None)


def test_two_mins_conflict_is_minimal():
    c = constraints_from_dict({"sources": {"Books": {"min": 0.6}, "ArXiv": {"min": 0.6},
                                           "GitHub": {"max": 0.1}, "CommonCrawl": {"max": 0.5}},
                               "groups": [{"name": "code", "sources": ["GitHub", "StackExchange"],
                                           "max": 0.3}]}, SOURCES, path="c.yaml")
    with pytest.raises(InfeasibleConstraintsError) as info:
        check_feasible(c, None)
    assert sorted(info.value.conflict) == ["sources.ArXiv.min", "sources.Books.min", "sum to 1"]
    assert "sources.Books.min" in str(info.value)


def test_availability_conflict_is_named_with_its_numbers():
    c = constraints_from_dict({"total_tokens": 1e11, "sources": {
        "Books": {"available_tokens": 2.6e10, "max_epochs": 2}, "Wikipedia": {"fixed": 0.05},
        "CommonCrawl": {"max": 0.1}, "GitHub": {"max": 0.1}, "StackExchange": {"max": 0.1},
        "ArXiv": {"max": 0.1}}}, SOURCES)
    with pytest.raises(InfeasibleConstraintsError) as info:
        check_feasible(c, None)
    conflict = info.value.conflict
    assert "availability.Books (2 epochs × 2.6e10 tokens / 1e11 = 0.52)" in conflict
    assert "sum to 1" in conflict and len(conflict) == 7


def test_fixed_against_group_without_sum():
    c = constraints_from_dict({"sources": {"Books": {"fixed": 0.5}, "GitHub": {"min": 0.1}},
                               "groups": [{"name": "g", "sources": ["Books", "ArXiv"], "max": 0.3}]},
                              SOURCES)
    with pytest.raises(InfeasibleConstraintsError) as info:
        check_feasible(c, None)
    assert info.value.conflict == ["sources.Books.fixed = 0.5", "groups.g.max"]


def test_no_constraints_is_the_simplex():
    c = Constraints.none(SOURCES)
    items = check_feasible(c, None)
    assert [it.name for it in items] == ["sum to 1"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=5))
def test_box_feasibility_matches_closed_form_and_conflict_is_irreducible(pairs):
    names = [f"s{j}" for j in range(len(pairs))]
    lo = [min(a, b) for a, b in pairs]
    hi = [max(a, b) for a, b in pairs]
    c = constraints_from_dict({"sources": {n: {"min": l, "max": h} for n, l, h in zip(names, lo, hi)}},
                              names)
    items = linear_items(c, None)
    expected = sum(lo) <= 1 + 1e-9 and sum(hi) >= 1 - 1e-9
    if abs(sum(lo) - 1) < 1e-7 or abs(sum(hi) - 1) < 1e-7:
        return  # on the boundary the LP tolerance decides
    assert is_feasible(items, len(names)) == expected
    if not expected:
        conflict = minimal_conflict(items, len(names))
        assert not is_feasible(conflict, len(names))
        for k in range(len(conflict)):
            assert is_feasible(conflict[:k] + conflict[k + 1:], len(names))
        assert "sum to 1" in [it.name for it in conflict]
