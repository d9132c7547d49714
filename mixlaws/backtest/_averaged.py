r"""``--law auto``: law families averaged by their backtest performance, with honest intervals.

No single law family extrapolates best on every sweep, so :class:`AveragedMixingLaw` fits
every family of ``families`` on the whole table, backtests them on the same table
(:func:`~mixlaws.backtest.backtest`) and predicts with their mixture:

**Weights: stacking** (Yao, Vehtari, Simpson & Gelman 2018) of the families' predictive
densities on the backtest targets.  Target ``i`` (a held-out run of backtest unit ``f``) gets
from family ``k`` the density of its observed error ``e_ki = log(L_obs / L_pred)`` under the
family's *leave-that-unit-out* discrepancy model ``N(bias_k(u_i), sd_k(u_i)^2)``; the weights
maximise :math:`\sum_i c_i \log \sum_k w_k p_{ki}` on the simplex, each unit counting once
(``c_i = 1 / n_f``: a unit's targets come from one fit, whose shared error decides most of
which family predicted them better), plus the log density of
a symmetric Dirichlet prior on ``w`` (:data:`STACKING_CONCENTRATION` = 2: one pseudo-unit
per family).  A sweep gives a handful of backtest units, and unregularised stacking on so few
puts all the weight on one family as soon as it wins them all -- dropping the spread between
families from the interval exactly when the evidence for the choice is thinnest (on Ye et
al.'s tables the weights were 1/0 on three of four held-out folds, not always the same family);
the prior keeps that uncertainty until the units outweigh it.  Stacking rather than
pseudo-BMA because every family is misspecified (the M-open case): BMA-type weights pile
onto the family that is least wrong on average, stacking onto the combination that predicts
best, which is what a mixture of wrong-in-different-ways laws needs.  ``method="pseudo-bma"``
(``w_k ∝ exp(sum_i c_i log p_ki)``) is available for comparison.

**Predictive distribution at a target** ``(N*, D*)`` for a mixture ``r``: the stacked
prediction ``L(r) = sum_k w_k L_k(r)`` is itself a predictor, and its backtest errors are
what say how far it can be off, so it gets its own discrepancy model
(:class:`~mixlaws.backtest.Discrepancy`, :func:`stacked_discrepancy`), fitted to the errors
``log(L_obs / L)`` of the stacked prediction on every backtest unit, each unit's prediction
stacked with weights fitted *without that unit* (the weights are estimated from the same
backtests; this keeps a unit from grading weights fitted to it):

.. math::

    \log L_{obs} = \log L(r) + e, \qquad e \sim \text{the discrepancy's predictive at }
    (u^*, h(r)),

with ``u*`` the target's extrapolation distance (:func:`~mixlaws.backtest.scale_distance`)
and ``h(r)`` the mixture's total-variation distance to the hull of the fitted mixtures.  The
spread between families enters through those errors: where the families disagree and the
average errs by it, the backtests measure it.  Earlier versions used the stacked mixture of
the families' own predictives, ``sum_k w_k N(log L_k(r), s_k^2)``, each ``s_k`` calibrated
to its family's errors: that counts the families' structural error twice (once in each
``s_k``, once in their spread) while their errors partly cancel in the average.  On the
out-of-family calibration benchmark (``benchmarks/backtest_calibration.py``) it covered
99.3 % of the targets with 90 % intervals, half-width 10.2 %.
``interval(..., kind="new_run")`` is for a newly trained run, ``kind="mean"`` drops the
distance-zero error (run noise and interpolation error) for the law itself.  The point
prediction is ``L(r) exp(b(u*))`` (differentiable: the optimiser uses it), ``b = 0`` unless
the discrepancy carries the sign of its bias.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

from .._threads import thread_map
from .._version import __version__
from ..errors import ArtifactError, MixlawsError
from ..fit import (Estimator, TargetActions, check_scale, family, make_estimator,
                   mixture_extrapolation)
from ..runs import WARMUP, as_runs
from ._discrepancy import Discrepancy, mixture_quantile
from ._folds import DEFAULT_FOLDS
from ._result import BacktestResult
from ._run import backtest
from ._score import fitted_scales, scale_distance

__all__ = ["AveragedMixingLaw", "AveragedTarget", "AUTO_FAMILIES", "STACKING_CONCENTRATION",
           "family_weights", "stacked_discrepancy", "stacking_weights"]

AUTO_FAMILIES = ("nested", "joint", "nested-sum")
"""The families ``--law auto`` considers by default, in order; it averages the first
``max_families`` (2) that the table can fit.  On a multi-scale sweep that is ``nested`` and
``joint``, the two that disagree most where it matters (per-run step laws nested in a size
law, vs one law in ``(r, N, D)``).  On a one-scale table (a swarm: the joint law needs three
sizes) the mixing law is all there is to choose, and ``nested-sum`` (two exponential terms
per domain) is the alternative to Ye et al.'s one-term law, on tables of up to 32 sources
(its ``auto_max_sources``: above that its fit takes many minutes).  ``nested-tied`` lies between
``nested`` and ``joint`` on the public sweeps and costs the most to backtest, so it is opt-in
(``families=``).  Each extra family adds its whole backtest to the cost, hence the cap."""

_METHODS = ("stacking", "pseudo-bma")

STACKING_CONCENTRATION = 2.0
"""Concentration ``a`` of the symmetric Dirichlet prior on the stacking weights (MAP): each
family gets ``a - 1`` pseudo-units of evidence, so where one of ``K`` families alone explains
all ``n`` backtest units it gets weight ``(n + a - 1) / (n + K (a - 1))``, not 1."""


def stacking_weights(log_p: np.ndarray, c: np.ndarray, method: str = "stacking",
                     n_iter: int = 2000, tol: float = 1e-12,
                     concentration: float = STACKING_CONCENTRATION) -> np.ndarray:
    """Weights ``(K,)`` on the simplex from log predictive densities ``log_p (n, K)``.

    ``stacking`` maximises ``sum_i c_i log sum_k w_k p_ik + (a - 1) sum_k log w_k``
    (concave in ``w``; ``a`` the Dirichlet ``concentration``, 1 for plain stacking) by its EM
    fixed point ``w_k <- (sum_i c_i r_ik + a - 1) / (sum_i c_i + K (a - 1))`` with
    responsibilities ``r_ik``; ``pseudo-bma`` is ``w_k ∝ exp(sum_i c_i log p_ik)``.

    Examples
    --------
    >>> import numpy as np
    >>> log_p = np.log([[1.0, 1e-9], [2.0, 1e-9], [0.5, 1e-9]])  # family 1 explains nothing
    >>> stacking_weights(log_p, np.ones(3), concentration=1.0).round(3)
    array([1., 0.])
    >>> stacking_weights(log_p, np.ones(3)).round(3)   # one pseudo-unit each: (3 + 1) / (3 + 2)
    array([0.8, 0.2])
    """
    log_p = np.asarray(log_p, float)
    c = np.asarray(c, float)
    K = log_p.shape[1]
    if method == "pseudo-bma":
        elpd = c @ log_p
        w = np.exp(elpd - elpd.max())
        return w / w.sum()
    if method != "stacking":
        raise MixlawsError(f"averaging method must be one of {_METHODS}, not {method!r}")
    if not (np.isfinite(concentration) and concentration >= 1.0):
        raise MixlawsError(f"stacking concentration must be ≥ 1, not {concentration}")
    a = float(concentration) - 1.0
    w = np.full(K, 1.0 / K)
    lp = log_p - log_p.max(1, keepdims=True)
    p = np.exp(lp)
    for _ in range(n_iter):
        mix = p @ w
        resp = p * w / mix[:, None]
        new = (c @ resp + a) / (c.sum() + K * a)
        if np.max(np.abs(new - w)) < tol:
            w = new
            break
        w = new
    return w / w.sum()


@dataclass(frozen=True)
class AveragedTarget(TargetActions):
    """The model-averaged law at one target scale (see the module docstring).

    Attributes
    ----------
    members : each family's target object; law_weights : their stacking weights.
    discrepancy : the stacked prediction's :class:`~mixlaws.backtest.Discrepancy`.
    dN, dD, u : the target's extrapolation distances.
    bias, sd : the discrepancy's mean and sd of ``log(L_obs / L)`` at the target (``h = 0``).
    kappa : its extra log-error sd per unit of hull distance.
    """

    params: float
    tokens: float
    families: tuple[str, ...]
    members: tuple[Any, ...]
    law_weights: np.ndarray
    discrepancy: Discrepancy
    dN: float
    dD: float
    u: float
    bias: float
    sd: float
    kappa: float
    sources: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    progress: str = "tokens"
    mixtures: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    model: Any = field(default=None, compare=False, repr=False)

    def _scale(self) -> np.ndarray:
        return self.law_weights * np.exp(self.bias)

    def domain_losses(self, r: jnp.ndarray) -> jnp.ndarray:
        """Weighted, bias-corrected per-domain losses ``(..., n_domains)`` (JAX)."""
        s = self._scale()
        return sum(float(s[k]) * m.domain_losses(r) for k, m in enumerate(self.members))

    def loss(self, r: jnp.ndarray) -> jnp.ndarray:
        """Point prediction ``sum_k w_k L_k(r) exp(b(u*))`` of the aggregate loss (JAX)."""
        s = self._scale()
        return sum(float(s[k]) * m.loss(r) for k, m in enumerate(self.members))

    def per_law(self, mixtures: Any) -> dict[str, np.ndarray]:
        """Each family's own prediction ``(n,)`` of the aggregate loss (no bias correction)."""
        from ..runs import as_mixtures

        r = jnp.asarray(as_mixtures(mixtures, self.sources)[0])
        return {f: np.asarray(m.loss(r)) for f, m in zip(self.families, self.members)}

    def _hull(self, r: np.ndarray) -> np.ndarray:
        return np.array([e.hull_distance for e in
                         mixture_extrapolation(self.mixtures, r, self.sources)])

    def interval(self, mixtures: Any, level: float = 0.9,
                 kind: str = "new_run") -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` interval ``(lower, upper)`` of the loss of each mixture.

        ``kind="new_run"``: the loss a newly trained run will show; ``"mean"``: the law's.
        """
        from ..runs import as_mixtures

        if not 0.0 < level < 1.0:
            raise MixlawsError(f"interval level must be in (0, 1), not {level}")
        if kind not in ("new_run", "mean"):
            raise MixlawsError(f"interval kind must be 'new_run' or 'mean', not {kind!r}")
        r, _ = as_mixtures(mixtures, self.sources)
        stacked = np.asarray(self.loss(jnp.asarray(r))) * np.exp(-self.bias)
        lo, hi = self.discrepancy.quantiles(self.dN, self.dD, level, self._hull(r),
                                            at_zero=kind == "new_run")
        return stacked * np.exp(lo), stacked * np.exp(hi)

    def compare(self, mixture: Any, baseline: Any, level: float = 0.9) -> dict[str, float]:
        """``P(L(r) < L(b))``, mean gain ``L(b) - L(r)`` and its central ``level`` interval.

        Both losses share the target's fold-level discrepancy (one fit predicts both), so the
        gain's uncertainty is the spread between families plus each mixture's own error (the
        discrepancy's :meth:`~mixlaws.backtest.Discrepancy.scatter_variance` at its hull
        distance): under family ``k`` the gain is
        ``N(g_k, L_rk^2 omega_r^2 + L_bk^2 omega_b^2)`` with ``g_k`` the family's
        bias-corrected gain; the result is their weighted mixture.
        """
        from ..runs import as_mixtures

        r, _ = as_mixtures(np.vstack([np.ravel(np.asarray(mixture, float)),
                                      np.ravel(np.asarray(baseline, float))]), self.sources)
        omega2 = self.discrepancy.scatter_variance(self.dN, self.dD, self._hull(r))
        L = np.stack([np.asarray(m.loss(jnp.asarray(r))) for m in self.members], 1)
        L = L * np.exp(self.bias)                               # (2, K)
        g = L[1] - L[0]
        sd = np.sqrt(L[0] ** 2 * omega2[0] + L[1] ** 2 * omega2[1] + 1e-18)
        w = self.law_weights
        if np.array_equal(r[0], r[1]):      # one mixture's error is one error: no gain spread
            sd = np.full_like(g, 1e-9)
        lo = mixture_quantile(g[None], sd[None], w, 0.5 - level / 2)[0]
        hi = mixture_quantile(g[None], sd[None], w, 0.5 + level / 2)[0]
        return {"p_better": float(w @ norm.cdf(g / sd)), "gain": float(w @ g),
                "gain_lower": float(lo), "gain_upper": float(hi), "level": float(level)}

    def uncertainty(self, mixture: Any, baseline: Any = None,
                    level: float = 0.9) -> dict[str, Any]:
        """MIX.json's ``uncertainty`` block for ``mixture``: its new-run interval and, with a
        baseline, :meth:`compare` (the same keys as the posterior's risk report)."""
        r = np.atleast_2d(np.asarray(mixture, float))
        lo, hi = self.interval(r, level)
        mlo, mhi = self.interval(r, level, kind="mean")
        out: dict[str, Any] = {"objective": "mean", "posterior": "structural",
                               "loss": float(np.asarray(self.loss(jnp.asarray(r)))[0]),
                               "lower": float(lo[0]), "upper": float(hi[0]),
                               "mean_interval": [float(mlo[0]), float(mhi[0])],
                               "level": float(level)}
        if baseline is not None:
            out["versus_baseline"] = self.compare(r[0], baseline, level)
        return out


class AveragedMixingLaw(Estimator):
    """Law families averaged by stacking on the sweep's own backtests (``--law auto``).

    Parameters
    ----------
    families : names of :data:`mixlaws.fit.FAMILIES` to consider, in order (default
        :data:`AUTO_FAMILIES`).
    max_families : average the first this many of ``families`` that the table can fit (and,
        with a target, that reach it); None for all of them.
    folds, truncate, n_mixture_folds : the backtest (see :func:`~mixlaws.backtest.backtest`).
    method : ``"stacking"`` (default) or ``"pseudo-bma"``.
    val_weights, warmup, seed : settings every family receives.

    Attributes (after ``fit``)
    --------------------------
    members_ : ``{family: fitted estimator}``; law_weights_ : ``{family: weight}``;
    backtest_ : the :class:`~mixlaws.backtest.BacktestResult`; discrepancy_ :
    ``{family: Discrepancy}`` on every unit (each family's own, for its stacking score and
    the report); stacked_discrepancy_ : the stacked prediction's (its intervals); kappa_ :
    that one's mixture-space widening;
    scales_ : fitted sizes and their largest tokens; sources_, domains_, weights_,
    mixtures_, runs_, progress_, source_path_, notes_ as the nested model.

    Examples
    --------
    >>> import mixlaws as ml
    >>> law = ml.make_estimator("auto", folds=("truncate", "mixtures"))
    >>> law.get_params()["method"]
    'stacking'
    """

    family = "auto"

    def __init__(self, *, families: Sequence[str] = AUTO_FAMILIES, max_families: int | None = 2,
                 folds: Sequence[str] = DEFAULT_FOLDS, truncate: float = 0.3,
                 n_mixture_folds: int = 3, method: str = "stacking",
                 val_weights: Mapping[str, float] | None = None, warmup: float = WARMUP,
                 seed: int = 0) -> None:
        self.families = tuple(families)
        self.max_families = max_families
        self.folds = tuple(folds)
        self.truncate = truncate
        self.n_mixture_folds = n_mixture_folds
        self.method = method
        self.val_weights = val_weights
        self.warmup = warmup
        self.seed = seed

    def _settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {"warmup": float(self.warmup), "seed": int(self.seed)}
        if self.val_weights is not None:
            out["val_weights"] = {k: float(v) for k, v in self.val_weights.items()}
        return out

    def fit(self, runs: Any, *, renormalize: bool = False,
            target: tuple[float, float] | None = None) -> "AveragedMixingLaw":
        """Backtest and fit every family, then weigh them; return self.

        ``target = (N*, D*)``, when the fit is for one target (``mixlaws run``): a family that
        cannot predict there is left out (with a note) before its backtest is paid for; when
        none can, the first family's own error is raised at once.
        """
        if self.method not in _METHODS:
            raise MixlawsError(f"averaging method must be one of {_METHODS}, not {self.method!r}")
        runs = as_runs(runs, renormalize=renormalize)
        if target is not None:
            target = check_scale(*target)
        settings = self._settings()
        members, notes, errors = {}, [], []
        if self.max_families is not None and int(self.max_families) < 1:
            raise MixlawsError(f"max_families must be ≥ 1 or None, not {self.max_families!r}")
        pending = []
        for name in self.families:
            cap = family(name).auto_max_sources
            if cap is not None and len(runs.sources) > cap:
                notes.append(f"law family {name} left out: its fit costs too much with "
                             f"{len(runs.sources)} sources (auto considers it up to {cap})")
            else:
                pending.append(name)

        def whole(name: str) -> Any:      # the whole table first: no backtest of a family
            try:                           # that cannot be fitted (or reach the target) at all
                est = make_estimator(name, **settings).fit(runs)
                if target is not None:
                    est.target(*target)
            except MixlawsError as exc:
                return exc
            return est

        limit = len(pending) if self.max_families is None else int(self.max_families)
        while pending and len(members) < limit:
            take, pending = pending[:limit - len(members)], pending[limit - len(members):]
            # fitted at once in threads; their warnings shown afterwards, in family order
            for name, (est, caught) in zip(take, thread_map(whole, take, record=True, xla=True)):
                for w in caught:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                if isinstance(est, MixlawsError):
                    errors.append(est)
                    notes.append(f"law family {name} left out: {est}")
                else:
                    members[name] = est
        if not members:                    # the first family's own message says what to do
            raise errors[0]
        result = backtest(runs, tuple(members), self.folds, truncate=self.truncate,
                          n_mixture_folds=self.n_mixture_folds, seed=self.seed,
                          settings=settings, fitted=members)
        notes += list(result.notes)
        self.backtest_ = result
        self._finish(members, runs, notes)
        return self

    def _finish(self, members: dict[str, Any], runs: Any, notes: list[str],
                weights: Mapping[str, float] | None = None) -> None:
        first = next(iter(members.values()))
        self.members_ = members
        for attr in ("sources_", "domains_", "weights_", "mixtures_", "mixture_labels_",
                     "runs_", "progress_", "source_path_"):
            setattr(self, attr, getattr(first, attr))
        sizes, dmax = fitted_scales(runs) if runs is not None else self.scales_
        self.scales_ = (np.asarray(sizes, float), np.asarray(dmax, float))
        fams = tuple(members)
        self.discrepancy_ = {f: self.backtest_.discrepancy(f) for f in fams}
        stack_notes: list[str] = []
        if weights is None:
            weights, stack_notes = family_weights(self.backtest_, fams, self.method)
        self.law_weights_ = dict(weights)
        self.stacked_discrepancy_ = stacked_discrepancy(self.backtest_, self.law_weights_,
                                                        self.method)
        self.kappa_ = _kappa(self.stacked_discrepancy_)
        self.notes_ = tuple(notes) + tuple(stack_notes)
        self._targets: dict[tuple[float, float], AveragedTarget] = {}

    # -- prediction ----------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "members_"):
            from ..errors import NotFittedError

            raise NotFittedError("this AveragedMixingLaw is not fitted yet: call fit(runs) first")

    def target(self, params: float, tokens: float) -> AveragedTarget:
        """The averaged law at ``(params, tokens)`` (cached)."""
        self._check_fitted()
        key = check_scale(params, tokens)
        if key in self._targets:
            return self._targets[key]
        fams = tuple(self.members_)
        members = tuple(self.members_[f].target(*key) for f in fams)
        dN, dD = (float(np.ravel(x)[0]) for x in scale_distance(*self.scales_, key[0], key[1]))
        at = self.stacked_discrepancy_.predict(dN, dD)
        t = AveragedTarget(
            params=key[0], tokens=key[1], families=fams, members=members,
            law_weights=np.array([self.law_weights_[f] for f in fams]),
            discrepancy=self.stacked_discrepancy_, dN=dN, dD=dD,
            u=float(np.ravel(at["u"])[0]), bias=float(np.ravel(at["bias"])[0]),
            sd=float(np.ravel(at["sd"])[0]), kappa=self.kappa_, sources=self.sources_,
            domains=self.domains_, progress=self.progress_, mixtures=self.mixtures_, model=self)
        self._targets[key] = t
        return t

    def predict(self, mixtures: np.ndarray, params: float, tokens: float) -> dict[str, np.ndarray]:
        """Averaged aggregate and per-domain losses of ``mixtures (n, M)`` at ``(params, tokens)``."""
        t = self.target(params, tokens)
        r = jnp.asarray(np.atleast_2d(np.asarray(mixtures, float)))
        return {"loss": np.asarray(t.loss(r)), "domains": np.asarray(t.domain_losses(r))}

    # -- artifact ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (every member's artifact, the backtest, the weights); exact round trip."""
        from ..fit import model_to_dict
        from ..fit._artifact import FIT_KIND, FORMAT_VERSION

        self._check_fitted()
        return {"kind": FIT_KIND, "format_version": FORMAT_VERSION, "mixlaws_version": __version__,
                "family": "auto", "settings": self.get_params(deep=True),
                "members": {f: model_to_dict(m) for f, m in self.members_.items()},
                "backtest": self.backtest_.to_dict(), "law_weights": dict(self.law_weights_),
                "kappa": self.kappa_, "scales": [s.tolist() for s in self.scales_],
                "notes": list(self.notes_)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, path: str = "<dict>") -> "AveragedMixingLaw":
        """Rebuild from :meth:`to_dict`."""
        from ..fit import model_from_dict

        try:
            s = dict(d["settings"])
            model = cls(**{k: (tuple(v) if k in ("families", "folds") else v)
                           for k, v in s.items()})
            members = {f: model_from_dict(m, path=path) for f, m in d["members"].items()}
            model.backtest_ = BacktestResult.from_dict(d["backtest"])
            model.scales_ = tuple(np.asarray(x, float) for x in d["scales"])
            model._finish(members, None, [],
                          weights={f: float(v) for f, v in d["law_weights"].items()})
            model.notes_ = tuple(d["notes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{path} is a damaged model-averaged fit ({type(exc).__name__}: "
                                f"{exc}); refit with `mixlaws fit --law auto`", path=path) from None
        return model


def _stacking_inputs(result: BacktestResult, fams: tuple[str, ...]) -> dict[str, Any]:
    """Backtest targets every family of ``fams`` predicted, with each family's log density of
    its error under its discrepancy fitted *without the target's unit*."""
    p = result.predictions
    p = p[p["family"].isin(fams)].copy()
    p["unit"] = p["fold"] + ":" + p["part"].astype(str)
    wide = p.pivot_table(index=["unit", "run"], columns="family", values="log_ratio").dropna()
    out: dict[str, Any] = {"wide": wide, "scored": [f for f in fams if f in wide.columns]}
    if wide.empty or len(out["scored"]) < len(fams):
        return out
    units = wide.index.get_level_values("unit").to_numpy()
    dist = p.drop_duplicates(["unit", "run"]).set_index(["unit", "run"]).loc[wide.index]
    logp = np.empty((len(wide), len(fams)))
    for k, f in enumerate(fams):
        for u in np.unique(units):
            sel = units == u
            d = result.discrepancy(f, exclude=[u])
            pr = d.predict(dist["dN"].to_numpy()[sel], dist["dD"].to_numpy()[sel],
                           dist["hull"].to_numpy()[sel])
            logp[sel, k] = norm.logpdf(wide[f].to_numpy()[sel], pr["bias"], pr["sd"])
    _, inv, counts = np.unique(units, return_inverse=True, return_counts=True)
    out.update(units=units, dist=dist, logp=logp, c=1.0 / counts[inv])
    return out


def family_weights(result: BacktestResult, families: Sequence[str],
                   method: str = "stacking", concentration: float = STACKING_CONCENTRATION
                   ) -> tuple[dict[str, float], list[str]]:
    """Weights of ``families`` from their backtest ``result`` (see the module docstring).

    Each target's density under a family is that of its observed error under the family's
    discrepancy model fitted *without the target's unit*; returns ``({family: weight}, notes)``.
    """
    fams = tuple(families)
    inputs = _stacking_inputs(result, fams)
    unscored = [f for f in fams if f not in inputs["scored"]]
    if unscored and len(unscored) < len(fams):   # no backtest fold could score them: weight 0
        kept, why = family_weights(result, [f for f in fams if f not in unscored], method,
                                   concentration)
        return ({f: kept.get(f, 0.0) for f in fams}, why + [
            f"law family {f} has weight 0: none of its backtest folds could be fitted"
            for f in unscored])
    if inputs["wide"].empty or len(fams) == 1:
        why = [] if len(fams) == 1 else ["no backtest target was predicted by every family: "
                                         "the families are weighted equally"]
        return {f: 1.0 / len(fams) for f in fams}, why
    w = stacking_weights(inputs["logp"], inputs["c"], method, concentration=concentration)
    return dict(zip(fams, w.tolist())), []


def stacked_discrepancy(result: BacktestResult, weights: Mapping[str, float],
                        method: str = "stacking",
                        concentration: float = STACKING_CONCENTRATION) -> Discrepancy:
    """The :class:`Discrepancy` of the stacked prediction ``sum_k w_k L_k``, fitted to its
    backtest errors; each unit's errors use weights stacked without that unit's targets
    (``weights`` where that leaves none).  Families of weight 0 take no part; with one family
    left it is that family's discrepancy, and with no target every family predicted, the
    prior alone.
    """
    fams = tuple(f for f, w in weights.items() if w > 0)
    if len(fams) == 1:
        return result.discrepancy(fams[0])
    inputs = _stacking_inputs(result, fams)
    if inputs["wide"].empty or len(inputs["scored"]) < len(fams):
        return Discrepancy(**result.priors).fit([], [], [], [])
    wide, units, logp, c = inputs["wide"], inputs["units"], inputs["logp"], inputs["c"]
    full = np.array([weights[f] for f in fams], float)
    full = full / full.sum()
    e_k = wide[list(fams)].to_numpy()                         # log(L_obs / L_k)
    e = np.empty(len(wide))
    for u in np.unique(units):
        sel = units == u
        w = (stacking_weights(logp[~sel], c[~sel], method, concentration=concentration)
             if np.any(~sel) else full)
        e[sel] = -np.log(np.exp(-e_k[sel]) @ w)                # log(L_obs / sum_k w_k L_k)
    dist = inputs["dist"]
    return Discrepancy(**result.priors).fit(e, dist["dN"], dist["dD"], units, dist["hull"])


def _kappa(disc: Discrepancy) -> float:
    """Root-mean-square posterior ``k`` of a discrepancy: the extra log-error sd per unit of
    hull distance (``sd(h=1)^2 - sd(h=0)^2`` at ``u = 0``)."""
    at = [float(np.ravel(disc.predict(0.0, 0.0, h)["sd"])[0]) for h in (0.0, 1.0)]
    return float(np.sqrt(max(at[1] ** 2 - at[0] ** 2, 0.0)))
