"""Importers: other tools' sweep files -> the canonical wide runs table.

Each importer returns a raw :class:`pandas.DataFrame` in the canonical layout
(``run, [name,] params, tokens|step, mix:<source>..., loss:<domain>...``) with the
values exactly as the inputs gave them, after checking it with
:func:`~mixlaws.runs.validate_runs` (so every defect is the usual
:class:`~mixlaws.errors.RunsTableError`; nothing is rescaled in the output).

* **olmix** — ``ratios.csv`` (``run, name, index, <source>...``) and ``metrics.csv``
  (``run, name, index, <metric>...``), one row per run, joined on ``run``; every
  non-key column of the ratios is a source, every one of the metrics a validation loss.
* **regmix** — a mixture CSV (``index, train_the_pile_<source>...``) and a loss CSV
  (``index, metric/the_pile_<domain>_val_loss...``) joined on ``index``; runs are named
  ``<prefix>-<index>`` (prefix: the mixture file's stem unless given).
* **long** — an experiment tracker's long export ``run, step|tokens, metric, value`` and
  a mixtures table ``run, <source>...`` (or ``run, mix:<source>...``, optionally
  ``params`` and ``name``); a metric ``m`` becomes the column ``loss:m`` (a metric
  already named ``loss:m`` keeps its name).  :func:`to_long` is the inverse.

Single-scale swarms (olmix, regmix) carry no model size or tokens: pass ``params`` and
``tokens`` (the same for every run).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import RunsTableError
from ._io import PathLike, read_frame, strip_columns
from ._table import LABEL_COLUMNS, validate_runs

__all__ = ["IMPORTERS", "import_olmix", "import_regmix", "import_long", "import_runs", "to_long"]

_OLMIX_KEYS = ("run", "name", "index")
_REGMIX_MIX = "train_the_pile_"
_REGMIX_LOSS = ("metric/the_pile_", "_val_loss")


def _read(path: PathLike) -> tuple[pd.DataFrame, str]:
    frame, name = read_frame(path, RunsTableError)
    return strip_columns(frame, name, RunsTableError), name


def _need(frame: pd.DataFrame, name: str, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RunsTableError(f"{name}: missing column(s) {', '.join(missing)} of {what}; found: "
                             f"{', '.join(map(str, frame.columns)) or 'none'}", path=name,
                             column=missing[0])


def _unique_key(frame: pd.DataFrame, name: str, key: str) -> None:
    dup = frame[key][frame[key].duplicated()]
    if len(dup):
        raise RunsTableError(f"{name}: {key} {dup.iloc[0]!r} appears in two rows; the file has "
                             f"one row per run: drop the duplicate", path=name, column=key)


def _scale(frame: pd.DataFrame, params: float | None, tokens: float | None, fmt: str,
           name: str) -> pd.DataFrame:
    if params is None or tokens is None:
        raise RunsTableError(f"{name}: {fmt} files record no model size or training tokens; "
                             "give them with --params N --tokens D", path=name)
    out = frame.copy()
    plain = lambda x: int(x) if float(x).is_integer() else float(x)  # noqa: E731  1e6 -> 1000000
    out.insert(1, "params", plain(params))
    out.insert(2, "tokens", plain(tokens))
    return out


def _join(left: pd.DataFrame, right: pd.DataFrame, key: str, names: tuple[str, str]
          ) -> pd.DataFrame:
    only_left = sorted(set(left[key]) - set(right[key]), key=str)
    only_right = sorted(set(right[key]) - set(left[key]), key=str)
    if only_left or only_right:
        side, ids = (names[1], only_left) if only_left else (names[0], only_right)
        raise RunsTableError(f"{side}: no row for {key} {ids[0]!r} ({len(ids)} unmatched); both "
                             f"files need one row per run, joined on '{key}'", path=side,
                             column=key)
    return left.merge(right, on=key, how="left", validate="one_to_one")


def _checked(frame: pd.DataFrame, name: str, nan_policy: str) -> pd.DataFrame:
    """The usual validation (errors only; the returned table keeps the input's values)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notes are for the table's readers, not the import
        validate_runs(frame, path=name, renormalize=True, nan_policy=nan_policy)
    return frame.reset_index(drop=True)


def import_olmix(ratios: PathLike, metrics: PathLike, *, params: float | None = None,
                 tokens: float | None = None, nan_policy: str = "raise") -> pd.DataFrame:
    """Olmix swarm files (``ratios.csv`` + ``metrics.csv``) -> canonical runs table."""
    r, rname = _read(ratios)
    m, mname = _read(metrics)
    _need(r, rname, ("run",), "an Olmix ratios file (run, name, index, <source>...)")
    _need(m, mname, ("run",), "an Olmix metrics file (run, name, index, <metric>...)")
    for frame, name in ((r, rname), (m, mname)):
        _unique_key(frame, name, "run")
    sources = [c for c in r.columns if c not in _OLMIX_KEYS]
    losses = [c for c in m.columns if c not in _OLMIX_KEYS]
    if not sources or not losses:
        raise RunsTableError(f"{rname if not sources else mname}: no "
                             f"{'source' if not sources else 'metric'} columns besides "
                             f"{', '.join(_OLMIX_KEYS)}", path=rname if not sources else mname)
    left = r[["run"] + (["name"] if "name" in r else []) + sources]
    left = left.rename(columns={s: f"mix:{s}" for s in sources})
    right = m[["run"] + losses].rename(columns={c: f"loss:{c}" for c in losses})
    out = _scale(_join(left, right, "run", (rname, mname)), params, tokens, "Olmix", rname)
    return _checked(_front(out), rname, nan_policy)


def import_regmix(mixtures: PathLike, losses: PathLike, *, params: float | None = None,
                  tokens: float | None = None, run_prefix: str | None = None,
                  nan_policy: str = "raise") -> pd.DataFrame:
    """RegMix files (mixture CSV + loss CSV, joined on ``index``) -> canonical runs table."""
    mix, xname = _read(mixtures)
    los, lname = _read(losses)
    _need(mix, xname, ("index",), f"a RegMix mixture file (index, {_REGMIX_MIX}<source>...)")
    _need(los, lname, ("index",), "a RegMix loss file (index, metric/the_pile_<domain>_val_loss...)")
    for frame, name in ((mix, xname), (los, lname)):
        _unique_key(frame, name, "index")
    head, tail = _REGMIX_LOSS
    sources = {c: "mix:" + c[len(_REGMIX_MIX):] for c in mix.columns if c.startswith(_REGMIX_MIX)}
    domains = {c: "loss:" + c[len(head):-len(tail)] for c in los.columns
               if c.startswith(head) and c.endswith(tail) and len(c) > len(head) + len(tail)}
    if not sources or not domains:
        name, pattern = (xname, f"{_REGMIX_MIX}<source>") if not sources else \
            (lname, f"{head}<domain>{tail}")
        raise RunsTableError(f"{name}: no {pattern} columns; is this a RegMix file?", path=name)
    left = mix[["index", *sources]].rename(columns=sources)
    right = los[["index", *domains]].rename(columns=domains)
    joined = _join(left, right, "index", (xname, lname))
    prefix = run_prefix if run_prefix is not None else os.path.splitext(os.path.basename(xname))[0]
    joined.insert(0, "run", [f"{prefix}-{i}" for i in joined["index"]])
    out = _scale(joined.drop(columns="index"), params, tokens, "RegMix", xname)
    return _checked(out, xname, nan_policy)


def import_long(long: PathLike, mixtures: PathLike, *, params: float | None = None,
                tokens: float | None = None, nan_policy: str = "raise") -> pd.DataFrame:
    """A tracker's long export (``run, step|tokens, metric, value``) + a mixtures table."""
    lg, gname = _read(long)
    mx, mname = _read(mixtures)
    progress = [c for c in ("tokens", "step") if c in lg.columns]
    _need(lg, gname, ["run", "metric", "value"] + ([] if progress else ["step (or tokens)"]),
          "a long export (run, step|tokens, metric, value)")
    _need(mx, mname, ("run",), "a mixtures table (run, <source>... or run, mix:<source>...)")
    _unique_key(mx, mname, "run")
    keys = ["run", *progress]
    dup = lg.duplicated(keys + ["metric"])
    if dup.any():
        row = lg[dup].iloc[0]
        raise RunsTableError(f"{gname}: run {row['run']!r} logs metric {row['metric']!r} twice at "
                             + ", ".join(f"{k}={row[k]}" for k in progress)
                             + "; keep one value per (run, progress, metric)", path=gname,
                             run=row["run"], column="metric")
    wide = lg.pivot(index=keys, columns="metric", values="value")[pd.unique(lg["metric"])]
    wide.columns = [c if str(c).startswith("loss:") else f"loss:{c}" for c in wide.columns]
    wide = wide.reset_index().fillna("")
    first = {r: i for i, r in enumerate(pd.unique(lg["run"]))}  # runs in the file's order,
    order = np.lexsort([pd.to_numeric(wide[progress[0]], errors="coerce").to_numpy(),  # numeric
                        wide["run"].map(first).to_numpy()])
    wide = wide.iloc[order]
    extra = [c for c in ("params", *LABEL_COLUMNS) if c in mx.columns]
    sources = [c for c in mx.columns if c != "run" and c not in extra]
    mix = mx[["run", *extra, *sources]].rename(
        columns={s: s if s.startswith("mix:") else f"mix:{s}" for s in sources})
    unknown = sorted(set(wide["run"]) - set(mix["run"]), key=str)
    if unknown:
        raise RunsTableError(f"{mname}: no mixture for run {unknown[0]!r} of {gname} "
                             f"({len(unknown)} run(s) without one); add a row per run", path=mname,
                             run=unknown[0], column="run")
    out = wide.merge(mix, on="run", how="left")
    if "params" not in out:
        if params is None:
            raise RunsTableError(f"{mname}: no params column; give the model size with "
                                 "--params N (or add a params column)", path=mname)
        out["params"] = params
    if tokens is not None:
        raise RunsTableError(f"{gname}: the long export has its own {progress[0]} column; "
                             "drop --tokens", path=gname)
    return _checked(_front(out), gname, nan_policy)


def to_long(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A canonical wide table -> (long export ``run, <progress>, metric, value``, mixtures).

    Missing loss cells are not written (a tracker logs nothing there).
    """
    progress = [c for c in ("tokens", "step") if c in frame.columns]
    losses = [c for c in frame.columns if str(c).startswith("loss:")]
    long = frame.melt(id_vars=["run", *progress], value_vars=losses, var_name="metric",
                      value_name="value")
    long = long[long["value"].astype(str).str.strip().ne("") & long["value"].notna()]
    extra = [c for c in ("params", *LABEL_COLUMNS) if c in frame.columns]
    mix = frame[["run", *extra, *[c for c in frame.columns if str(c).startswith("mix:")]]]
    return long.reset_index(drop=True), mix.drop_duplicates("run").reset_index(drop=True)


def _front(frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical column order: run, name, params, tokens, step, mix:..., loss:..."""
    cols = [str(c) for c in frame.columns]
    head = [c for c in ("run", *LABEL_COLUMNS, "params", "tokens", "step") if c in cols]
    mix = [c for c in cols if c.startswith("mix:")]
    loss = [c for c in cols if c.startswith("loss:")]
    rest = [c for c in cols if c not in head + mix + loss]
    return frame[head + rest + mix + loss]


IMPORTERS: dict[str, tuple[Callable[..., pd.DataFrame], tuple[str, ...]]] = {
    "olmix": (import_olmix, ("ratios.csv", "metrics.csv")),
    "regmix": (import_regmix, ("MIXTURES.csv", "LOSSES.csv")),
    "long": (import_long, ("LONG.csv", "MIXTURES.csv")),
}
"""Format name -> (importer, the files it takes in order)."""


def import_runs(fmt: str, files: Sequence[PathLike], **options: object) -> pd.DataFrame:
    """Dispatch to the importer of ``fmt`` (see :data:`IMPORTERS`)."""
    if fmt not in IMPORTERS:
        raise RunsTableError(f"unknown import format {fmt!r}; choose one of {', '.join(IMPORTERS)}")
    func, names = IMPORTERS[fmt]
    if len(files) != len(names):
        raise RunsTableError(f"import {fmt} takes {len(names)} files ({' '.join(names)}), "
                             f"got {len(files)}")
    return func(*files, **{k: v for k, v in options.items() if v is not None})
