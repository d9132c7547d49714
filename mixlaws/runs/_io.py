"""File reading, cell parsing and user-given mixtures for :mod:`mixlaws.runs` (private).

CSV delimiter detection, Parquet, column-name cleaning, numeric conversion
with row-accurate error messages and simplex rescaling (errors are raised as
the class the caller passes), plus the mixture and validation-weight readers
that :mod:`mixlaws.runs` re-exports: :func:`parse_mixture`,
:func:`mixture_from_mapping`, :func:`read_mixtures`, :func:`read_val_weights`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from pathlib import Path
from typing import Mapping, Sequence, Union

import numpy as np
import pandas as pd

from ..errors import DataNote, MixlawsError, MixtureError

__all__ = ["as_mixtures", "parse_mixture", "read_mixtures", "mixture_from_mapping",
           "read_val_weights"]

PathLike = Union[str, "os.PathLike[str]"]
_NA = frozenset({"", "na", "nan", "n/a", "null", "none"})
_DELIMITERS = (",", ";", "\t")
_MIX_SUM_TOL = 1e-6  # for mixtures typed by the user (parse_mixture, mappings)
FLOAT_NOISE = 1e-9  # sums closer to 1 than this are float rounding, not a note


def read_frame(path: PathLike, error: type[MixlawsError]) -> tuple[pd.DataFrame, str]:
    """Read a CSV (delimiter ``,``, ``;`` or tab, detected from the header) or Parquet file."""
    name, file = os.fspath(path), Path(path)
    if not file.exists():
        raise error(f"{name}: file not found; check the path", path=name)
    if file.is_dir():
        raise error(f"{name}: is a directory; give a CSV or Parquet file", path=name)
    if file.suffix.lower() in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(file)
        except Exception as exc:  # pyarrow raises many types
            raise error(f"{name}: cannot read as Parquet ({type(exc).__name__}: {exc}); "
                        "rewrite the file or give a CSV", path=name) from exc
        if frame.shape[1] == 0:
            raise error(f"{name}: the Parquet file has no columns", path=name)
        return frame, name
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{name}: not UTF-8 text; save the table as UTF-8 CSV or as Parquet (.parquet)",
                    path=name) from exc
    header = next((line for line in text.splitlines() if line.strip()), None)
    if header is None:
        raise error(f"{name}: the file is empty; expected a header row and data rows", path=name)
    counts = {d: header.count(d) for d in _DELIMITERS}
    sep = max(_DELIMITERS, key=lambda d: counts[d])
    if counts[sep] == 0:
        raise error(f"{name}: the header parses into a single column ({header[:60]!r}); "
                    "wrong delimiter? separate columns with ',', ';' or a tab", path=name)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            na_filter=False, skipinitialspace=True)
    except pd.errors.ParserError as exc:
        first = str(exc).strip().splitlines()[-1]
        raise error(f"{name}: cannot parse as {sep!r}-separated CSV ({first}); "
                    "check that every row has as many fields as the header", path=name) from exc
    header_names = next(csv.reader([header], delimiter=sep, skipinitialspace=True))
    if len(header_names) == frame.shape[1]:  # undo pandas' renaming of duplicates to "x.1"
        frame.columns = header_names
    return frame, name


def strip_columns(frame: pd.DataFrame, name: str, error: type[MixlawsError]) -> pd.DataFrame:
    """Strip column names (``" mix: web "`` -> ``"mix:web"``); duplicated names raise."""
    columns = [str(c).strip() for c in frame.columns]
    for prefix in ("mix:", "loss:"):
        columns = [prefix + c[len(prefix):].strip() if c.startswith(prefix) else c for c in columns]
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise error(f"{name}: duplicated column(s) {', '.join(dup)}; keep one of each", path=name,
                    column=dup[0])
    frame = frame.copy()
    frame.columns = columns
    return frame


def prefixed(columns: Sequence[str], prefix: str, name: str,
              error: type[MixlawsError]) -> tuple[str, ...]:
    """Names after ``prefix`` in column order (columns already went through strip_columns)."""
    out = tuple(c[len(prefix):] for c in columns if c.startswith(prefix))
    if "" in out:
        raise error(f"{name}: column '{prefix}' has no name; write {prefix}<name>", path=name,
                    column=prefix)
    return out


def cell_text(column: pd.Series) -> np.ndarray:
    """Cells as stripped strings (object array); None/NaN become ``""``."""
    return np.array(["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip()
                     for v in column.astype(object)], dtype=object)


def numeric(column: pd.Series, header: str, labels: np.ndarray, name: str,
             error: type[MixlawsError], kind: str) -> np.ndarray:
    """Float64 values of a column; missing cells become NaN, unparsable cells raise."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    text = pd.Series(cell_text(column), dtype=object)
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = text.str.lower().isin(_NA).to_numpy()
    bad = np.flatnonzero(np.isnan(values) & ~missing)
    if bad.size:
        i = int(bad[0])
        hint = "; use '.' as decimal separator" if "," in text[i] else ""
        raise error(f"{name}: non-numeric value {text[i]!r} in column '{header}' ({kind} "
                    f"'{labels[i]}', row {i + 1}); write a plain number{hint}", path=name,
                    run=labels[i], column=header, row=i + 1)
    return values


