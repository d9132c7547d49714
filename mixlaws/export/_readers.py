"""Read the loader files written by :mod:`mixlaws.export` back into token shares.

Used by round-trip tests and by anyone checking what a config file says. Each
reader follows the rules of the loader it mirrors (Megatron: ``w1 p1 w2 p2 ...``
pairs, every weight positive, normalised) and returns normalised token shares
``w_i = x_i / sum_j x_j``; per-document probabilities are inverted with
``w_i = p_i l_i / sum_j p_j l_j``.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Mapping, Sequence

import yaml

from ..errors import ArtifactError
from ._manifest import _normalised, token_shares_from_documents

__all__ = ["parse_export"]

Paths = Mapping[str, "list[str] | str"]


def _inverse_paths(paths: Paths | None) -> dict[str, str]:
    """Map every path/prefix back to its source name."""
    out: dict[str, str] = {}
    for name, entry in (paths or {}).items():
        for p in [entry] if isinstance(entry, str) else entry:
            out[p] = name
    return out


def _field(data: object, key: str, fmt: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        raise ArtifactError(f"{fmt}: no {key!r} field; is this a {fmt} export?", format=fmt)
    return data[key]


def _load(text: str, fmt: str, loader: Callable[[str], Any]) -> Any:
    try:
        return loader(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ArtifactError(f"{fmt}: cannot parse the export ({exc.__class__.__name__})", format=fmt) from exc


def _parallel(keys: object, values: object, fmt: str, what: str) -> dict[Any, Any]:
    if not isinstance(keys, list) or not isinstance(values, list) or len(keys) != len(values):
        raise ArtifactError(f"{fmt}: {what} must be lists of the same length", format=fmt)
    if len(set(keys)) != len(keys):
        raise ArtifactError(f"{fmt}: a source appears twice in {what}", format=fmt)
    return dict(zip(keys, values))


def megatron_blend(items: Sequence[object], fmt: str = "megatron") -> list[tuple[str, float]]:
    """Megatron's ``get_blend_from_list`` rules, strictly: ``w1 p1 w2 p2 ...``, every ``w > 0``.

    Megatron treats an odd-length list as prefixes without weights; an export
    always has weights, so that is an error here.
    """
    if not items or len(items) % 2:
        raise ArtifactError(f"{fmt}: expected 'weight prefix' pairs, got {len(items)} items", format=fmt)
    blend = []
    for raw_w, raw_p in zip(items[::2], items[1::2]):
        try:
            w = float(raw_w)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ArtifactError(f"{fmt}: {raw_w!r} is not a weight", format=fmt) from None
        if not 0 < w < math.inf:
            raise ArtifactError(f"{fmt}: weight {raw_w!r} of {raw_p!r} must be positive and finite", format=fmt)
        blend.append((str(raw_p).strip(), w))
    return blend


def _from_blend(blend: list[tuple[str, float]], fmt: str, names: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for prefix, w in blend:
        name = names.get(prefix, prefix)
        if name in out:
            raise ArtifactError(f"{fmt}: {prefix!r} appears twice", format=fmt)
        out[name] = w
    return out


def _parse_megatron(text: str, names: dict[str, str], doc_lengths: Any, split: str) -> dict[str, Any]:
    return _from_blend(megatron_blend(text.split()), "megatron", names)


def _parse_megatron_json(text: str, names: dict[str, str], doc_lengths: Any, split: str) -> dict[str, Any]:
    items = _field(_load(text, "megatron-json", json.loads), split, "megatron-json")
    items = items.split() if isinstance(items, str) else list(items or [])
    return _from_blend(megatron_blend(items, "megatron-json"), "megatron-json", names)


def _parse_canonical(text: str, fmt: str) -> dict[str, Any]:
    data = _load(text, fmt, json.loads if fmt == "json" else yaml.safe_load)
    weights = _field(data, "weights", fmt)
    if not isinstance(weights, Mapping):
        raise ArtifactError(f"{fmt}: 'weights' is not a mapping", format=fmt)
    return dict(weights)


def _parse_hf(text: str, names: dict[str, str], doc_lengths: Any, split: str) -> dict[str, Any]:
    data = _load(text, "hf", json.loads)
    raw = _parallel(_field(data, "sources", "hf"), _field(data, "probabilities", "hf"), "hf", "sources/probabilities")
    if _field(data, "unit", "hf") == "documents":
        _check(raw, "hf")
        return token_shares_from_documents(raw, doc_lengths or data.get("mean_doc_tokens") or {})
    return raw


def _parse_mosaicml(text: str, names: dict[str, str], doc_lengths: Any, split: str) -> dict[str, Any]:
    streams = _field(_load(text, "mosaicml", yaml.safe_load), "streams", "mosaicml")
    if not isinstance(streams, Mapping):
        raise ArtifactError("mosaicml: 'streams' is not a mapping name -> stream", format="mosaicml")
    raw = {name: _field(stream, "proportion", "mosaicml") for name, stream in streams.items()}
    if doc_lengths is not None:
        _check(raw, "mosaicml")
        return token_shares_from_documents(raw, doc_lengths)
    return raw


def _parse_olmo_core(text: str, names: dict[str, str], doc_lengths: Any, split: str) -> dict[str, Any]:
    sources = _field(_load(text, "olmo-core", yaml.safe_load), "sources", "olmo-core")
    if not isinstance(sources, list):
        raise ArtifactError("olmo-core: 'sources' is not a list", format="olmo-core")
    keys = [_field(s, "source_name", "olmo-core") for s in sources]
    return _parallel(keys, [_field(s, "target_ratio", "olmo-core") for s in sources], "olmo-core", "sources")


def _parse_levanter(text: str, names: dict[str, str], doc_lengths: Any, split: str) -> dict[str, Any]:
    weights = _field(_load(text, "levanter", yaml.safe_load), "train_weights", "levanter")
    if not isinstance(weights, Mapping):
        raise ArtifactError("levanter: 'train_weights' is not a mapping", format="levanter")
    return dict(weights)


def _parse_nanotron(text: str, names: dict[str, str], doc_lengths: Any, split: str) -> dict[str, Any]:
    data = _load(text, "nanotron", yaml.safe_load)
    folders = _field(data, "dataset_folder", "nanotron")
    mapped = [names.get(f, f) for f in folders] if isinstance(folders, list) else folders
    return _parallel(mapped, _field(data, "dataset_weights", "nanotron"), "nanotron", "dataset_folder/dataset_weights")


PARSERS: dict[str, Callable[[str, dict[str, str], Any, str], dict[str, Any]]] = {
    "json": lambda text, names, doc_lengths, split: _parse_canonical(text, "json"),
    "yaml": lambda text, names, doc_lengths, split: _parse_canonical(text, "yaml"),
    "megatron": _parse_megatron,
    "megatron-json": _parse_megatron_json,
    "hf": _parse_hf,
    "mosaicml": _parse_mosaicml,
    "olmo-core": _parse_olmo_core,
    "levanter": _parse_levanter,
    "nanotron": _parse_nanotron,
}


def _check(raw: Mapping[Any, Any], fmt: str) -> None:
    bad = [n for n, w in raw.items() if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w < math.inf]
    if bad or not raw or math.fsum(float(w) for w in raw.values()) <= 0:
        raise ArtifactError(f"{fmt}: invalid weights for {bad or 'all sources'}", format=fmt)


def parse_export(
    text: str,
    fmt: str,
    *,
    paths: Paths | None = None,
    doc_lengths: Mapping[str, float] | None = None,
    split: str = "train",
) -> dict[str, float]:
    """Read an exported mixture back as normalised token shares ``{source: w}``.

    Parameters
    ----------
    text
        The exported text.
    fmt
        The format it was written in (a key of ``mixlaws.export.FORMATS``).
    paths
        The mapping used for export; maps prefixes/folders back to source names.
    doc_lengths
        Mean tokens per document, to invert per-document probabilities
        (``w_i = p_i l_i / sum_j p_j l_j``): needed for ``mosaicml`` written
        with doc lengths; ``hf`` stores them and uses these only if given.
    split
        Split read from ``megatron-json``.

    Returns
    -------
    dict
        ``w_i / sum_j w_j`` per source; sources dropped at export are absent.

    Raises
    ------
    ArtifactError
        The text is not a valid export in ``fmt``.
    """
    try:
        parser = PARSERS[fmt]
    except KeyError:
        raise ArtifactError(f"unknown export format {fmt!r}; choose one of {sorted(PARSERS)}", format=fmt) from None
    raw = parser(text, _inverse_paths(paths), doc_lengths, split)
    _check(raw, fmt)
    return dict(zip(raw, _normalised([float(w) for w in raw.values()])))
