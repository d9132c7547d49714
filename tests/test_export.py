"""Tests of mixlaws.export: manifests, loader formats, round trips."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mixlaws.errors import ArtifactError, DataNote, MixlawsError
from mixlaws.export import (
    FORMATS,
    Manifest,
    export,
    load_doc_lengths,
    load_mixture,
    load_paths,
    manifest_from_dict,
    parse_export,
    per_document_probabilities,
    token_shares_from_documents,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NAMES = ["arxiv", "c4", "github", "true", "null", "wiki-en", "books_3", "Pile-CC", "dm.math"]
DROPS_ZEROS = {"megatron", "megatron-json", "hf", "mosaicml", "olmo-core", "nanotron"}
NEEDS_PATHS = {"mosaicml", "olmo-core"}
DOC_FORMATS = {"hf", "mosaicml"}


def _normalise(raw: dict[str, float]) -> dict[str, float]:
    total = math.fsum(raw.values())
    return {k: v / total for k, v in raw.items()}


@st.composite
def mixtures(draw: st.DrawFn, min_size: int = 1) -> dict[str, float]:
    """Random token shares with zeros and tiny weights (1e-12), at least one positive."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=min_size, max_size=7, unique=True))
    value = st.one_of(st.just(0.0), st.just(1e-12), st.floats(1e-12, 1.0), st.floats(0.01, 1.0))
    raw = {n: draw(value) for n in names}
    if math.fsum(raw.values()) <= 0:
        raw[names[0]] = 1.0
    return _normalise(raw)


def _paths(weights: dict[str, float]) -> dict[str, str]:
    return {n: f"/data/tok/{n}/part" for n in weights}


def _artifact(**over: object) -> dict:
    d = {
        "kind": "mixlaws.mixture", "mixlaws_version": "0.1.0",
        "target": {"params": 1e9, "tokens": 1e11},
        "mixture": {"A": 0.3, "B": 0.7}, "unit": "tokens", "predicted_loss": 2.91,
        "baseline": None, "gain": None, "active_constraints": [], "total_tokens": 1e11,
        "sources": {
            "A": {"weight": 0.3, "tokens": 3e10, "available_tokens": 1e12, "max_epochs": 4, "epochs": 0.03},
            "B": {"weight": 0.7, "tokens": 7e10, "available_tokens": None, "max_epochs": None, "epochs": None},
        },
        "domain_losses": {}, "converged": True, "n_starts": 16, "message": "ok",
    }
    d.update(over)
    return d


# ----------------------------------------------------------------------------- manifest
def test_load_mixture_reads_artifact(tmp_path: Path) -> None:
    path = tmp_path / "MIX.json"
    path.write_text(json.dumps(_artifact()))
    m = load_mixture(path)
    assert m.weights == {"A": 0.3, "B": 0.7}
    assert m.total_tokens == 1e11
    assert m.tokens == {"A": 0.3 * 1e11, "B": 0.7 * 1e11}
    assert m.epochs == {"A": 0.3 * 1e11 / 1e12, "B": None}
    assert m.max_epochs == {"A": 4.0, "B": None}
    assert m.meta["predicted_loss"] == 2.91


def test_total_tokens_falls_back_to_target() -> None:
    m = manifest_from_dict(_artifact(total_tokens=None))
    assert m.total_tokens == 1e11
    m = manifest_from_dict(_artifact(total_tokens=None, target=None))
    assert m.total_tokens is None and m.tokens == {"A": None, "B": None}


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "mixlaws.fit"},
        {"kind": None},
        {"unit": "documents"},
        {"mixture": None},
        {"mixture": {}},
        {"mixture": {"A": 0.3, "B": 0.71}},
        {"mixture": {"A": -0.3, "B": 1.3}},
        {"mixture": {"A": float("nan"), "B": 0.7}},
        {"mixture": {"A": "0.3", "B": 0.7}},
        {"mixture": {"A": True, "B": 0.0}},
        {"sources": {"A": {"weight": 0.31}, "B": {"weight": 0.7}}},
        {"sources": {"C": {"weight": 0.0}}},
        {"sources": {"A": {"available_tokens": -5}}},
        {"total_tokens": 0},
    ],
)
def test_bad_artifacts_raise_artifact_error(change: dict) -> None:
    with pytest.raises(ArtifactError) as err:
        manifest_from_dict(_artifact(**change), path="MIX.json")
    assert "MIX.json" in str(err.value) and "\n" not in str(err.value)


