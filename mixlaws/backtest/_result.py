"""The outcome of a backtest: :class:`BacktestResult` (tables, discrepancy models, figure, JSON).

Built from the long predictions table and one status record per (family, fold part); the
summary table, the per-family :class:`~mixlaws.backtest.Discrepancy` and the leave-one-fold-out
coverage are derived from them deterministically, so a result read back with
:meth:`BacktestResult.from_dict` is identical to the one written.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ArtifactError, MixlawsError
from ._discrepancy import PRIOR_B, Discrepancy, distance
from ._folds import FOLDS
from ._score import PREDICTION_COLUMNS

__all__ = ["BacktestResult", "TABLE_COLUMNS"]

_KIND = "mixlaws.backtest"
_VERSION = 3
"""3: a discrepancy that does not carry its bias's sign has no bias term (``prior_b`` 0);
2: it had one, made symmetric about 0; 1: it carried the sign.  Older results are read with
the priors they were written with (version 2: ``prior_b=0.05``; version 1:
``carry_bias=True``), so that a saved fit predicts as it did."""
_STATUS_COLUMNS = ("family", "fold", "part", "status", "reason", "seconds", "n_warnings",
                   "warning")
TABLE_COLUMNS = ("family", "fold", "n", "mean_abs_rel_error", "max_abs_rel_error", "bias",
                 "rmse_log", "dN", "dD", "u", "coverage", "seconds", "status")
"""Columns of :attr:`BacktestResult.table`: per (family, fold) the number of targets, mean and
max ``|rel_error|``, bias (mean signed ``rel_error``), RMSE of ``log_ratio``, mean distances,
leave-one-fold-out coverage of the discrepancy interval at ``level``, fit time and status."""


def _frame(records: Sequence[Mapping[str, Any]] | pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    df = pd.DataFrame(records, columns=list(columns))
    return df.reset_index(drop=True)


class BacktestResult:
    """Backtest errors of law families, with the discrepancy models they calibrate.

    Attributes
    ----------
    predictions : long DataFrame, one row per (family, fold part, target):
        ``family, fold, part, run, params, tokens, observed, predicted, rel_error, log_ratio,
        dN, dD`` (see :func:`mixlaws.backtest.extrapolation_distance`).
    status : one row per (family, fold part): ``status`` ``"ok"``/``"failed"``/``"skipped"``,
        the reason, fit seconds and the warnings the fits raised.
    table : DataFrame of :data:`TABLE_COLUMNS`, one row per (family, fold).
    settings : the backtest's settings (families, folds, truncation, seed, estimator settings).
    level : level of the intervals whose coverage :attr:`table` reports.
    notes : what the backtest did that a reader should know.
    """

    def __init__(self, predictions: pd.DataFrame, status: pd.DataFrame, *,
                 settings: Mapping[str, Any], level: float = 0.9,
                 priors: Mapping[str, float] | None = None, notes: Sequence[str] = ()) -> None:
        self.predictions = _frame(predictions, PREDICTION_COLUMNS).astype(_PRED_TYPES)
        self.status = _frame(status, _STATUS_COLUMNS)
        for c in ("reason", "warning"):
            col = self.status[c].astype(object)
            self.status[c] = col.where(col.notna(), None)
        self.settings = dict(settings)
        self.level = float(level)
        self.priors = dict(priors or {})
        self.notes = tuple(notes)
        self._cache: dict[tuple[str, tuple[str, ...]], Discrepancy] = {}
        self.predictions["covered"] = self._lofo_covered()
        self.table = self._table()

    @property
    def families(self) -> tuple[str, ...]:
        """Families in the order they were backtested."""
        return tuple(self.settings.get("families", pd.unique(self.status["family"])))

    # -- discrepancy --------------------------------------------------------------------------
    def _units(self, p: pd.DataFrame) -> np.ndarray:
        return (p["fold"] + ":" + p["part"].astype(str)).to_numpy()

    def discrepancy(self, family: str, *, exclude: Sequence[str] = ()) -> Discrepancy:
        """The :class:`Discrepancy` of ``family`` fitted to its backtest errors.

        Every fold part is one unit of evidence.  ``exclude`` drops units (``"fold:part"``
        labels, e.g. ``"largest-size:0"``), as the leave-one-fold-out coverage does.
        A family without successful folds gets the prior alone.
        """
        if family not in set(self.status["family"]):
            raise MixlawsError(f"family {family!r} was not backtested; backtested: "
                               f"{', '.join(self.families)}", law=family)
        key = (family, tuple(sorted(exclude)))
        if key not in self._cache:
            p = self.predictions[self.predictions["family"] == family]
            units = self._units(p)
            keep = ~np.isin(units, list(exclude))
            p = p[keep]
            self._cache[key] = Discrepancy(**self.priors).fit(
                p["log_ratio"], p["dN"], p["dD"], units[keep], p["hull"])
        return self._cache[key]

    def _lofo_covered(self) -> np.ndarray:
        p = self.predictions
        out = np.zeros(len(p), bool)
        if p.empty:
            return out
        units = self._units(p)
        for family in pd.unique(p["family"]):
            fam = (p["family"] == family).to_numpy()
            for unit in pd.unique(units[fam]):
                sel = fam & (units == unit)
                model = self.discrepancy(family, exclude=[unit])
                q = p[sel]
                out[sel] = model.covers(q["log_ratio"], q["dN"], q["dD"], self.level, q["hull"])
        return out

    def at_target(self, runs: Any, params: float, tokens: float) -> pd.DataFrame:
        """Each family's discrepancy at a real target ``(params, tokens)`` of the fit to ``runs``.

        One row per family: ``dN, dD, u`` (:func:`~mixlaws.backtest.extrapolation_distance`
        from ``runs``), ``bias`` and ``sd`` of ``log(L_obs / L_pred)``, and ``lower, upper``:
        the factors that multiply a prediction to give the ``level`` interval.
        """
        from ._score import extrapolation_distance

        dN, dD = extrapolation_distance(runs, params, tokens)
        rows = []
        for family in self.families:
            disc = self.discrepancy(family)
            p = disc.predict(dN[0], dD[0])
            lo, hi = disc.quantiles(dN[0], dD[0], self.level)
            rows.append({"family": family, "dN": float(dN[0]), "dD": float(dD[0]),
                         "u": float(p["u"]), "bias": float(p["bias"]), "sd": float(p["sd"]),
                         "lower": float(np.exp(lo)), "upper": float(np.exp(hi))})
        return pd.DataFrame(rows)

    # -- tables -------------------------------------------------------------------------------
    def _table(self) -> pd.DataFrame:
        rows = []
        order = {f: i for i, f in enumerate(FOLDS)}
        st = self.status
        for family in self.families:
            for fold in sorted(pd.unique(st.loc[st["family"] == family, "fold"]),
                               key=lambda f: order.get(f, 99)):
                s = st[(st["family"] == family) & (st["fold"] == fold)]
                p = self.predictions[(self.predictions["family"] == family)
                                     & (self.predictions["fold"] == fold)]
                bad = s[s["status"] != "ok"]
                status = "ok" if bad.empty else "; ".join(
                    f"{r.status}{'' if fold != 'mixtures' else f' part {r.part}'}: {r.reason}"
                    for r in bad.itertuples())
                e = p["rel_error"].to_numpy(float)
                stat = (lambda f: float(f(e)) if e.size else np.nan)  # noqa: E731
                rows.append({
                    "family": family, "fold": fold, "n": int(e.size),
                    "mean_abs_rel_error": stat(lambda x: np.mean(np.abs(x))),
                    "max_abs_rel_error": stat(lambda x: np.max(np.abs(x))),
                    "bias": stat(np.mean),
                    "rmse_log": float(np.sqrt(np.mean(p["log_ratio"] ** 2))) if e.size else np.nan,
                    "dN": float(p["dN"].mean()) if e.size else np.nan,
                    "dD": float(p["dD"].mean()) if e.size else np.nan,
                    "u": float(distance(p["dN"], p["dD"]).mean()) if e.size else np.nan,
                    "coverage": float(p["covered"].mean()) if e.size else np.nan,
                    "seconds": float(s["seconds"].sum()), "status": status})
        return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))

    def summary(self) -> str:
        """Text table: family x fold, n, mean/max |rel err| (%), bias (%), distances, coverage."""
        pct = lambda x: "     -" if not np.isfinite(x) else f"{100 * x:6.2f}"  # noqa: E731
        num = lambda x: "    -" if not np.isfinite(x) else f"{x:5.2f}"  # noqa: E731
        lines = [f"{'family':<12} {'fold':<13} {'n':>4} {'mean%':>6} {'max%':>6} {'bias%':>6} "
                 f"{'dN':>5} {'dD':>5} {'cov' + format(round(100 * self.level), 'd'):>6}  status"]
        for r in self.table.itertuples():
            cov = "     -" if not np.isfinite(r.coverage) else f"{r.coverage:6.2f}"
            lines.append(f"{r.family:<12} {r.fold:<13} {r.n:>4} {pct(r.mean_abs_rel_error)} "
                         f"{pct(r.max_abs_rel_error)} {pct(r.bias)} {num(r.dN)} {num(r.dD)} "
                         f"{cov}  {r.status}")
        lines.append(f"rel err = predicted/observed - 1; dN = log(N/N_max fitted), dD = "
                     f"log(D/D_max at the nearest fitted size); cov = share of targets inside "
                     f"the {round(100 * self.level)} % discrepancy interval fitted without "
                     f"their fold (leave-one-fold-out)")
        for family in self.families:
            lines.append(f"discrepancy {family}: {self.discrepancy(family)!r}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    # -- figure -------------------------------------------------------------------------------
    def figure(self, *, target: tuple[float, float] | None = None):
        """Relative error vs extrapolation distance ``u`` per family, with the discrepancy band.

        ``target``: optional ``(dN, dD)`` of the real target, marked and included in the
        x range.  Returns a :class:`matplotlib.figure.Figure` (Agg canvas).
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fams = self.families
        fig = Figure(figsize=(4.6 * max(len(fams), 1), 3.6), layout="constrained")
        FigureCanvasAgg(fig)
        axes = np.atleast_1d(fig.subplots(1, max(len(fams), 1), squeeze=False).ravel())
        u_max = float(distance(self.predictions["dN"], self.predictions["dD"]).max()) \
            if len(self.predictions) else 1.0
        if target is not None:
            u_max = max(u_max, float(distance(*target)))
        grid = np.linspace(0.0, 1.15 * max(u_max, 0.1), 40)
        for ax, family in zip(axes, fams):
            p = self.predictions[self.predictions["family"] == family]
            for fold in [f for f in FOLDS if f in set(p["fold"])]:
                q = p[p["fold"] == fold]
                ax.plot(distance(q["dN"], q["dD"]), 100 * q["rel_error"], "o", ms=3.5,
                        alpha=0.7, label=fold)
            disc = self.discrepancy(family)
            d = disc.predict(grid, np.zeros_like(grid))
            qlo, qhi = disc.quantiles(grid, np.zeros_like(grid), self.level)
            # rel_error = exp(-log_ratio) - 1
            ax.fill_between(grid, 100 * np.expm1(-qhi), 100 * np.expm1(-qlo), color="0.8",
                            alpha=0.6, label=f"{round(100 * self.level)} % discrepancy band")
            ax.plot(grid, 100 * np.expm1(-d["bias"]), color="0.3", lw=1)
            ax.axhline(0, color="k", lw=0.5)
            if target is not None:
                ax.axvline(float(distance(*target)), color="C3", ls="--", lw=1, label="target")
            ax.set_title(family)
            ax.set_xlabel("extrapolation distance u = |(dN, dD)+| (log units)")
            ax.set_ylabel("predicted / observed - 1 (%)")
            ax.legend(fontsize=7)
        return fig

    # -- artifacts ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (finite floats, lists); :meth:`from_dict` rebuilds it exactly."""
        pred = self.predictions[list(PREDICTION_COLUMNS)]
        return {"kind": _KIND, "version": _VERSION, "settings": _jsonable(self.settings),
                "level": self.level, "priors": dict(self.priors), "notes": list(self.notes),
                "predictions": {c: _jsonable(pred[c].tolist()) for c in PREDICTION_COLUMNS},
                "status": {c: _jsonable(self.status[c].tolist()) for c in _STATUS_COLUMNS}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BacktestResult":
        """Inverse of :meth:`to_dict`."""
        if not isinstance(d, Mapping) or d.get("kind") != _KIND:
            raise ArtifactError(f"not a {_KIND} artifact (kind={d.get('kind') if isinstance(d, Mapping) else None!r}); "
                                "pass the output of BacktestResult.to_dict() or `mixlaws backtest -o`")
        if d.get("version") not in (1, 2, _VERSION):
            raise ArtifactError(f"{_KIND} version {d.get('version')!r} is not supported (expected "
                                f"{_VERSION}); rerun the backtest with this mixlaws")
        try:
            cols = dict(d["predictions"])
            if "hull" not in cols:      # results written before the hull distance was scored
                cols["hull"] = [0.0] * len(cols["run"])
            pred = pd.DataFrame({c: cols[c] for c in PREDICTION_COLUMNS})
            status = pd.DataFrame({c: d["status"][c] for c in _STATUS_COLUMNS})
            priors = dict(d["priors"])
            if d["version"] == 1:       # written when the discrepancy carried its bias's sign
                priors.setdefault("carry_bias", True)
            if d["version"] == 2:       # written when it had a bias term made symmetric
                priors.setdefault("prior_b", PRIOR_B)
            return cls(pred, status.astype(_STATUS_TYPES),
                       settings=d["settings"], level=d["level"], priors=priors,
                       notes=d["notes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{_KIND} artifact is incomplete or corrupt: {exc}") from exc


_PRED_TYPES = {"family": object, "fold": object, "part": np.int64, "run": object,
               **{c: np.float64 for c in PREDICTION_COLUMNS[4:]}}
_STATUS_TYPES = {"part": np.int64, "seconds": np.float64, "n_warnings": np.int64}


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        raise ArtifactError("backtest results must be finite to be written as JSON")
    return x
