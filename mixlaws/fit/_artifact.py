"""Fit artifacts: lossless JSON round trip of a fitted estimator of any law family.

A nested fit is written as below (no ``family`` key, the original format); the
joint families write their own dict (``to_dict``/``from_dict`` of the estimator)
with a ``family`` key naming a :data:`~mixlaws.fit.FAMILIES` entry, on which
:func:`model_from_dict` dispatches.

Floats are written with Python's shortest round-tripping ``repr`` (what
:mod:`json` does), so every float64 comes back bit for bit.  JSON has no
infinities or NaN: those are written as the strings ``"inf"``, ``"-inf"`` and
``"nan"``.  An artifact names its kind and format version; reading another
kind or version is an :class:`~mixlaws.errors.ArtifactError` that says what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import ArtifactError
from ._nested import NestedMixingLaw
from ._stages import StageFit

__all__ = ["model_to_dict", "model_from_dict", "save_model", "load_model", "content_sha256"]

FIT_KIND = "mixlaws.fit"
FORMAT_VERSION = 1
_SPECIAL = {"inf": np.inf, "-inf": -np.inf, "nan": np.nan}


def encode(x: Any) -> Any:
    """Arrays and numpy scalars to JSON-ready lists and floats; non-finite floats to strings."""
    if isinstance(x, np.ndarray):
        return [encode(v) for v in x.tolist()] if x.ndim else encode(x.item())
    if isinstance(x, (list, tuple)):
        return [encode(v) for v in x]
    if isinstance(x, dict):
        return {str(k): encode(v) for k, v in x.items()}
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if np.isfinite(x):
            return x
        return "nan" if np.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def decode(x: Any, dtype: Any = float) -> np.ndarray:
    """Inverse of :func:`encode` for numeric arrays."""
    def fix(v: Any) -> Any:
        if isinstance(v, list):
            return [fix(u) for u in v]
        if isinstance(v, str):
            return _SPECIAL[v]
        return v
    return np.asarray(fix(x), dtype=dtype)


def stage_to_dict(s: StageFit) -> dict[str, Any]:
    """JSON-ready dict of a :class:`StageFit`."""
    return {"stage": s.stage, "law": s.law, "labels": list(s.labels),
            "params": encode(s.params), "stderr": encode(s.stderr),
            "correlations": encode(s.correlations), "rmse": encode(s.rmse),
            "max_abs_residual": encode(s.max_abs_residual), "n_data": s.n_data,
            "n_params": s.n_params, "converged": encode(s.converged),
            "at_bound": encode(s.at_bound), "warnings": list(s.warnings)}


def stage_from_dict(d: dict[str, Any]) -> StageFit:
    """Inverse of :func:`stage_to_dict`."""
    return StageFit(
        stage=d["stage"], law=d["law"], labels=tuple(d["labels"]),
        params={k: decode(v) for k, v in d["params"].items()},
        stderr={k: decode(v) for k, v in d["stderr"].items()},
        correlations={k: float(decode(v)) for k, v in d["correlations"].items()},
        rmse=float(decode(d["rmse"])), max_abs_residual=float(decode(d["max_abs_residual"])),
        n_data=int(d["n_data"]), n_params=int(d["n_params"]),
        converged=decode(d["converged"], bool), at_bound=decode(d["at_bound"], bool),
        warnings=tuple(d["warnings"]))


def model_to_dict(model: Any) -> dict[str, Any]:
    """JSON-ready dict of a fitted model (settings, run summary, fits) of any family."""
    if not isinstance(model, NestedMixingLaw):
        return model.to_dict()
    model._check_fitted()
    d = {
        "kind": FIT_KIND, "format_version": FORMAT_VERSION, "mixlaws_version": __version__,
        "settings": model.get_params(), "source_path": model.source_path_,
        "progress": model.progress_, "sources": list(model.sources_),
        "domains": list(model.domains_), "weights": encode(model.weights_),
        "runs": encode(model.runs_), "mixtures": encode(model.mixtures_),
        "mixture_labels": list(model.mixture_labels_),
        "step": None if model.step_ is None else stage_to_dict(model.step_),
        "step_runs": encode(model.step_runs_), "notes": list(model.notes_),
        "reading": dict(getattr(model, "reading_", {})),
    }
    d["integrity"] = {"sha256": content_sha256(d)}
    return d


_UNSEALED = ("integrity", "posterior")  # `mixlaws sample` adds "posterior" after the fit


def content_sha256(d: dict[str, Any]) -> str:
    """SHA-256 of an artifact's canonical JSON (sorted keys), without ``integrity``/``posterior``.

    :func:`model_to_dict` stores it under ``"integrity"`` and :func:`model_from_dict` checks
    it, so a hand-edited artifact (a changed mixture, a NaN) is an :class:`ArtifactError`.
    """
    body = {k: v for k, v in d.items() if k not in _UNSEALED}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_integrity(d: dict[str, Any], path: str) -> None:
    """Artifacts that carry a content hash must match it (older ones without are accepted)."""
    seal = d.get("integrity")
    if seal is None:
        return
    try:
        same = isinstance(seal, dict) and seal.get("sha256") == content_sha256(d)
    except (TypeError, ValueError):  # NaN or a non-JSON value where an array was
        same = False
    if not same:
        raise ArtifactError(f"{path}: content hash mismatch: the fit artifact was changed after "
                            "`mixlaws fit` wrote it (hand-edited or damaged); refit with "
                            "`mixlaws fit RUNS.csv -o FIT.json` instead of editing it", path=path)


def model_from_dict(d: Any, *, path: str = "<dict>") -> Any:
    """Rebuild a fitted model from :func:`model_to_dict` output."""
    if not isinstance(d, dict) or d.get("kind") != FIT_KIND:
        kind = d.get("kind") if isinstance(d, dict) else type(d).__name__
        raise ArtifactError(f"{path} is not a mixlaws fit artifact (kind={kind!r}); "
                            f"create one with `mixlaws fit RUNS.csv -o FIT.json`", path=path)
    if d.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} was written by mixlaws {d.get('mixlaws_version')} in artifact format "
            f"{d.get('format_version')}; this mixlaws ({__version__}) reads format "
            f"{FORMAT_VERSION}: refit with `mixlaws fit`", path=path)
    _check_integrity(d, path)
    if d.get("family") is not None:
        from ._families import FAMILIES

        fam = FAMILIES.get(d["family"])
        if fam is None or not hasattr(fam.estimator, "from_dict"):
            raise ArtifactError(f"{path} holds a fit of law family {d['family']!r}, which this "
                                f"mixlaws ({__version__}) cannot read; known: "
                                f"{', '.join(FAMILIES)}", path=path)
        return fam.estimator.from_dict(d, path=path)
    try:
        model = NestedMixingLaw(**d["settings"])
        model.sources_, model.domains_ = tuple(d["sources"]), tuple(d["domains"])
        model.weights_ = None if d["weights"] is None else decode(d["weights"])
        model.progress_, model.source_path_ = d["progress"], d["source_path"]
        r = d["runs"]
        nd = len(model.domains_)
        model.runs_ = {
            "run": list(r["run"]), "params": decode(r["params"]),
            "mixture": decode(r["mixture"], int), "n_checkpoints": decode(r["n_checkpoints"], int),
            "last_tokens": decode(r["last_tokens"]),
            "last_losses": decode(r["last_losses"]).reshape(len(r["run"]), nd),
        }
        model.mixtures_ = decode(d["mixtures"]).reshape(-1, len(model.sources_))
        model.mixture_labels_ = tuple(d["mixture_labels"])
        model.step_ = None if d["step"] is None else stage_from_dict(d["step"])
        model.step_runs_ = decode(d["step_runs"], int)
        model.notes_ = tuple(d["notes"])
        model.reading_ = dict(d.get("reading") or {})
        model._targets = {}
        _check_shapes(model)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ArtifactError(f"{path} is a damaged fit artifact ({type(exc).__name__}: {exc}); "
                            f"refit with `mixlaws fit`", path=path) from None
    return model


def _check_shapes(model: NestedMixingLaw) -> None:
    """Indices in range and finite mixtures (a damaged artifact fails here, not later)."""
    n_runs, n_mix = len(model.runs_["run"]), len(model.mixtures_)
    idx = model.runs_["mixture"]
    if idx.shape != (n_runs,) or (idx.size and (idx.min() < 0 or idx.max() >= n_mix)):
        raise IndexError(f"runs.mixture indices must be in [0, {n_mix}) for {n_runs} runs")
    steps = model.step_runs_
    if steps.size and (steps.min() < 0 or steps.max() >= n_runs):
        raise IndexError(f"step_runs indices must be in [0, {n_runs})")
    if not np.isfinite(model.mixtures_).all() or len(model.mixture_labels_) != n_mix:
        raise ValueError("mixtures must be finite, one label each")


def save_model(model: Any, path: str | os.PathLike) -> None:
    """Write the fit artifact as JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(model_to_dict(model), f, indent=1, allow_nan=False)
        f.write("\n")


def load_model(path: str | os.PathLike) -> Any:
    """Read a fit artifact written by :func:`save_model`."""
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f, parse_constant=_no_constant)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such fit artifact", path=str(path)) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a bare NaN
        raise ArtifactError(f"{path} is not valid JSON ({exc}); is it a fit artifact?",
                            path=str(path)) from None
    return model_from_dict(d, path=str(path))


def _no_constant(name: str) -> float:
    """mixlaws writes non-finite floats as strings: a bare NaN/Infinity is a hand edit."""
    raise ValueError(f"bare {name} (artifacts write non-finite numbers as strings)")