def test_bad_files_raise_artifact_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ArtifactError, match="invalid JSON"):
        load_mixture(bad)
    with pytest.raises(ArtifactError, match="cannot read"):
        load_mixture(tmp_path / "missing.json")
    bad.write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="not a JSON object"):
        load_mixture(bad)


def test_error_names_source() -> None:
    with pytest.raises(ArtifactError) as err:
        manifest_from_dict(_artifact(mixture={"A": 0.5, "B": -0.5, "C": 1.0}, sources={}))
    assert err.value.source == "B"


def test_rounding_is_renormalised_with_note_and_tiny_negatives_are_zero() -> None:
    with pytest.warns(DataNote):
        m = Manifest({"A": 0.3, "B": 0.7 + 5e-10})
    assert abs(math.fsum(m.weights.values()) - 1) < 1e-15
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = Manifest({"A": 1.0 + 1e-13, "B": -1e-13})
    assert m.weights["B"] == 0.0


def test_manifest_rejects_supply_for_unknown_source() -> None:
    with pytest.raises(ArtifactError, match="not in the mixture"):
        Manifest({"A": 1.0}, available_tokens={"Z": 1e9})


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("fmt", sorted(FORMATS))
@settings(max_examples=40, deadline=None)
@given(weights=mixtures())
def test_round_trip_every_format(fmt: str, weights: dict[str, float]) -> None:
    m = Manifest(weights, total_tokens=1e10)
    paths = _paths(weights) if fmt in NEEDS_PATHS or fmt in ("megatron", "nanotron") else None
    back = parse_export(export(m, fmt, paths=paths), fmt, paths=paths)
    assert abs(math.fsum(back.values()) - 1.0) <= 1e-12
    for name, w in m.weights.items():
        assert abs(back.get(name, 0.0) - w) <= 1e-12
        if w == 0 and fmt in DROPS_ZEROS:
            assert name not in back
    assert set(back) <= set(weights)


@pytest.mark.parametrize("fmt", ["json", "yaml", "levanter"])
@settings(max_examples=40, deadline=None)
@given(weights=mixtures())
def test_weights_written_bit_exact(fmt: str, weights: dict[str, float]) -> None:
    m = Manifest(weights)
    text = export(m, fmt)
    data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    written = data["train_weights"] if fmt == "levanter" else data["weights"]
    assert written == m.weights  # same float64 bits, every source, zeros kept


@pytest.mark.parametrize("fmt", sorted(DROPS_ZEROS))
@settings(max_examples=30, deadline=None)
@given(weights=mixtures())
def test_dropping_zeros_renormalises_at_full_precision(fmt: str, weights: dict[str, float]) -> None:
    m = Manifest(weights)
    text = export(m, fmt, paths=_paths(weights))
    if fmt in ("megatron", "megatron-json"):
        items = text.split() if fmt == "megatron" else json.loads(text)["train"]
        raw = [float(w) for w in items[::2]]
    elif fmt == "hf":
        raw = json.loads(text)["probabilities"]
    elif fmt == "mosaicml":
        raw = [s["proportion"] for s in yaml.safe_load(text)["streams"].values()]
    elif fmt == "olmo-core":
        raw = [s["target_ratio"] for s in yaml.safe_load(text)["sources"]]
    else:
        raw = yaml.safe_load(text)["dataset_weights"]
    positive = [w for w in m.weights.values() if w > 0]
    assert len(raw) == len(positive) and all(w > 0 for w in raw)
    assert abs(math.fsum(raw) - 1.0) <= 1e-15
    np.testing.assert_allclose(raw, np.array(positive) / math.fsum(positive), rtol=1e-15, atol=0)


# ----------------------------------------------------------------------------- Megatron
def _megatron_get_blend_from_list(blend: list[str] | None):
    """Megatron-LM's megatron/core/datasets/utils.py::get_blend_from_list, re-implemented."""
    if blend is None:
        return None
    if len(blend) % 2 == 1:
        return [p.strip() for p in blend], None
    raw_w, raw_p = blend[0::2], blend[1::2]
    weights = []
    for r in raw_w:
        try:
            weights.append(float(r))
        except ValueError:
            weights.append(None)
    if any(w is None for w in weights):
        return [p.strip() for p in blend], None
    return [p.strip() for p in raw_p], weights


def _megatron_normalize(weights: list[float]) -> list[float]:
    w = np.array(weights, dtype=np.float64)
    return (w / np.sum(w)).tolist()