def first_bad(mask: np.ndarray) -> int | None:
    """Index of the first True in ``mask``, or None."""
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def renormalise(mix: np.ndarray) -> np.ndarray:
    """Project rows onto the simplex by rescaling: r_j <- r_j / sum_k r_k."""
    return mix / mix.sum(axis=-1, keepdims=True)


def mixture_from_mapping(mapping: Mapping[str, float], sources: Sequence[str], *,
                         what: str) -> np.ndarray:
    """Turn ``{source: proportion}`` into an (M,) array in ``sources`` order.

    Sources not named get 0.  Proportions must be numbers in [0, 1] with
    |sum_j r_j - 1| <= 1e-6; the result is rescaled r_j / sum_k r_k (a change
    below 1e-6, never a silent renormalisation of a wrong mixture).

    Raises
    ------
    MixtureError
        Unknown source (the message lists the known ones), non-numeric or
        out-of-range proportion, or a sum away from 1. ``what`` names the input.
    """
    sources = tuple(sources)
    if not isinstance(mapping, Mapping) or not mapping:
        raise MixtureError(f"{what}: expected source=proportion pairs, got {mapping!r}", what=what)
    known = ", ".join(sources)
    out = np.zeros(len(sources), dtype=np.float64)
    for source, value in mapping.items():
        if source not in sources:
            raise MixtureError(f"{what}: unknown source '{source}'; known sources: {known}",
                               what=what, source=source)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise MixtureError(f"{what}: proportion of '{source}' is {value!r}, not a number",
                               what=what, source=source)
        if not 0.0 <= float(value) <= 1.0:
            raise MixtureError(f"{what}: proportion of '{source}' is {value}, outside [0, 1]",
                               what=what, source=source)
        out[sources.index(source)] = float(value)
    total = float(out.sum())
    if abs(total - 1.0) > _MIX_SUM_TOL:
        raise MixtureError(f"{what}: proportions sum to {total:.10g}, not 1; fix them so they "
                           "sum to 1 (mixtures are not rescaled silently)", what=what, total=total)
    return renormalise(out)


def parse_mixture(text: str, sources: Sequence[str]) -> np.ndarray:
    """Parse ``"a=0.3,b=0.7"`` into an (M,) array in ``sources`` order (missing sources are 0).

    Raises :class:`MixtureError` for malformed items, duplicates, unknown sources,
    values outside [0, 1] or a sum away from 1 by more than 1e-6.
    """
    what = f"mixture {text!r}"
    mapping: dict[str, float] = {}
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            continue
        source, eq, value = item.rpartition("=")
        source, value = source.strip(), value.strip()
        if not eq or not source:
            raise MixtureError(f"{what}: item {item!r} is not source=proportion", what=what)
        if source in mapping:
            raise MixtureError(f"{what}: source '{source}' is given twice", what=what,
                               source=source)
        try:
            mapping[source] = float(value)
        except ValueError:
            raise MixtureError(f"{what}: proportion {value!r} of '{source}' is not a number",
                               what=what, source=source) from None
        if not math.isfinite(mapping[source]):
            raise MixtureError(f"{what}: proportion of '{source}' is {value}", what=what,
                               source=source)
    return mixture_from_mapping(mapping, sources, what=what)


