"""Write a mixture in the exact format each data loader reads, and read it back.

Most loaders draw fixed-length token sequences, so they take the token shares
``w_i`` of the :class:`~mixlaws.export.Manifest` directly. Loaders that draw
whole documents (Hugging Face ``interleave_datasets``, MosaicML streams without
pre-concatenation) need per-document probabilities, given the mean tokens per
document ``l_i`` of each source::

    p_i = (w_i / l_i) / sum_j (w_j / l_j),      inverted by   w_i = p_i l_i / sum_j p_j l_j.

Every weight is written as the shortest decimal that reads back as the same
float64 (``repr``), so JSON and YAML round-trip exactly. Zero weights are dropped
(and the others renormalised at full precision) where a loader forbids them or
would still open the source's files; Levanter keeps them (weight 0 is valid).

Each writer is registered in :data:`FORMATS` and called as
``writer(manifest, paths, doc_lengths, **options) -> str``.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Callable, Mapping, Sequence

import yaml

from ..errors import MixlawsError
from ._manifest import (
    Manifest,
    _normalised,
    per_document_probabilities,
)

__all__ = ["FORMATS", "canonical_dict", "export"]

Paths = Mapping[str, "list[str] | str"]
Writer = Callable[..., str]
_DOC_FORMATS = ("hf", "mosaicml")
_SPLITS = ("train", "valid", "test")


def _draw_shares(
    manifest: Manifest, doc_lengths: Mapping[str, float] | None
) -> tuple[list[str], list[float], str]:
    """Sources with a positive weight, their renormalised shares, and the unit."""
    positive = {n: w for n, w in manifest.weights.items() if w > 0}
    if doc_lengths is None:
        return list(positive), _normalised(list(positive.values())), "tokens"
    probs = per_document_probabilities(positive, doc_lengths)
    return list(probs), list(probs.values()), "documents"


# --------------------------------------------------------------------------- paths
def _path_of(name: str, paths: Paths | None, fmt: str, *, required: bool) -> list[str]:
    entry = (paths or {}).get(name)
    if entry is None:
        if required or paths is not None:  # a paths file that lacks a source: never a bare name
            unmatched = sorted(set(paths or {}) - {name})
            hint = f" (the paths file names only {unmatched[:5]})" if unmatched else ""
            raise MixlawsError(
                f"{fmt}: source {name!r} has no data path{hint}; give one with --paths FILE, "
                f"a YAML mapping '{name}: <path>'",
                source=name, format=fmt,
            )
        return [name]
    return [entry] if isinstance(entry, str) else list(entry)


def _one_path(name: str, paths: Paths | None, fmt: str, *, required: bool) -> str:
    found = _path_of(name, paths, fmt, required=required)
    if len(found) != 1:
        raise MixlawsError(
            f"{fmt}: source {name!r} has {len(found)} paths but {fmt} weights each path on its "
            "own; give one path (prefix/folder) per source in the paths file",
            source=name, format=fmt,
        )
    return found[0]


def _no_doc_lengths(fmt: str, doc_lengths: Mapping[str, float] | None) -> None:
    if doc_lengths is not None:
        raise MixlawsError(
            f"{fmt} draws fixed-length token sequences, so its weights are token shares; "
            f"document lengths apply only to {', '.join(_DOC_FORMATS)} — drop them",
            format=fmt,
        )


# --------------------------------------------------------------------------- rendering
def _yaml(data: Any, header: str) -> str:
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 30)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def _header(loader: str, unit: str) -> str:
    from .._version import __version__

    what = (
        "token shares (fraction of training tokens)"
        if unit == "tokens"
        else "per-document probabilities p_i = (w_i/l_i) / sum_j (w_j/l_j)"
    )
    return f"mixlaws {__version__} mixture for {loader}; weights are {what}"


def canonical_dict(manifest: Manifest, paths: Paths | None = None) -> dict[str, Any]:
    """The loader-independent manifest: weights, unit, total tokens and per-source supply."""
    from .._version import __version__

    tokens, epochs = manifest.tokens, manifest.epochs
    sources: dict[str, Any] = {}
    for name, w in manifest.weights.items():
        entry: dict[str, Any] = {
            "weight": w,
            "tokens": tokens[name],
            "available_tokens": manifest.available_tokens[name],
            "max_epochs": manifest.max_epochs[name],
            "epochs": epochs[name],
        }
        if paths and name in paths:
            entry["paths"] = _path_of(name, paths, "manifest", required=True)
        sources[name] = entry
    out: dict[str, Any] = {
        "kind": "mixlaws.manifest",
        "mixlaws_version": __version__,
        "unit": "tokens",
        "total_tokens": manifest.total_tokens,
        "weights": dict(manifest.weights),
        "sources": sources,
    }
    for key in ("target", "predicted_loss"):
        if key in manifest.meta:
            out[key] = manifest.meta[key]
    return out


# --------------------------------------------------------------------------- writers
def _write_json(manifest: Manifest, paths: Paths | None, doc_lengths: Mapping[str, float] | None) -> str:
    """Canonical manifest as JSON."""
    _no_doc_lengths("json", doc_lengths)
    return _json(canonical_dict(manifest, paths))


def _write_yaml(manifest: Manifest, paths: Paths | None, doc_lengths: Mapping[str, float] | None) -> str:
    """Canonical manifest as YAML."""
    _no_doc_lengths("yaml", doc_lengths)
    return _yaml(canonical_dict(manifest, paths), _header("any loader (canonical manifest)", "tokens"))


def _megatron_pairs(manifest: Manifest, paths: Paths | None, fmt: str) -> list[tuple[str, str]]:
    names, shares, _ = _draw_shares(manifest, None)
    pairs = []
    for name, w in zip(names, shares):
        prefix = _one_path(name, paths, fmt, required=False)
        if any(c.isspace() for c in prefix) or _reads_as_float(prefix):
            raise MixlawsError(
                f"{fmt}: prefix {prefix!r} of source {name!r} contains whitespace or reads as a "
                "number, which Megatron's data-args parser cannot tell from a weight; "
                "give a path prefix with --paths FILE",
                source=name, format=fmt,
            )
        pairs.append((repr(w), prefix))
    return pairs


def _write_megatron(manifest: Manifest, paths: Paths | None, doc_lengths: Mapping[str, float] | None) -> str:
    """``--data-args-path`` file: one ``weight prefix`` pair per line, zero weights dropped."""
    _no_doc_lengths("megatron", doc_lengths)
    return "".join(f"{w} {p}\n" for w, p in _megatron_pairs(manifest, paths, "megatron"))


def _write_megatron_json(
    manifest: Manifest,
    paths: Paths | None,
    doc_lengths: Mapping[str, float] | None,
    *,
    splits: Sequence[str] = ("train",),
) -> str:
    """``--per-split-data-args-path`` JSON: ``{"train": [w1, p1, ...], "valid": null, "test": null}``.

    Megatron reads all three keys; splits not in ``splits`` are null (no data).
    """
    _no_doc_lengths("megatron-json", doc_lengths)
    bad = [s for s in splits if s not in _SPLITS]
    if bad or not splits:
        raise MixlawsError(f"megatron-json: splits must be among {list(_SPLITS)}, got {list(splits)}", format="megatron-json")
    flat = [item for pair in _megatron_pairs(manifest, paths, "megatron-json") for item in pair]
    return _json({s: (list(flat) if s in splits else None) for s in _SPLITS})


def _write_hf(manifest: Manifest, paths: Paths | None, doc_lengths: Mapping[str, float] | None) -> str:
    """JSON with parallel ``sources``/``probabilities`` for ``datasets.interleave_datasets``."""
    names, probs, unit = _draw_shares(manifest, doc_lengths)
    out: dict[str, Any] = {"unit": unit, "sources": names, "probabilities": probs}
    if doc_lengths is not None:
        out["mean_doc_tokens"] = {n: float(doc_lengths[n]) for n in names}
    if paths:
        out["paths"] = [_path_of(n, paths, "hf", required=False) for n in names]
    return _json(out)


def _write_mosaicml(
    manifest: Manifest,
    paths: Paths | None,
    doc_lengths: Mapping[str, float] | None,
    *,
    local_root: str | None = None,
    split: str | None = None,
) -> str:
    """llm-foundry ``streams:`` YAML ``{name: {remote, local, proportion}}``.

    A path with a URL scheme (``s3://``...) is the stream's ``remote``; any other
    path is its ``local`` directory. ``local_root`` adds ``local: <root>/<name>``
    as the cache of a remote stream.
    """
    names, probs, unit = _draw_shares(manifest, doc_lengths)
    streams: dict[str, Any] = {}
    for name, p in zip(names, probs):
        location = _one_path(name, paths, "mosaicml", required=True)
        stream: dict[str, Any] = {}
        if "://" in location:
            stream["remote"] = location
            if local_root is not None:
                stream["local"] = f"{local_root.rstrip('/')}/{name}"
        else:
            stream["local"] = location
        if split is not None:
            stream["split"] = split
        stream["proportion"] = p
        streams[name] = stream
    note = "" if unit == "documents" else "\n(samples are pre-concatenated sequences; give doc lengths otherwise)"
    return _yaml({"streams": streams}, _header("MosaicML streaming / llm-foundry", unit) + note)


def _write_olmo_core(manifest: Manifest, paths: Paths | None, doc_lengths: Mapping[str, float] | None) -> str:
    """OLMo-core ``SourceMixtureList`` YAML.

    ``max_epochs = e`` becomes ``max_repetition_ratio = e`` when ``e >= 1`` and
    ``max_source_fraction = e`` when ``e < 1`` (OLMo-core caps a source at
    ``available * max_source_fraction * max_repetition_ratio`` tokens and
    requires ``max_repetition_ratio >= 1``); unknown caps are left to its defaults.
    """
    _no_doc_lengths("olmo-core", doc_lengths)
    names, shares, unit = _draw_shares(manifest, None)
    sources = []
    for name, w in zip(names, shares):
        entry: dict[str, Any] = {
            "source_name": name,
            "target_ratio": w,
            "paths": _path_of(name, paths, "olmo-core", required=True),
        }
        cap = manifest.max_epochs[name]
        if cap is not None and cap >= 1:
            entry["max_repetition_ratio"] = cap
        elif cap is not None:
            entry["max_source_fraction"] = cap
        sources.append(entry)
    return _yaml({"sources": sources}, _header("OLMo-core SourceMixtureList", unit))


def _write_levanter(manifest: Manifest, paths: Paths | None, doc_lengths: Mapping[str, float] | None) -> str:
    """Levanter ``train_weights: {name: weight}`` (zero weights kept: Levanter allows them)."""
    _no_doc_lengths("levanter", doc_lengths)
    return _yaml({"train_weights": dict(manifest.weights)}, _header("Levanter", "tokens"))


def _write_nanotron(manifest: Manifest, paths: Paths | None, doc_lengths: Mapping[str, float] | None) -> str:
    """nanotron Nanoset ``dataset_folder: [...]`` and ``dataset_weights: [...]`` (zeros dropped)."""
    _no_doc_lengths("nanotron", doc_lengths)
    names, shares, unit = _draw_shares(manifest, None)
    folders = [_one_path(n, paths, "nanotron", required=False) for n in names]
    return _yaml({"dataset_folder": folders, "dataset_weights": shares}, _header("nanotron Nanoset", unit))


FORMATS: dict[str, Writer] = {
    "json": _write_json,
    "yaml": _write_yaml,
    "megatron": _write_megatron,
    "megatron-json": _write_megatron_json,
    "hf": _write_hf,
    "mosaicml": _write_mosaicml,
    "olmo-core": _write_olmo_core,
    "levanter": _write_levanter,
    "nanotron": _write_nanotron,
}


def _writer(fmt: str) -> Writer:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise MixlawsError(f"unknown export format {fmt!r}; choose one of {sorted(FORMATS)}", format=fmt) from None


def export(
    manifest: Manifest,
    fmt: str,
    *,
    paths: Paths | None = None,
    doc_lengths: Mapping[str, float] | None = None,
    **options: Any,
) -> str:
    """Render ``manifest`` in loader format ``fmt`` (a key of :data:`FORMATS`).

    Parameters
    ----------
    manifest
        The mixture, in token shares.
    fmt
        Target format: ``json``, ``yaml``, ``megatron``, ``megatron-json``, ``hf``,
        ``mosaicml``, ``olmo-core``, ``levanter`` or ``nanotron``.
    paths
        Source -> data path(s) (see :func:`load_paths`).
    doc_lengths
        Source -> mean tokens per document; converts to per-document
        probabilities (``hf``, ``mosaicml`` only).
    **options
        Format options (``megatron-json``: ``splits``; ``mosaicml``: ``local_root``, ``split``).

    Returns
    -------
    str
        The text to write to the loader's config file.
    """
    writer = _writer(fmt)
    try:
        inspect.signature(writer).bind(manifest, paths, doc_lengths, **options)
    except TypeError:
        allowed = [p for p in inspect.signature(writer).parameters if p not in ("manifest", "paths", "doc_lengths")]
        raise MixlawsError(
            f"format {fmt!r} does not take options {sorted(options)}; it takes {allowed or 'none'}",
            format=fmt,
        ) from None
    return writer(manifest, paths, doc_lengths, **options)


def _reads_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
