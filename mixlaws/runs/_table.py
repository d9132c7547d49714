"""Read and validate the runs table and user-given mixtures.

This is the only module that sees raw user data; everything downstream trusts
the :class:`RunsTable` it returns.  The table has one row per (run, checkpoint)
with columns ``run``, ``params``, ``tokens`` (or ``step``), ``mix:<source>``
(proportions r_j, per row in [0, 1] with sum_j r_j = 1) and ``loss:<domain>``
(validation losses, finite and > 0).  Every defect raises a
:class:`~mixlaws.errors.MixlawsError` subclass naming the file, run, column and
row; every change made to the data is recorded in ``RunsTable.notes`` and
emitted once as a :class:`~mixlaws.errors.DataNote` warning.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from ._io import (
    FLOAT_NOISE,
    PathLike,
    cell_text,
    first_bad,
    numeric,
    prefixed,
    read_frame,
    renormalise,
    strip_columns,
)
from ..errors import DataNote, RunsTableError

__all__ = ["NAN_POLICIES", "LABEL_COLUMNS", "RunsTable", "as_runs", "read_runs", "validate_runs"]

_EXPECTED = "run, params, tokens (or step), mix:<source>..., loss:<domain>..."
NAN_POLICIES = ("raise", "omit")
"""What a missing loss cell does: raise an error, or omit the cell from the fits."""
LABEL_COLUMNS = ("name", "mixture")
"""Optional column naming each run's mixture (kept as ``name``; reports use it as the label)."""