def read_mixtures(path: PathLike, sources: Sequence[str], *, tolerance: float = 0.005,
                  renormalize: bool = False) -> tuple[np.ndarray, list[str]]:
    """Read candidate mixtures from a CSV/Parquet file with ``mix:<source>`` columns.

    Other columns are ignored (a runs table works).  Each distinct mixture is
    returned once, in order of first appearance; labels come from a ``run`` or
    ``name`` column, else ``mixture-<i>`` (1-based).  Rows whose sum s has
    |s - 1| <= ``tolerance`` (or any s > 0 with ``renormalize``) are rescaled
    r_j <- r_j / s with a :class:`DataNote`.

    Returns
    -------
    mixtures : (n, M) float64 array in ``sources`` order.
    labels : n labels.
    """
    sources = tuple(sources)
    frame, name = read_frame(path, MixtureError)
    frame = strip_columns(frame, name, MixtureError)
    found = prefixed(list(frame.columns), "mix:", name, MixtureError)
    missing = [s for s in sources if s not in found]
    extra = [s for s in found if s not in sources]
    if missing or extra:
        problems = ([f"missing mix: column(s) for {', '.join(missing)}"] if missing else []) \
            + ([f"unknown source(s) {', '.join(extra)}"] if extra else [])
        problem = "; ".join(problems)
        raise MixtureError(f"{name}: {problem}; expected exactly the columns "
                           f"{', '.join('mix:' + s for s in sources)}", path=name)
    if len(frame) == 0:
        raise MixtureError(f"{name}: the file has a header but no mixtures", path=name)
    key = "run" if "run" in frame.columns else "name" if "name" in frame.columns else None
    labels = cell_text(frame[key]) if key else np.full(len(frame), "", dtype=object)
    shown = np.where(labels == "", [f"row {i + 1}" for i in range(len(frame))], labels)
    mix = np.column_stack([numeric(frame[f"mix:{s}"], f"mix:{s}", shown, name, MixtureError,
                                    "mixture") for s in sources])
    for j, source in enumerate(sources):
        if (i := first_bad(~(mix[:, j] >= 0) | ~(mix[:, j] <= 1))) is not None:
            value = "missing" if np.isnan(mix[i, j]) else f"{mix[i, j]:g}"
            raise MixtureError(f"{name}: mixture '{shown[i]}' (row {i + 1}): proportion of "
                               f"'{source}' is {value}; it must be in [0, 1]", path=name,
                               row=i + 1, source=source)
    total = mix.sum(axis=1)
    bad = (total == 0) | ((np.abs(total - 1) > tolerance) & (not renormalize))
    if (i := first_bad(bad)) is not None:
        raise MixtureError(f"{name}: mixture '{shown[i]}' (row {i + 1}) sums to {total[i]:.6g}; "
                           "fix the row (or pass --renormalize to rescale it)", path=name,
                           row=i + 1, total=float(total[i]))
    rescaled = int((np.abs(total - 1) > FLOAT_NOISE).sum())
    if rescaled:
        warnings.warn(f"{name}: rescaled {rescaled} mixture row(s) to sum to 1 (max deviation "
                      f"{np.abs(total - 1).max():.4g})", DataNote, stacklevel=2)
    seen: dict[tuple[float, ...], str] = {}
    for i, row in enumerate(renormalise(mix)):
        seen.setdefault(tuple(row), str(labels[i]))
    out_labels = [label or f"mixture-{k + 1}" for k, label in enumerate(seen.values())]
    if len(set(out_labels)) < len(out_labels):
        dup = next(x for x in out_labels if out_labels.count(x) > 1)
        raise MixtureError(f"{name}: label '{dup}' names two different mixtures; make the "
                           f"'{key}' column unique", path=name, label=dup)
    return np.array(list(seen), dtype=np.float64).reshape(-1, len(sources)), out_labels