@settings(max_examples=40, deadline=None)
@given(weights=mixtures())
def test_megatron_files_parse_by_megatrons_rules(weights: dict[str, float], tmp_path_factory) -> None:
    m = Manifest(weights)
    paths = _paths(weights)
    folder = tmp_path_factory.mktemp("megatron")
    (folder / "args.txt").write_text(export(m, "megatron", paths=paths))
    (folder / "split.json").write_text(export(m, "megatron-json", paths=paths))
    with open(folder / "args.txt") as f:  # as Megatron's --data-args-path
        blend = _megatron_get_blend_from_list(f.read().split())
    with open(folder / "split.json") as f:  # as Megatron's --per-split-data-args-path
        per_split = json.load(f)
        for split in ["train", "valid", "test"]:
            if isinstance(per_split[split], str):
                per_split[split] = per_split[split].split()
        blends = [_megatron_get_blend_from_list(per_split[s]) for s in ["train", "valid", "test"]]
    assert blends[1] is None and blends[2] is None
    expected = {paths[n]: w for n, w in m.weights.items() if w > 0}
    for prefixes, ws in (blend, blends[0]):
        assert ws is not None and all(w > 0 for w in ws)  # Megatron asserts weights > 0
        assert prefixes == list(expected)
        normed = _megatron_normalize(ws)
        assert abs(math.fsum(normed) - 1.0) <= 1e-12
        np.testing.assert_allclose(normed, list(expected.values()), rtol=0, atol=1e-12)


def test_megatron_rejects_ambiguous_prefixes_and_multiple_paths() -> None:
    m = Manifest({"A": 0.5, "B": 0.5})
    for bad in ({"A": "1e5"}, {"A": "inf"}, {"A": "my data/a"}):
        with pytest.raises(MixlawsError, match="source 'A'"):
            export(m, "megatron", paths=bad)
    with pytest.raises(MixlawsError, match="one path"):
        export(m, "megatron", paths={"A": ["/x", "/y"], "B": "/z"})


def test_megatron_json_splits_option() -> None:
    m = Manifest({"A": 0.25, "B": 0.75})
    data = json.loads(export(m, "megatron-json", splits=("train", "valid")))
    assert data["train"] == data["valid"] == ["0.25", "A", "0.75", "B"] and data["test"] is None
    assert parse_export(json.dumps(data), "megatron-json", split="valid") == {"A": 0.25, "B": 0.75}
    with pytest.raises(MixlawsError, match="splits"):
        export(m, "megatron-json", splits=("training",))


@pytest.mark.parametrize("text", ["", "0.5 A 0.5", "0 A 1 B", "x A 1 B", "-1 A 2 B", "0.5 A 0.5 A"])
def test_parse_megatron_rejects_malformed(text: str) -> None:
    with pytest.raises(ArtifactError):
        parse_export(text, "megatron")


# ----------------------------------------------------------------------------- per-document
@settings(max_examples=60, deadline=None)
@given(weights=mixtures(), data=st.data())
def test_per_document_conversion_matches_formula(weights: dict[str, float], data: st.DataObject) -> None:
    lengths = {n: data.draw(st.floats(1.0, 1e5)) for n in weights}
    m = Manifest(weights)
    for fmt in sorted(DOC_FORMATS):
        text = export(m, fmt, paths=_paths(weights), doc_lengths=lengths)
        if fmt == "hf":
            out = json.loads(text)
            assert out["unit"] == "documents"
            probs = dict(zip(out["sources"], out["probabilities"]))
        else:
            probs = {n: s["proportion"] for n, s in yaml.safe_load(text)["streams"].items()}
        pos = [n for n, w in m.weights.items() if w > 0]
        x = np.array([m.weights[n] / lengths[n] for n in pos])
        np.testing.assert_allclose([probs[n] for n in pos], x / x.sum(), rtol=1e-12, atol=0)
        assert abs(math.fsum(probs.values()) - 1) <= 1e-12
        back = parse_export(text, fmt, doc_lengths=lengths)
        for n, w in m.weights.items():
            assert abs(back.get(n, 0.0) - w) <= 1e-12


def test_per_document_helpers_invert_and_check() -> None:
    w = {"A": 0.2, "B": 0.8}
    p = per_document_probabilities(w, {"A": 1000.0, "B": 100.0})
    assert p == pytest.approx({"A": 0.2 / 1000 / (0.2 / 1000 + 0.8 / 100), "B": 0.8 / 100 / (0.2 / 1000 + 0.8 / 100)}, rel=1e-15)
    assert token_shares_from_documents(p, {"A": 1000.0, "B": 100.0}) == pytest.approx(w, abs=1e-15)
    with pytest.raises(MixlawsError, match="'B'"):
        per_document_probabilities(w, {"A": 3.0})
    with pytest.raises(MixlawsError, match="positive"):
        per_document_probabilities(w, {"A": 3.0, "B": 0.0})