@dataclass(frozen=True, eq=False)
class RunsTable:
    """A validated runs table.

    Attributes
    ----------
    data : DataFrame with columns exactly ``run`` (str), ``params``, ``tokens``,
        ``mix:<source>``... (rows sum to 1 to float64 precision), ``loss:<domain>``...
        (finite, > 0; NaN where missing with ``nan_policy="omit"``), all float64; an optional
        ``name`` (str) column; sorted by run then tokens, index reset.
        Warm-up checkpoints are kept.
    sources : source names, in the order of the file's ``mix:`` columns.
    domains : validation domains, in the order of the file's ``loss:`` columns.
    progress : ``"tokens"`` if the file had a tokens column, else ``"step"``
        (then the ``tokens`` column holds step values).
    path : file name used in messages (``"<table>"`` for in-memory frames).
    notes : visible notes about changes made to the input.
    nan_policy : how missing losses were read (``"omit"``: ``loss:`` cells may be NaN).

    An optional ``name`` column (from a ``name`` or ``mixture`` column of the file) labels
    each run's mixture.
    """

    data: pd.DataFrame
    sources: tuple[str, ...]
    domains: tuple[str, ...]
    progress: str
    path: str
    notes: tuple[str, ...] = ()
    nan_policy: str = "raise"
    renormalize: bool = False

    def content_hash(self) -> str:
        """SHA-256 of the validated table (columns and every value, floats by ``repr``).

        The fit artifact records it so that later commands can tell whether they read the
        table that was fitted.
        """
        h = hashlib.sha256()
        for column in self.data.columns:
            h.update(repr(column).encode())
            values = self.data[column].to_numpy()
            h.update(values.astype(str).tobytes() if values.dtype == object
                     else np.ascontiguousarray(values, dtype=np.float64).tobytes())
        return h.hexdigest()

    @property
    def mix_columns(self) -> list[str]:
        """Names of the mixture columns, ``mix:<source>`` in ``sources`` order."""
        return [f"mix:{s}" for s in self.sources]

    @property
    def loss_columns(self) -> list[str]:
        """Names of the loss columns, ``loss:<domain>`` in ``domains`` order."""
        return [f"loss:{d}" for d in self.domains]

    def runs(self) -> pd.DataFrame:
        """One row per run: ``run, params, mix:..., n_checkpoints, min_tokens, max_tokens``."""
        groups = self.data.groupby("run", sort=False)
        out = groups[["params", *self.mix_columns]].first()
        out["n_checkpoints"] = groups.size()
        out["min_tokens"] = groups["tokens"].min()
        out["max_tokens"] = groups["tokens"].max()
        return out.reset_index()

    def mixtures(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct mixtures and which one each run uses.

        Returns
        -------
        mixtures : (n, M) array, distinct mixtures in order of first appearance in :meth:`runs`.
        index : (n_runs,) int array; run ``k`` of :meth:`runs` trained on ``mixtures[index[k]]``.
        """
        mix = self.runs()[self.mix_columns].to_numpy(dtype=np.float64)
        unique, first, inverse = np.unique(mix, axis=0, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        return unique[order], rank[np.ravel(inverse)]

    def sizes(self) -> np.ndarray:
        """Sorted distinct model sizes (``params``)."""
        return np.unique(self.data["params"].to_numpy(dtype=np.float64))

    @property
    def is_single_scale(self) -> bool:
        """True when the table has one ``params`` value and one ``tokens`` value overall."""
        return bool(self.data["params"].nunique() == 1 and self.data["tokens"].nunique() == 1)


def _check_values(values: Mapping[str, np.ndarray], runs: np.ndarray, progress: str,
                  name: str, nan_policy: str = "raise") -> None:
    """Missing, non-finite and out-of-range cells raise, naming run, column and row.

    With ``nan_policy="omit"`` a missing loss cell is allowed (it is left out of the fits).
    """
    losses = [x for column, x in values.items() if column.startswith("loss:")]
    n_gaps = int(np.isnan(np.column_stack(losses)).any(axis=1).sum())
    omit = nan_policy == "omit"
    for column, x in values.items():
        if column.startswith("loss:"):
            rules = [(np.isnan(x) & (not omit),
                      f"loss is missing ({n_gaps} row(s) of the table lack a loss); fill the "
                      "gaps, drop those checkpoint rows, or pass --nan-policy omit to leave the "
                      "missing cells out of the fits"),
                     (~np.isfinite(x) & ~np.isnan(x), "loss is {v}; losses must be finite"),
                     (x <= 0, "loss is {v}; losses must be > 0 (nats/token)")]
        elif column.startswith("mix:"):
            rules = [(np.isnan(x), "proportion is missing; write 0 for an unused source"),
                     (~np.isfinite(x) | (x < 0) | (x > 1), "proportion {v} is outside [0, 1]")]
        else:
            unit = "number of parameters" if column == "params" else f"number of {progress}"
            rules = [(np.isnan(x), "value is missing"),
                     (~np.isfinite(x) | (x <= 0),
                      f"{column} is {{v}}; it must be a positive {unit}")]
        for mask, text in rules:
            i = first_bad(mask)
            if i is not None:
                raise RunsTableError(f"{name}: run '{runs[i]}', column '{column}', row {i + 1}: "
                                     + text.format(v=x[i]), path=name, run=runs[i], column=column,
                                     row=i + 1)


def _check_monotone(step: np.ndarray, tokens: np.ndarray, runs: np.ndarray, name: str) -> None:
    """Within a run, tokens must grow with step (a decrease means a column is wrong)."""
    frame = pd.DataFrame({"run": runs, "step": step, "tokens": tokens,
                          "row": np.arange(1, len(runs) + 1)}).dropna()
    frame = frame.sort_values(["run", "step"], kind="mergesort")
    same_run = frame["run"].to_numpy()[1:] == frame["run"].to_numpy()[:-1]
    bad = same_run & (np.diff(frame["step"].to_numpy()) > 0) \
        & (np.diff(frame["tokens"].to_numpy()) <= 0)
    if (i := first_bad(bad)) is not None:
        a, b = frame.iloc[i], frame.iloc[i + 1]
        raise RunsTableError(f"{name}: run '{a['run']}': step grows from {a['step']:g} (row "
                             f"{a['row']}) to {b['step']:g} (row {b['row']}) but tokens go from "
                             f"{a['tokens']:g} to {b['tokens']:g}; tokens must increase with "
                             "step: fix the tokens or step column", path=name, run=a["run"],
                             column="tokens", row=int(b["row"]))


def validate_runs(frame: pd.DataFrame, *, path: str = "<table>", renormalize: bool = False,
                  tolerance: float = 0.005, nan_policy: str = "raise") -> RunsTable:
    """Validate a raw runs table and return it in canonical form.

    Parameters
    ----------
    frame : raw table, one row per (run, checkpoint); cells may be strings or numbers.
    path : name of the source used in messages.
    renormalize : rescale mixtures whose sum s deviates from 1 by more than
        ``tolerance`` (r_j <- r_j / s) instead of raising.
    tolerance : rows with |s - 1| <= tolerance are always rescaled, with a note.
    nan_policy : ``"raise"`` (default): a missing loss cell is an error; ``"omit"``: the
        missing (checkpoint, domain) cells stay NaN in ``data`` and the estimators leave
        them out of the fits (not whole rows), with a note counting them per run and domain
        (lmfit's convention).  Rows with every loss missing are dropped.

    Returns
    -------
    RunsTable

    Raises
    ------
    RunsTableError
        Missing columns, non-numeric cells, missing/non-finite/non-positive losses,
        params or tokens <= 0, proportions outside [0, 1], mixture sums off by more
        than ``tolerance``, mixture or params varying within a run, or duplicated
        checkpoints with differing losses.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    if nan_policy not in NAN_POLICIES:
        raise RunsTableError(f"{path}: nan_policy must be one of {', '.join(NAN_POLICIES)}, not "
                             f"{nan_policy!r}", path=path)
    frame = strip_columns(frame, path, RunsTableError)
    columns = list(frame.columns)
    sources = prefixed(columns, "mix:", path, RunsTableError)
    domains = prefixed(columns, "loss:", path, RunsTableError)
    progress = "tokens" if "tokens" in columns else "step"
    missing = [c for c in ("run", "params") if c not in columns]
    missing += [] if progress in columns else ["tokens (or step)"]
    missing += [] if sources else ["mix:<source>"]
    missing += [] if domains else ["loss:<domain>"]
    if missing:
        lower = {c.lower() for c in columns}
        cased = {"run", "params"} & lower - set(columns)
        hint = "; column names are case-sensitive" if cased else ""
        raise RunsTableError(f"{path}: missing required column(s) {', '.join(missing)}; found: "
                             f"{', '.join(columns) or 'none'}; expected: {_EXPECTED}{hint}",
                             path=path, column=missing[0])
    unknown = [c for c in columns if ":" in c and not c.startswith(("mix:", "loss:"))]
    if unknown:
        raise RunsTableError(
            f"{path}: column {unknown[0]!r} has an unknown prefix {unknown[0].split(':')[0] + ':'!r}; "
            f"mixture columns are mix:<source> and loss columns loss:<domain> — rename or drop it",
            path=path, column=unknown[0])
    if len(frame) == 0:
        raise RunsTableError(f"{path}: the table has a header but no data rows", path=path)
    runs = cell_text(frame["run"])
    if (i := first_bad(runs == "")) is not None:
        raise RunsTableError(f"{path}: row {i + 1} has an empty 'run' cell; name every run",
                             path=path, column="run", row=i + 1)
    mix_cols = [f"mix:{s}" for s in sources]
    loss_cols = [f"loss:{d}" for d in domains]
    values = {c: numeric(frame[c], c, runs, path, RunsTableError, "run")
              for c in ("params", progress, *mix_cols, *loss_cols)}
    _check_values(values, runs, progress, path, nan_policy)
    if progress == "tokens" and "step" in columns:
        _check_monotone(numeric(frame["step"], "step", runs, path, RunsTableError, "run"),
                        values["tokens"], runs, path)

    table = pd.DataFrame({"run": runs.astype(str), **values}).rename(columns={progress: "tokens"})
    label = next((c for c in LABEL_COLUMNS if c in columns), None)
    if label is not None:
        table["name"] = cell_text(frame[label]).astype(str)
    table.insert(0, "_row", np.arange(1, len(table) + 1))
    groups = table.groupby("run", sort=False)
    varying = groups[["params", *mix_cols] + (["name"] if label else [])].nunique() > 1
    if varying.to_numpy().any():
        run, column = next((r, c) for r, row in varying.iterrows() for c in row.index if row[c])
        seen = [v if isinstance(v, str) else f"{v:g}"
                for v in pd.unique(table.loc[table["run"] == run, column])[:2]]
        raise RunsTableError(f"{path}: run '{run}' has different values in column '{column}' "
                             f"({seen[0]} and {seen[1]}); a run has a single {column} "
                             "value: fix the rows or give them different run names", path=path,
                             run=run, column=column)

    notes: list[str] = []
    if nan_policy == "omit":
        notes += _omitted(table, loss_cols)
        table = table[table[loss_cols].notna().any(axis=1).to_numpy()]
    dup = table.duplicated(["run", "tokens"], keep=False).to_numpy()
    if dup.any():
        counts = table[dup].groupby(["run", "tokens"], sort=False)[loss_cols].nunique() > 1
        if counts.to_numpy().any():
            (run, tokens), column = next((k, c) for k, row in counts.iterrows()
                                         for c in row.index if row[c])
            raise RunsTableError(f"{path}: run '{run}' has two rows at {progress}={tokens:g} with "
                                 f"different values in '{column}'; keep one checkpoint row",
                                 path=path, run=run, column=column, tokens=tokens)
        drop = table.duplicated(["run", "tokens"], keep="first")
        notes.append(f"dropped {int(drop.sum())} duplicated checkpoint row(s) identical to another "
                     f"(e.g. run '{table.loc[drop, 'run'].iloc[0]}')")
        table = table[~drop.to_numpy()]

    mix = table[mix_cols].to_numpy(dtype=np.float64)
    total = mix.sum(axis=1)
    deviation = np.abs(total - 1.0)
    rows, row_runs = table["_row"].to_numpy(), table["run"].to_numpy()
    if (i := first_bad(total == 0)) is not None:
        raise RunsTableError(f"{path}: run '{row_runs[i]}', row {rows[i]}: every proportion is 0; "
                             "fix the mixture", path=path, run=row_runs[i], row=int(rows[i]))
    far = deviation > tolerance
    if far.any() and not renormalize:
        i = int(np.argmax(far))
        raise RunsTableError(f"{path}: the mixture of run '{row_runs[i]}' (row {rows[i]}) sums to "
                             f"{total[i]:.6g}, more than {tolerance:g} away from 1; pass "
                             "--renormalize to rescale it, or fix the row", path=path,
                             run=row_runs[i], row=int(rows[i]), total=float(total[i]))
    near = (deviation > FLOAT_NOISE) & ~far
    for mask, why in ((near, f"summed to within {tolerance:g} of 1 (rounding)"),
                      (far, f"summed to more than {tolerance:g} away from 1 (--renormalize)")):
        if mask.any():
            n_runs = len(set(row_runs[mask]))
            notes.append(f"rescaled the mixture of {int(mask.sum())} row(s) in {n_runs} run(s) "
                         f"whose proportions {why}; max deviation {deviation[mask].max():.4g}"
                         + (f" (run '{row_runs[mask][0]}')" if n_runs == 1 else ""))
    table[mix_cols] = renormalise(mix)

    zero = [s for s, c in zip(sources, mix_cols) if (table[c] == 0).all()]
    if zero:
        notes.append(f"source(s) {', '.join(zero)} have proportion 0 in every run; their effect "
                     "cannot be estimated (kept in the table)")
    data = (table.drop(columns="_row").sort_values(["run", "tokens"], kind="mergesort")
            .reset_index(drop=True))
    for note in notes:
        warnings.warn(f"{path}: {note}", DataNote, stacklevel=2)
    return RunsTable(data=data, sources=sources, domains=domains, progress=progress, path=path,
                     notes=tuple(notes), nan_policy=nan_policy, renormalize=renormalize)


def _omitted(table: pd.DataFrame, loss_cols: list[str]) -> list[str]:
    """The note of ``nan_policy="omit"``: how many cells of which runs and domains are left out."""
    gaps = table[loss_cols].isna()
    n = int(gaps.to_numpy().sum())
    if not n:
        return []
    per_run = gaps.groupby(table["run"].to_numpy(), sort=False).sum().sum(axis=1)
    per_run = per_run[per_run > 0]
    domains = [c[len("loss:"):] for c in loss_cols if gaps[c].any()]
    runs = ", ".join(f"'{r}' ({int(k)})" for r, k in per_run.items())
    empty = int(gaps.all(axis=1).sum())
    return [f"omitted {n} missing loss cell(s) (--nan-policy omit) in {len(per_run)} run(s): "
            f"{runs}; domain(s): {', '.join(domains)}"
            + (f"; {empty} row(s) with every loss missing dropped" if empty else "")]


def read_runs(path: PathLike, *, renormalize: bool = False, tolerance: float = 0.005,
              nan_policy: str = "raise") -> RunsTable:
    """Read a runs table from CSV (``,``/``;``/tab) or Parquet and validate it.

    See :func:`validate_runs` for the checks and ``nan_policy``; errors are
    :class:`RunsTableError`.
    """
    frame, name = read_frame(path, RunsTableError)
    return validate_runs(frame, path=name, renormalize=renormalize, tolerance=tolerance,
                         nan_policy=nan_policy)


def as_runs(runs: "RunsTable | pd.DataFrame | PathLike", *, renormalize: bool = False,
            tolerance: float = 0.005, nan_policy: str = "raise") -> RunsTable:
    """A :class:`RunsTable` from a runs table, a DataFrame (validated) or a file path (read).

    What every ``fit`` accepts, so that ``NestedMixingLaw().fit("runs.csv")`` works.
    """
    if isinstance(runs, RunsTable):
        return runs
    if isinstance(runs, pd.DataFrame):
        return validate_runs(runs, renormalize=renormalize, tolerance=tolerance,
                             nan_policy=nan_policy)
    return read_runs(runs, renormalize=renormalize, tolerance=tolerance, nan_policy=nan_policy)