def read_val_weights(path: PathLike, domains: Sequence[str]) -> np.ndarray:
    """Read validation-domain weights w from a JSON object ``{domain: weight}``.

    Weights must be numbers >= 0, not all 0; they are normalised,
    w_i <- w_i / sum_k w_k, over the named domains.  Table domains the file does
    not name get weight 0 (with a :class:`DataNote`).

    Returns
    -------
    (n_domains,) float64 array in ``domains`` order, summing to 1.

    Raises
    ------
    MixtureError
        Missing file, invalid JSON, a non-object, a bad weight, or a domain
        absent from the table (the message lists the table's domains).
    """
    domains, name = tuple(domains), os.fspath(path)
    file = Path(path)
    if not file.is_file():
        raise MixtureError(f"{name}: weights file not found; check the path", path=name)
    try:
        mapping = json.loads(file.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MixtureError(f"{name}: not valid JSON ({exc}); write an object "
                           '{"<domain>": weight, ...}', path=name) from exc
    if not isinstance(mapping, dict) or not mapping:
        raise MixtureError(f"{name}: expected a non-empty JSON object "
                           '{"<domain>": weight, ...}', path=name)
    weights = np.zeros(len(domains), dtype=np.float64)
    for domain, value in mapping.items():
        if domain not in domains:
            raise MixtureError(f"{name}: domain '{domain}' is not a loss: column of the runs "
                               f"table; table domains: {', '.join(domains)}", path=name,
                               domain=domain)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise MixtureError(f"{name}: weight of '{domain}' is {value!r}; weights must be "
                               "finite numbers >= 0", path=name, domain=domain)
        weights[domains.index(domain)] = float(value)
    if weights.sum() <= 0:
        raise MixtureError(f"{name}: all weights are 0; give at least one positive weight",
                           path=name)
    unnamed = [d for d in domains if d not in mapping]
    if unnamed:
        warnings.warn(f"{name}: {len(unnamed)} table domain(s) not in the weights file get "
                      f"weight 0: {', '.join(unnamed)}", DataNote, stacklevel=2)
    return weights / weights.sum()


def as_mixtures(mixtures: object, sources: Sequence[str]) -> tuple[np.ndarray, bool]:
    """User mixtures as an ``(n, M)`` array in ``sources`` order, and whether one was given.

    Accepts a mapping ``{source: share}`` or a string ``"a=0.3,b=0.7"`` (one mixture; sources
    not named are 0), an ``(M,)`` or ``(n, M)`` array, or a DataFrame with ``mix:<source>`` or
    ``<source>`` columns.  Every row must lie on the simplex (to 1e-6): nothing is rescaled
    silently.
    """
    sources = tuple(sources)
    if isinstance(mixtures, str):
        return parse_mixture(mixtures, sources)[None], True
    if isinstance(mixtures, Mapping):
        return mixture_from_mapping(mixtures, sources, what="mixture")[None], True
    if isinstance(mixtures, pd.DataFrame):
        cols = [f"mix:{s}" for s in sources]
        if not set(cols) <= set(mixtures.columns):
            cols = list(sources)
        missing = [c for c in cols if c not in mixtures.columns]
        if missing:
            raise MixtureError(f"mixtures table: no column for source(s) {', '.join(missing)}; "
                               f"name columns mix:<source> or <source> for {', '.join(sources)}")
        rows = [mixture_from_mapping(dict(zip(sources, map(float, row))), sources,
                                     what=f"mixtures table row {i}")
                for i, row in enumerate(mixtures[cols].to_numpy(float))]
        return np.array(rows).reshape(-1, len(sources)), False
    arr = np.asarray(mixtures, dtype=float)
    one = arr.ndim == 1
    arr = np.atleast_2d(arr)
    if arr.ndim != 2 or arr.shape[1] != len(sources):
        raise MixtureError(f"mixtures: expected shape (n, {len(sources)}) for sources "
                           f"{', '.join(sources)}, got {np.shape(mixtures)}")
    rows = [mixture_from_mapping(dict(zip(sources, row)), sources, what=f"mixture {i}")
            for i, row in enumerate(arr)]
    return np.array(rows), one