@pytest.mark.parametrize("fmt", sorted(set(FORMATS) - DOC_FORMATS))
def test_doc_lengths_refused_by_token_formats(fmt: str) -> None:
    with pytest.raises(MixlawsError, match="token shares"):
        export(Manifest({"A": 1.0}), fmt, paths={"A": "/a"}, doc_lengths={"A": 10.0})


def test_hf_without_doc_lengths_says_token_shares() -> None:
    out = json.loads(export(Manifest({"A": 0.4, "B": 0.6}), "hf"))
    assert out == {"unit": "tokens", "sources": ["A", "B"], "probabilities": [0.4, 0.6]}


# ----------------------------------------------------------------------------- real HF datasets
def test_hf_output_accepted_by_interleave_datasets() -> None:
    datasets = pytest.importorskip("datasets")
    weights = {"arxiv": 1e-12, "c4": 0.3, "github": 0.0, "wiki": 0.7 - 1e-12}
    lengths = {"arxiv": 50.0, "c4": 400.0, "github": 10.0, "wiki": 100.0}
    m = Manifest(weights)
    n_rows = 20_000
    for doc_lengths in (None, lengths):
        spec = json.loads(export(m, "hf", doc_lengths=doc_lengths))
        dss = [
            datasets.Dataset.from_dict({"source": [s] * n_rows, "n_tokens": [int(lengths[s])] * n_rows})
            for s in spec["sources"]
        ]
        mixed = datasets.interleave_datasets(
            dss, probabilities=spec["probabilities"], seed=0, stopping_strategy="first_exhausted"
        )
        head = mixed.select(range(10_000))
        src, tok = np.array(head["source"]), np.array(head["n_tokens"], dtype=float)
        if doc_lengths is None:  # token shares used as document probabilities
            share = {s: np.mean(src == s) for s in spec["sources"]}
        else:  # per-document probabilities recover the token shares
            share = {s: tok[src == s].sum() / tok.sum() for s in spec["sources"]}
        assert share["c4"] == pytest.approx(0.3, abs=0.02)
        assert share["wiki"] == pytest.approx(0.7, abs=0.02)
    # the check is real: probabilities that do not sum to 1 are refused by HF
    with pytest.raises(ValueError):
        datasets.interleave_datasets(dss, probabilities=[p * 1.01 for p in spec["probabilities"]], seed=0)


# ----------------------------------------------------------------------------- schemas
_OLMO_FIELDS = {"source_name", "target_ratio", "paths", "max_repetition_ratio", "max_source_fraction"}


def test_olmo_core_matches_source_mixture_list_schema() -> None:
    m = Manifest({"A": 0.25, "B": 0.5, "C": 0.25, "D": 0.0}, max_epochs={"A": 4.0, "B": 0.5})
    paths = {"A": "s3://b/a/*.npy", "B": ["/b/1.npy", "/b/2.npy"], "C": "/c.npy", "D": "/d.npy"}
    data = yaml.safe_load(export(m, "olmo-core", paths=paths))
    assert list(data) == ["sources"]
    for src in data["sources"]:  # SourceMixtureConfig.validate, field by field
        assert set(src) <= _OLMO_FIELDS and isinstance(src["source_name"], str)
        assert 0 < src["target_ratio"] <= 1
        assert isinstance(src["paths"], list) and src["paths"] and all(isinstance(p, str) for p in src["paths"])
        assert src.get("max_repetition_ratio", 1.0) >= 1
        assert 0 < src.get("max_source_fraction", 1.0) <= 1
    assert np.allclose(np.sum([s["target_ratio"] for s in data["sources"]]), 1.0)  # SourceMixtureList.validate
    by = {s["source_name"]: s for s in data["sources"]}
    assert by["A"]["max_repetition_ratio"] == 4.0 and by["B"]["max_source_fraction"] == 0.5
    assert "max_repetition_ratio" not in by["C"] and "D" not in by
    assert by["B"]["paths"] == ["/b/1.npy", "/b/2.npy"]


@pytest.mark.parametrize("fmt", sorted(NEEDS_PATHS))
def test_formats_needing_paths_say_how_to_give_them(fmt: str) -> None:
    with pytest.raises(MixlawsError, match="--paths") as err:
        export(Manifest({"A": 0.5, "B": 0.5}), fmt, paths={"A": "/a"})
    assert err.value.source == "B"


