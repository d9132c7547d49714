"""The canonical, loader-independent description of a chosen mixture.

A :class:`Manifest` holds the token shares ``w_i`` of each training source (the
proportions a sequence-packing loader draws), the total training tokens ``D``
and what is known of each source's supply. Everything a loader format needs is
derived from it:

    tokens_i = w_i * D,            epochs_i = tokens_i / available_tokens_i.

This module also reads the small user files that exporting needs: the mixture
artifact ``MIX.json`` written by ``mixlaws optimize``, the mapping of sources to
data paths, and the mean document length of each source, and converts token
shares to the per-document probabilities that document-sampling loaders need.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .._yaml import safe_load

from ..errors import ArtifactError, DataNote, MixlawsError

__all__ = ["MIXTURE_KIND", "Manifest", "manifest_from_dict", "load_mixture", "load_paths",
           "load_doc_lengths", "per_document_probabilities", "token_shares_from_documents"]

MIXTURE_KIND = "mixlaws.mixture"
SUM_TOLERANCE = 1e-9  # |sum w - 1| beyond this is an error, below it float rounding
_NOTE_TOLERANCE = 1e-12  # rounding larger than this is renormalised with a DataNote
_NEGATIVE_ROUNDING = 1e-12  # weights in [-this, 0) are optimiser rounding of 0


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optional_positive(
    value: object, what: str, path: str, source: str | None, *, allow_zero: bool = False
) -> float | None:
    """Return ``value`` as a positive (or, if allowed, zero) finite float, or None."""
    if value is None:
        return None
    if (
        not _is_number(value)
        or not math.isfinite(float(value))  # type: ignore[arg-type]
        or float(value) < 0  # type: ignore[arg-type]
        or (float(value) == 0 and not allow_zero)  # type: ignore[arg-type]
    ):
        where = f"source {source!r}" if source is not None else "the mixture"
        kind = "non-negative" if allow_zero else "positive"
        raise ArtifactError(
            f"{path}: {what} of {where} is {value!r}; it must be a {kind} number or null",
            path=path, source=source, field=what,
        )
    return float(value)  # type: ignore[arg-type]


def _check_weights(weights: Mapping[str, object], path: str) -> dict[str, float]:
    """Validate token shares and remove float rounding.

    Weights must be finite and non-negative (values in ``[-1e-12, 0)`` are taken
    as rounding of 0) and satisfy ``|sum_i w_i - 1| <= 1e-9``. They are returned
    as ``w_i / S`` with ``S = fsum(w)``, so that they sum to 1 up to an ulp; a
    correction larger than 1e-12 is reported with a :class:`DataNote`.
    """
    if not isinstance(weights, Mapping) or not weights:
        raise ArtifactError(
            f"{path}: the mixture must be a non-empty mapping source -> weight", path=path
        )
    clean: dict[str, float] = {}
    for name, value in weights.items():
        if not isinstance(name, str) or not name.strip():
            raise ArtifactError(f"{path}: source name {name!r} is not a non-empty string", path=path)
        if not _is_number(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
            raise ArtifactError(
                f"{path}: weight of source {name!r} is {value!r}; it must be a finite number",
                path=path, source=name,
            )
        w = float(value)  # type: ignore[arg-type]
        if w < 0:
            if w < -_NEGATIVE_ROUNDING:
                raise ArtifactError(
                    f"{path}: weight of source {name!r} is negative ({w!r}); "
                    "re-run `mixlaws optimize` or fix the mixture",
                    path=path, source=name,
                )
            w = 0.0
        clean[name] = w
    total = math.fsum(clean.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ArtifactError(
            f"{path}: the weights sum to {total!r}, not 1 (tolerance {SUM_TOLERANCE:g}); "
            "give token shares that sum to 1",
            path=path, total=total,
        )
    if abs(total - 1.0) > _NOTE_TOLERANCE:
        warnings.warn(
            f"{path}: weights summed to {total!r}; renormalised to sum to 1",
            DataNote, stacklevel=3,
        )
    return {name: w / total for name, w in clean.items()}


@dataclass(frozen=True)
class Manifest:
    """A mixture of training sources, in token shares, with its supply.

    Parameters
    ----------
    weights
        Token share ``w_i >= 0`` of each source, ``sum_i w_i = 1`` (checked to
        1e-9; only float rounding is removed, by dividing by ``fsum(w)``).
    total_tokens
        Training tokens ``D`` of the target run, or None when unknown.
    available_tokens
        Unique tokens of each source, or None when unknown.
    max_epochs
        Largest number of passes allowed over each source, or None.
    meta
        Provenance copied into the canonical manifest (target, predicted loss, ...).

    Attributes
    ----------
    tokens : dict
        ``tokens_i = w_i * D`` (None when ``D`` is unknown).
    epochs : dict
        ``epochs_i = tokens_i / available_tokens_i`` (None when either is unknown).
    """

    weights: Mapping[str, float]
    total_tokens: float | None = None
    available_tokens: Mapping[str, float | None] = field(default_factory=dict)
    max_epochs: Mapping[str, float | None] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        path = str(self.meta.get("path", "<manifest>")) if isinstance(self.meta, Mapping) else "<manifest>"
        weights = _check_weights(self.weights, path)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(
            self, "total_tokens", _optional_positive(self.total_tokens, "total_tokens", path, None)
        )
        for attr in ("available_tokens", "max_epochs"):
            given = dict(getattr(self, attr) or {})
            unknown = sorted(set(given) - set(weights))
            if unknown:
                raise ArtifactError(
                    f"{path}: {attr} names sources {unknown} that are not in the mixture "
                    f"{sorted(weights)}",
                    path=path, source=unknown[0],
                )
            object.__setattr__(
                self, attr,
                {
                    n: _optional_positive(
                        given.get(n), attr, path, n, allow_zero=attr == "max_epochs"
                    )
                    for n in weights
                },
            )
        object.__setattr__(self, "meta", dict(self.meta))

    @property
    def sources(self) -> tuple[str, ...]:
        """Source names in the order of the mixture."""
        return tuple(self.weights)

    @property
    def tokens(self) -> dict[str, float | None]:
        """Tokens drawn from each source, ``w_i * D``; None when ``D`` is unknown."""
        d = self.total_tokens
        return {n: (w * d if d is not None else None) for n, w in self.weights.items()}

    @property
    def epochs(self) -> dict[str, float | None]:
        """Passes over each source, ``w_i * D / available_i``; None when unknown."""
        out: dict[str, float | None] = {}
        for name, tok in self.tokens.items():
            avail = self.available_tokens[name]
            out[name] = tok / avail if tok is not None and avail is not None else None
        return out


def manifest_from_dict(d: Mapping[str, Any], *, path: str = "<dict>") -> Manifest:
    """Build a :class:`Manifest` from a parsed mixture artifact (``MIX.json``).

    The weights are ``d["mixture"]`` (cross-checked with ``d["sources"][name]["weight"]``
    when present); total tokens are ``d["total_tokens"]``, else ``d["target"]["tokens"]``.

    Raises
    ------
    ArtifactError
        Wrong ``kind`` or ``unit``, missing or malformed mixture, weights that do
        not sum to 1, or per-source data that disagree with the mixture.
    """
    path = str(path)
    if not isinstance(d, Mapping):
        raise ArtifactError(f"{path}: not a JSON object; give the MIX.json written by `mixlaws optimize`", path=path)
    kind = d.get("kind")
    if kind != MIXTURE_KIND:
        raise ArtifactError(
            f"{path}: kind is {kind!r}, expected {MIXTURE_KIND!r}; "
            "give the mixture artifact written by `mixlaws optimize`",
            path=path, kind=kind,
        )
    unit = d.get("unit", "tokens")
    if unit != "tokens":
        raise ArtifactError(f"{path}: unit is {unit!r}; mixture artifacts hold token shares (\"tokens\")", path=path)
    mixture = d.get("mixture")
    if not isinstance(mixture, Mapping):
        raise ArtifactError(f"{path}: field 'mixture' is missing or not a mapping source -> weight", path=path)
    sources = d.get("sources") or {}
    if not isinstance(sources, Mapping):
        raise ArtifactError(f"{path}: field 'sources' is not a mapping", path=path)
    extra = sorted(set(sources) - set(mixture))
    if extra:
        raise ArtifactError(f"{path}: 'sources' names {extra} that are not in 'mixture'", path=path, source=extra[0])
    available: dict[str, object] = {}
    max_epochs: dict[str, object] = {}
    for name, info in sources.items():
        if not isinstance(info, Mapping):
            raise ArtifactError(f"{path}: sources[{name!r}] is not a mapping", path=path, source=name)
        sw, mw = info.get("weight"), mixture.get(name)
        if sw is not None and _is_number(sw) and _is_number(mw) and abs(float(sw) - float(mw)) > 1e-12:
            raise ArtifactError(
                f"{path}: source {name!r} has weight {mw!r} in 'mixture' but {sw!r} in 'sources'; "
                "the artifact is inconsistent, re-run `mixlaws optimize`",
                path=path, source=name,
            )
        available[name] = info.get("available_tokens")
        max_epochs[name] = info.get("max_epochs")
    total = d.get("total_tokens")
    target = d.get("target")
    if total is None and isinstance(target, Mapping):
        total = target.get("tokens")
    meta: dict[str, Any] = {"path": path}
    for key in ("mixlaws_version", "target", "predicted_loss"):
        if d.get(key) is not None:
            meta[key] = d[key]
    return Manifest(
        weights=mixture, total_tokens=total,  # type: ignore[arg-type]
        available_tokens=available, max_epochs=max_epochs, meta=meta,  # type: ignore[arg-type]
    )


def _read_text(path: str | Path, what: str, error: type[MixlawsError]) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the {what} ({exc.__class__.__name__}: {exc})", path=str(path)) from exc


def load_mixture(path: str | Path) -> Manifest:
    """Read a mixture artifact (``MIX.json``) into a :class:`Manifest`.

    Raises
    ------
    ArtifactError
        Unreadable file, invalid JSON, or any problem listed in :func:`manifest_from_dict`.
    """
    text = _read_text(path, "mixture artifact", ArtifactError)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); "
            "give the MIX.json written by `mixlaws optimize`",
            path=str(path),
        ) from exc
    return manifest_from_dict(data, path=str(path))


def _load_mapping(path: str | Path, what: str) -> dict[Any, Any]:
    text = _read_text(path, what, MixlawsError)
    try:
        data = safe_load(text)  # YAML is a superset of JSON; duplicated keys are refused
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None)
        mark = getattr(exc, "problem_mark", None)
        detail = f"{problem} at line {mark.line + 1}" if problem and mark else exc.__class__.__name__
        raise MixlawsError(f"{path}: the {what} is not valid YAML/JSON ({detail})", path=str(path)) from exc
    if not isinstance(data, dict) or not data:
        raise MixlawsError(f"{path}: the {what} must be a non-empty mapping source -> value", path=str(path))
    return data


def load_paths(path: str | Path) -> dict[str, list[str] | str]:
    """Read a YAML/JSON mapping ``source -> path`` or ``source -> [path, ...]``.

    Paths are data prefixes (Megatron), folders (nanotron), globs or files
    (OLMo-core) or stream locations (MosaicML). Sources absent from the mixture
    are allowed (one file can serve many mixtures).

    Raises
    ------
    MixlawsError
        Unreadable file, not a mapping, or a value that is not a non-empty string
        or non-empty list of non-empty strings.
    """
    data = _load_mapping(path, "paths file")
    out: dict[str, list[str] | str] = {}
    for name, value in data.items():
        ok_str = isinstance(value, str) and value.strip() != ""
        ok_list = (
            isinstance(value, list) and len(value) > 0
            and all(isinstance(v, str) and v.strip() for v in value)
        )
        if not isinstance(name, str) or not (ok_str or ok_list):
            raise MixlawsError(
                f"{path}: entry {name!r} must map a source name to a path or a list of paths, got {value!r}",
                path=str(path), source=name,
            )
        out[name] = value.strip() if isinstance(value, str) else [v.strip() for v in value]
    return out


def load_doc_lengths(path: str | Path) -> dict[str, float]:
    """Read a YAML/JSON mapping ``source -> mean tokens per document`` (positive numbers).

    Raises
    ------
    MixlawsError
        Unreadable file, not a mapping, or a length that is not a positive finite number.
    """
    data = _load_mapping(path, "document-lengths file")
    out: dict[str, float] = {}
    for name, value in data.items():
        if isinstance(value, str):  # PyYAML reads YAML 1.1: "1.5e3" (no dot) is a string
            try:
                value = float(value)
            except ValueError:
                pass
        if not isinstance(name, str) or not _is_number(value) or not (0 < float(value) < math.inf):
            raise MixlawsError(
                f"{path}: mean document length of {name!r} is {value!r}; give a positive number of tokens",
                path=str(path), source=name,
            )
        out[name] = float(value)
    return out


def _normalised(values: Sequence[float]) -> list[float]:
    """Return ``x_i / fsum(x)`` (exactly rounded sum, so the result sums to 1 within ulps)."""
    total = math.fsum(values)
    return [v / total for v in values]


def _check_doc_lengths(names: Sequence[str], doc_lengths: Mapping[str, float]) -> list[float]:
    lengths = []
    for name in names:
        ell = doc_lengths.get(name)
        if ell is None:
            raise MixlawsError(
                f"no mean document length for source {name!r}; add it to the document-lengths file",
                source=name,
            )
        if isinstance(ell, bool) or not isinstance(ell, (int, float)) or not 0 < float(ell) < math.inf:
            raise MixlawsError(
                f"mean document length of source {name!r} is {ell!r}; give a positive number of tokens",
                source=name,
            )
        lengths.append(float(ell))
    return lengths


def per_document_probabilities(
    weights: Mapping[str, float], doc_lengths: Mapping[str, float]
) -> dict[str, float]:
    """Convert token shares to per-document sampling probabilities.

    ``p_i = (w_i / l_i) / sum_j (w_j / l_j)`` where ``l_i`` is the mean number of
    tokens per document of source ``i``: drawing documents with probabilities
    ``p`` yields, in expectation, the token shares ``w``.
    """
    names = list(weights)
    lengths = _check_doc_lengths(names, doc_lengths)
    return dict(zip(names, _normalised([weights[n] / ell for n, ell in zip(names, lengths)])))


def token_shares_from_documents(
    probabilities: Mapping[str, float], doc_lengths: Mapping[str, float]
) -> dict[str, float]:
    """Invert :func:`per_document_probabilities`: ``w_i = p_i l_i / sum_j p_j l_j``."""
    names = list(probabilities)
    lengths = _check_doc_lengths(names, doc_lengths)
    return dict(zip(names, _normalised([probabilities[n] * ell for n, ell in zip(names, lengths)])))