def test_mosaicml_streams_schema() -> None:
    m = Manifest({"A": 0.25, "B": 0.75, "C": 0.0})
    paths = {"A": "s3://bucket/a", "B": "/data/b", "C": "/data/c"}
    data = yaml.safe_load(export(m, "mosaicml", paths=paths, local_root="/tmp/cache/", split="train"))
    assert data == {
        "streams": {
            "A": {"remote": "s3://bucket/a", "local": "/tmp/cache/A", "split": "train", "proportion": 0.25},
            "B": {"local": "/data/b", "split": "train", "proportion": 0.75},
        }
    }
    with pytest.raises(MixlawsError, match="one path"):
        export(m, "mosaicml", paths={**paths, "A": ["s3://x", "s3://y"]})


def test_nanotron_and_levanter_schema() -> None:
    m = Manifest({"A": 0.25, "B": 0.75, "C": 0.0})
    nano = yaml.safe_load(export(m, "nanotron", paths={"A": "/ds/a", "B": "/ds/b"}))
    assert nano == {"dataset_folder": ["/ds/a", "/ds/b"], "dataset_weights": [0.25, 0.75]}
    with pytest.raises(MixlawsError, match="source 'B' has no data path"):  # never a bare name
        export(m, "nanotron", paths={"A": "/ds/a"})
    assert yaml.safe_load(export(m, "levanter")) == {"train_weights": {"A": 0.25, "B": 0.75, "C": 0.0}}


def test_canonical_manifest_contents() -> None:
    m = manifest_from_dict(_artifact())
    data = json.loads(export(m, "json", paths={"A": "/a"}))
    assert data["kind"] == "mixlaws.manifest" and data["unit"] == "tokens"
    assert data["total_tokens"] == 1e11 and data["weights"] == {"A": 0.3, "B": 0.7}
    assert data["sources"]["A"] == {
        "weight": 0.3, "tokens": 3e10, "available_tokens": 1e12, "max_epochs": 4.0,
        "epochs": 0.03, "paths": ["/a"],
    }
    assert data["target"] == {"params": 1e9, "tokens": 1e11} and data["predicted_loss"] == 2.91
    assert yaml.safe_load(export(m, "yaml")) == json.loads(export(m, "json"))


def test_unknown_format_and_options() -> None:
    m = Manifest({"A": 1.0})
    with pytest.raises(MixlawsError, match="unknown export format"):
        export(m, "deepspeed")
    with pytest.raises(MixlawsError, match="does not take options"):
        export(m, "levanter", splits=("train",))
    with pytest.raises(ArtifactError):
        parse_export("{}", "deepspeed")


# ----------------------------------------------------------------------------- user files
def test_load_paths_and_doc_lengths(tmp_path: Path) -> None:
    p = tmp_path / "paths.yaml"
    p.write_text("A: /data/a\nB: [/data/b1, /data/b2]\n")
    assert load_paths(p) == {"A": "/data/a", "B": ["/data/b1", "/data/b2"]}
    p.write_text(json.dumps({"A": "/a"}))
    assert load_paths(p) == {"A": "/a"}
    for bad in ("A: 3\n", "A: []\n", "- /a\n", "A: [/a, 2]\n", "{: ["):
        p.write_text(bad)
        with pytest.raises(MixlawsError, match=str(p)):
            load_paths(p)
    d = tmp_path / "lengths.yaml"
    d.write_text("A: 512\nB: 1.5e3\n")
    assert load_doc_lengths(d) == {"A": 512.0, "B": 1500.0}
    d.write_text("A: -1\n")
    with pytest.raises(MixlawsError, match="'A'"):
        load_doc_lengths(d)


# ----------------------------------------------------------------------------- real data
def test_regmix_mixtures_real_data() -> None:
    pd = pytest.importorskip("pandas")
    path = DATA / "regmix" / "train_1m_runs.csv"
    if not path.exists():
        pytest.skip("shared RegMix data absent")
    mix = pd.read_csv(path).filter(like="mix:").iloc[:40]
    mix.columns = [c[4:] for c in mix.columns]
    for _, row in mix.iterrows():
        weights = {k: float(v) for k, v in row.items()}
        if abs(math.fsum(weights.values()) - 1) > 1e-9:  # 3-decimal rounding: refused, not guessed
            with pytest.raises(ArtifactError, match="sum"):
                manifest_from_dict({"kind": "mixlaws.mixture", "mixture": weights})
            weights = _normalise(weights)
        m = manifest_from_dict({"kind": "mixlaws.mixture", "mixture": weights})
        paths = _paths(weights)
        for fmt in FORMATS:
            back = parse_export(export(m, fmt, paths=paths), fmt, paths=paths)
            assert max(abs(back.get(n, 0.0) - w) for n, w in m.weights.items()) <= 1e-12
