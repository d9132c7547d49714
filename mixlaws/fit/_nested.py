"""Nested prediction (Ye et al. 2024, Algorithm 1): step -> size -> mixing law.

:class:`NestedMixingLaw` is the core estimator of mixlaws.  ``fit`` fits the
step law of every run (training progress ``D``); the target scale
``(N*, D*)`` is chosen at prediction time:

1. each run's step law ``L_d(D) = E_d + B_d D^(-beta)`` is extrapolated to ``D*``;
2. per mixture, the size law ``L(N) = E + A N^(-alpha)`` is fitted over the
   small sizes at ``D*`` (``alpha`` tied across mixtures and domains by
   default) and extrapolated to ``N*``;
3. per validation domain, the mixing law
   ``L_d(r) = c_d + k_d exp(sum_j t_dj r_j)`` is fitted to the mixtures'
   predicted losses at ``(N*, D*)``;
4. the aggregate is ``sum_d w_d L_d(r)`` (explicit weights, or the plain mean)
   or, with implicit aggregation, ``c + sum_k exp(a_k + t_k . r)`` fitted to
   the mean loss.

Stages the data cannot support are skipped, and predicting where they would be
needed is a :class:`~mixlaws.errors.ScaleError`: single-scale sweeps (one size,
one checkpoint per run, e.g. RegMix) fit the mixing law at their own scale only.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from .. import _config  # noqa: F401
from ._base import Estimator
from ._target import TargetActions, check_scale
from ..laws import explicit_aggregate, implicit_mixing_law, size_law, step_law
from ..runs._warmup import WARMUP, after_warmup
from ..errors import InsufficientDataError, MixlawsError, NotFittedError, ScaleError
from ._stages import (
    TIE_ALPHA,
    TIE_BETA,
    StageFit,
    fit_implicit_stage,
    fit_size_stage,
    fit_step_stage,
    mixing_stage_law,
    refit_mixing_stage,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import RunsTable

__all__ = ["NestedMixingLaw", "TargetFit"]

_RTOL_SCALE = 1e-6


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= _RTOL_SCALE * max(abs(a), abs(b))


@dataclass(frozen=True)
class TargetFit(TargetActions):
    """The size and mixing stages fitted at one target scale ``(params, tokens)``.

    Attributes
    ----------
    params, tokens : the target model size ``N*`` and training tokens ``D*``.
    mixtures : ``(n, M)`` mixtures whose losses were predicted at the target.
    mixture_labels : their labels.
    stage_losses : ``(n, n_domains)`` per-domain losses of those mixtures at the target
        (the data of the mixing stage).
    size : the size-stage fit, or None when the sweep has one model size.
    mixing : the per-domain mixing-law fit.
    implicit : the implicit-aggregation fit, or None.
    weights : aggregation weights over domains (None with implicit aggregation).
    notes : what was left out and why.
    sources, domains, progress : names of the sources and domains, the progress unit.
    model : the fitted estimator this target belongs to (for run-id baselines and
        repetition-aware prediction).

    Examples
    --------
    The result carries its own actions (``predict``, ``optimize``, ``report``):

    >>> import mixlaws as ml
    >>> model = ml.NestedMixingLaw(tie_beta="all").fit("fixtures/sweep.csv")
    >>> at = model.target(params=1e9, tokens=2e10)
    >>> loss = at.predict({"web": 0.6, "code": 0.1, "books": 0.1, "papers": 0.1, "wiki": 0.1})
    >>> round(loss, 2)
    3.24
    >>> best = at.optimize(baseline="web=0.6,code=0.1,books=0.1,papers=0.1,wiki=0.1",
    ...                    constraints="fixtures/constraints.yaml")
    >>> best.predicted_loss < loss
    True
    >>> print(best.export("megatron").splitlines()[0].split()[1])
    web
    """

    params: float
    tokens: float
    mixtures: np.ndarray
    mixture_labels: tuple[str, ...]
    stage_losses: np.ndarray
    size: StageFit | None
    mixing: StageFit
    implicit: StageFit | None
    weights: np.ndarray | None
    notes: tuple[str, ...]
    sources: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    progress: str = "tokens"
    model: Any = field(default=None, compare=False, repr=False)

    def domain_losses(self, r: jnp.ndarray) -> jnp.ndarray:
        """Per-domain predicted losses ``(..., n_domains)`` of mixtures ``r (..., M)`` (JAX)."""
        return mixing_stage_law(r, self.mixing.params)

    def loss(self, r: jnp.ndarray) -> jnp.ndarray:
        """Aggregate predicted loss of mixtures ``r (..., M)`` (JAX, differentiable)."""
        if self.implicit is not None:
            p = self.implicit.params
            return implicit_mixing_law(r, p["c"][0], jnp.asarray(p["a"][0]), jnp.asarray(p["t"][0]))
        return explicit_aggregate(self.domain_losses(r), jnp.asarray(self.weights))

    # -- actions (predict, extrapolation, optimize: TargetActions) --------------------------------


class NestedMixingLaw(Estimator):
    """Data mixing laws nested with step and size power laws.

    Parameters
    ----------
    val_weights : optional mapping {validation domain: weight} for explicit
        aggregation ``L = sum_d w_d L_d`` (normalised; unnamed domains get 0).
    implicit : number ``K`` of latent domains for implicit aggregation of the
        mean validation loss; mutually exclusive with ``val_weights``.
    tie_beta : ``"run"`` (default, as in Ye et al.) shares the step exponent
        across a run's validation domains; ``"none"`` fits one per domain.
    tie_alpha : ``"all"`` (default) one size exponent for every mixture and
        domain, ``"domain"`` one per domain, ``"none"`` one per mixture and domain.
    mixing_terms : number ``K`` of exponential terms of each domain's mixing law,
        ``L_d(r) = c_d + sum_(k=1..K) exp(a_dk + t_dk . r)``; 1 (default) is Ye et al.'s
        ``c_d + k_d exp(t_d . r)``.  More terms fit a domain whose loss responds to the
        sources like a blend of sub-domains (the ``nested-sum`` family, K=2) and need
        ``K M + 2`` distinct mixtures.
    warmup : checkpoints with tokens below ``warmup`` x the run's last tokens
        are dropped before the step fit (default 0.1; Choshen et al. 2025).
    min_checkpoints : a run needs this many checkpoints after warm-up for a step law.
    delta : Huber threshold on log-residuals (default 1e-3, Hoffmann et al.).
    seed : seed of the random starts.

    Attributes (after ``fit``)
    --------------------------
    sources_, domains_ : names.
    weights_ : aggregation weights (None with implicit aggregation).
    runs_ : dict of per-run arrays (run, params, mixture, n_checkpoints, last_tokens, last_losses).
    mixtures_ : ``(n_mix, M)`` distinct mixtures; ``mixture_labels_`` their labels: the
        table's ``name`` column where it names a mixture uniquely, else its first run's id.
    step_ : the step-stage :class:`StageFit` or None; ``step_runs_`` runs it covers.
    notes_ : what the fit left out and why.
    reading_ : how the table was read (``renormalize``, ``nan_policy``) and its
        ``table_sha256`` (:meth:`RunsTable.content_hash`), so later steps read it the same way.
    """

    def __init__(self, *, val_weights: Mapping[str, float] | None = None,
                 implicit: int | None = None, tie_beta: str = "run", tie_alpha: str = "all",
                 mixing_terms: int = 1, warmup: float = WARMUP, min_checkpoints: int = 3,
                 delta: float = 1e-3, seed: int = 0) -> None:
        self.val_weights = val_weights
        self.implicit = implicit
        self.tie_beta = tie_beta
        self.tie_alpha = tie_alpha
        self.mixing_terms = mixing_terms
        self.warmup = warmup
        self.min_checkpoints = min_checkpoints
        self.delta = delta
        self.seed = seed

    # -- settings ------------------------------------------------------------------------------
    @property
    def family(self) -> str:
        """The registered family these settings make (``nested``, ``nested-tied``,
        ``nested-sum``: the one whose settings match on every setting a nested family fixes),
        else ``"nested"`` with the distinguishing settings in parentheses."""
        import inspect

        from ._families import FAMILIES

        nested = [f for f in FAMILIES.values() if f.estimator is type(self)]
        keys = sorted({k for f in nested for k in f.settings})
        default = {k: inspect.signature(type(self)).parameters[k].default for k in keys}
        mine = {k: getattr(self, k) for k in keys}
        for f in nested:
            if all(mine[k] == f.settings.get(k, default[k]) for k in keys):
                return f.name
        return "nested (" + ", ".join(f"{k}={v!r}" for k, v in mine.items()) + ")"

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor settings, JSON-ready (always copies; ``deep`` is accepted for clone)."""
        vw = None if self.val_weights is None else {k: float(v) for k, v in self.val_weights.items()}
        return {"val_weights": vw, "implicit": self.implicit, "tie_beta": self.tie_beta,
                "tie_alpha": self.tie_alpha, "mixing_terms": int(self.mixing_terms),
                "warmup": float(self.warmup),
                "min_checkpoints": int(self.min_checkpoints), "delta": float(self.delta),
                "seed": int(self.seed)}

    def _check_settings(self) -> None:
        if self.tie_beta not in TIE_BETA:
            raise MixlawsError(f"tie_beta must be one of {TIE_BETA}, not {self.tie_beta!r}")
        if self.tie_alpha not in TIE_ALPHA:
            raise MixlawsError(f"tie_alpha must be one of {TIE_ALPHA}, not {self.tie_alpha!r}")
        if self.implicit is not None and self.val_weights is not None:
            raise MixlawsError("choose explicit validation weights or implicit aggregation, not both")
        K = self.mixing_terms
        if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
            raise MixlawsError(f"mixing_terms must be an integer ≥ 1, not {self.mixing_terms!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise MixlawsError(f"warmup must be in [0, 1), not {self.warmup}")

    def _weights(self, domains: Sequence[str]) -> np.ndarray | None:
        if self.implicit is not None:
            return None
        if self.val_weights is None:
            return np.full(len(domains), 1.0 / len(domains))
        unknown = sorted(set(self.val_weights) - set(domains))
        if unknown:
            raise MixlawsError(
                f"validation weights name domains absent from the runs table: {unknown}; "
                f"the table has loss columns for {list(domains)}", domains=unknown)
        w = np.array([float(self.val_weights.get(d, 0.0)) for d in domains])
        if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise MixlawsError("validation weights must be finite, ≥ 0 and not all zero")
        return w / w.sum()

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, runs: "RunsTable | Any", *, renormalize: bool = False) -> "NestedMixingLaw":
        """Fit the step law of every run with enough checkpoints; return self.

        Parameters
        ----------
        runs : a :class:`~mixlaws.runs.RunsTable`, a DataFrame in the runs-table layout, or
            the path of a CSV/Parquet file (read and validated by :func:`~mixlaws.runs.read_runs`).
        renormalize : rescale mixtures that do not sum to 1 (else an error) when reading.

        Examples
        --------
        >>> import mixlaws as ml
        >>> model = ml.NestedMixingLaw(tie_beta="all").fit("fixtures/sweep.csv")
        >>> model.sources_
        ('web', 'code', 'books', 'papers', 'wiki')
        >>> len(model.runs_["run"]), bool(model.step_.converged.all())
        (64, True)
        """
        from ..runs import as_runs

        runs = as_runs(runs, renormalize=renormalize)
        self._check_settings()
        df = runs.data
        sources, domains = tuple(runs.sources), tuple(runs.domains)
        weights = self._weights(domains)
        mix_cols = [f"mix:{s}" for s in sources]
        loss_cols = [f"loss:{d}" for d in domains]
        first = df.groupby("run", sort=False).head(1)
        mixtures, inverse = np.unique(first[mix_cols].to_numpy(float), axis=0, return_inverse=True)
        order = np.argsort([np.flatnonzero(inverse == i)[0] for i in range(len(mixtures))])
        remap = np.empty_like(order)
        remap[order] = np.arange(order.size)
        mixtures, inverse = mixtures[order], remap[np.ravel(inverse)]
        need = self.mixing_terms * len(sources) + 2
        if self.mixing_terms > 1 and len(mixtures) < need:
            raise InsufficientDataError(
                f"a mixing law of {self.mixing_terms} terms over {len(sources)} sources has "
                f"{need - 1} parameters per domain and needs ≥ {need} distinct mixtures; the "
                f"table has {len(mixtures)} (use the one-term law: --law nested)",
                needed=need, found=len(mixtures))
        run_ids = first["run"].astype(str).tolist()
        labels = [run_ids[int(np.flatnonzero(inverse == i)[0])] for i in range(len(mixtures))]
        if "name" in first:  # a name/mixture column labels mixtures (its first run's name)
            names = first["name"].astype(str).tolist()
            named = [names[int(np.flatnonzero(inverse == i)[0])] for i in range(len(mixtures))]
            labels = [n if n and named.count(n) == 1 else r for n, r in zip(named, labels)]
        notes: list[str] = list(runs.notes)

        tok, los, step_runs = [], [], []
        last_tokens, last_losses, n_ckpt = [], [], []
        lawless: list[tuple[str, str]] = []   # (run, domain) cells too few for a step law
        for i, (run, g) in enumerate(df.groupby("run", sort=False)):
            t = g["tokens"].to_numpy(float)
            L = g[loss_cols].to_numpy(float)
            last_tokens.append(t[-1])
            last_losses.append(L[-1])
            keep = after_warmup(t, self.warmup)
            n_ckpt.append(int(keep.sum()))
            if keep.sum() >= self.min_checkpoints:
                step_runs.append(i)
                tok.append(t[keep])
                los.append(L[keep])
                few = np.isfinite(L[keep]).sum(0) < self.min_checkpoints
                lawless += [(str(run), domains[d]) for d in np.flatnonzero(few)]
        dropped_runs = len(run_ids) - len(step_runs)
        step = None
        if step_runs:
            C = max(len(t) for t in tok)
            T = np.ones((len(step_runs), C))
            Y = np.ones((len(step_runs), C, len(domains)))
            W = np.zeros((len(step_runs), C, len(domains)))
            for j, (t, L) in enumerate(zip(tok, los)):
                cells = np.isfinite(L)
                cells[:, cells.sum(0) < self.min_checkpoints] = False
                T[j, :len(t)], W[j, :len(t)] = t, cells
                Y[j, :len(t)] = np.where(cells, L, 1.0)
            step = fit_step_stage([run_ids[i] for i in step_runs], T, Y, W, tie=self.tie_beta,
                                  delta=self.delta, domains=domains)
            if lawless:
                notes.append(f"{len(lawless)} (run, domain) pair(s) have fewer than "
                             f"{self.min_checkpoints} non-missing losses after warm-up and no "
                             f"step law (e.g. run '{lawless[0][0]}', domain '{lawless[0][1]}'); "
                             "they are left out of that domain's size and mixing stages")
            if dropped_runs:
                notes.append(f"{dropped_runs} run(s) have fewer than {self.min_checkpoints} "
                             f"checkpoints after warm-up and have no step law")
        else:
            notes.append("no run has ≥ %d checkpoints after warm-up: no step law; predictions "
                         "only at the runs' own training tokens" % self.min_checkpoints)
        self.sources_, self.domains_, self.weights_ = sources, domains, weights
        self.progress_ = runs.progress
        self.source_path_ = runs.path
        self.reading_ = {"renormalize": bool(runs.renormalize), "nan_policy": runs.nan_policy,
                         "table_sha256": runs.content_hash()}
        self.runs_ = {
            "run": run_ids, "params": first["params"].to_numpy(float),
            "mixture": np.asarray(inverse, int), "n_checkpoints": np.asarray(n_ckpt, int),
            "last_tokens": np.asarray(last_tokens, float),
            "last_losses": np.asarray(last_losses, float).reshape(len(run_ids), len(domains)),
        }
        self.mixtures_, self.mixture_labels_ = mixtures, tuple(labels)
        self.step_, self.step_runs_ = step, np.asarray(step_runs, int)
        self.notes_ = tuple(notes)
        self._targets: dict[tuple[float, float], TargetFit] = {}
        self._warm_mixing: dict[tuple[float, float], Mapping[str, np.ndarray]] = {}
        return self

    # -- artifact and report (FIT.json is owned here, not by the CLI) ----------------------------
    def to_dict(self) -> dict[str, Any]:
        """The FIT.json document (see :func:`~mixlaws.fit.model_to_dict`)."""
        from ._artifact import model_to_dict

        return model_to_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "NestedMixingLaw":
        """Rebuild a fitted model from :meth:`to_dict`."""
        from ._artifact import model_from_dict

        return model_from_dict(dict(d))

    @classmethod
    def load(cls, path: Any) -> "NestedMixingLaw":
        """Read FIT.json written by :meth:`save`."""
        from ._artifact import load_model

        return load_model(path)

    def without_runs(self, run_ids: Sequence[str], *, warm: bool = False) -> "NestedMixingLaw":
        """A fitted copy that forgets the runs ``run_ids`` (their step laws and losses).

        Used by backtests that hold out whole runs (e.g. mixtures) to skip refitting the
        step stage.  With ``tie_beta`` ``"run"`` or ``"none"`` each run's step law depends
        only on its own checkpoints, so the copy predicts as a refit without those runs
        would (up to the optimiser's tolerance); with ``"all"`` the shared exponent still
        carries the forgotten runs' checkpoints.  ``step_`` keeps the full fit's
        diagnostics (``rmse``, ...); only its per-run arrays are subset.

        Its mixing stages are refitted from the usual starts (``warm=False``, the default):
        an estimate of out-of-sample error must not start from a fit that saw the held-out
        runs.  On Ye et al.'s tables, starting the mixing stage from this model's moved the
        held-out predictions by up to 0.43 % (RedPajama, held-out mixtures) and 0.35 %
        (5-group, held-out 410M runs), and made the backtest errors 2-4 % (relative) smaller:
        with a flat objective, the basin the full fit found also suits the held-out runs.
        ``warm=True`` starts each one-term mixing stage from this model's at the targets it
        has fitted (one start instead of the multi-start), falling back to the usual starts
        where that does not converge: faster, for uses that are not out-of-sample estimates.
        A law of several terms has many basins and always keeps its multi-start.
        """
        self._check_fitted()
        drop = set(map(str, run_ids))
        unknown = sorted(drop - set(self.runs_["run"]))
        if unknown:
            raise MixlawsError(f"without_runs: {len(unknown)} run(s) are not in the fit "
                               f"(e.g. {unknown[0]!r})", runs=unknown)
        keep = np.array([r not in drop for r in self.runs_["run"]])
        if not keep.any():
            raise InsufficientDataError("without_runs: no run would be left", needed=1, found=0)
        out = copy.copy(self)
        out.runs_ = {k: ([v[i] for i in np.flatnonzero(keep)] if isinstance(v, list) else v[keep])
                     for k, v in self.runs_.items()}
        new_index = np.cumsum(keep) - 1
        kept_step = keep[self.step_runs_]
        out.step_runs_ = new_index[self.step_runs_[kept_step]]
        if self.step_ is not None:
            step = self.step_
            out.step_ = None if not kept_step.any() else dataclasses.replace(
                step, labels=tuple(np.asarray(step.labels, object)[kept_step].tolist()),
                params={k: v[kept_step] for k, v in step.params.items()},
                stderr={k: v[kept_step] for k, v in step.stderr.items()},
                converged=step.converged[kept_step], at_bound=step.at_bound[kept_step])
        out.notes_ = self.notes_ + (f"{len(drop)} run(s) forgotten after the fit",)
        out._warm_mixing = ({**getattr(self, "_warm_mixing", {}),
                             **{k: t.mixing.params for k, t in self._targets.items()}}
                            if warm else {})
        out._targets = {}
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "step_runs_"):
            raise NotFittedError("this NestedMixingLaw is not fitted yet: call fit(runs) first")

    # -- prediction ----------------------------------------------------------------------------
    def losses_at_tokens(self, tokens: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-run, per-domain losses ``(n_runs, n_domains)`` at ``tokens`` and which runs have
        them in every domain (the data of the size stage; see :meth:`cells_at_tokens`)."""
        out, ok = self.cells_at_tokens(tokens)
        return out, ok.all(1)

    def cells_at_tokens(self, tokens: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-run, per-domain losses at ``tokens`` (nan where unavailable) and availability.

        A run's loss at ``D*`` is its step law ``E_d + B_d D*^(-beta)`` where it has one (also at
        the run's own last tokens); otherwise its last checkpoint's loss if it ends at ``tokens``.
        A cell missing from the table (``nan_policy="omit"``) without a step law stays unavailable.
        """
        R = self.runs_
        n, nd = R["last_losses"].shape
        out = np.full((n, nd), np.nan)
        if self.step_ is not None:
            p = self.step_.params
            beta = p["beta"] if p["beta"].ndim == 2 else p["beta"][:, None]
            out[self.step_runs_] = np.asarray(step_law(tokens, p["E"], p["B"], beta))
        exact = np.array([_same(t, tokens) for t in R["last_tokens"]])
        fill = exact[:, None] & ~np.isfinite(out)
        out[fill] = R["last_losses"][fill]
        ok = np.isfinite(out)                    # (n_runs, n_domains): a missing cell is False
        if not ok.any():
            ends = sorted({float(t) for t in R["last_tokens"]})
            raise ScaleError(
                f"cannot predict at tokens={tokens:.6g}: no run has a step law (each needs "
                f"≥ {self.min_checkpoints} checkpoints after warm-up) and no run ends there; "
                f"the runs end at {', '.join(f'{t:.6g}' for t in ends[:5])} {self.progress_}",
                tokens=tokens)
        return out, ok

    def target(self, params: float, tokens: float) -> TargetFit:
        """Fit the size and mixing stages at ``(params, tokens)`` (cached)."""
        self._check_fitted()
        params, tokens = check_scale(params, tokens)
        key = (params, tokens)
        if key in self._targets:
            return self._targets[key]
        L, ok = self.cells_at_tokens(tokens)
        R = self.runs_
        notes: list[str] = []
        nd = len(self.domains_)
        run_any = ok.any(1)
        if (~run_any).any():
            notes.append(f"{int((~run_any).sum())} run(s) have no loss at tokens={tokens:.6g} "
                         f"and are left out")
        partial = run_any & ~ok.all(1)
        if partial.any():
            notes.append(f"{int(partial.sum())} run(s) lack a loss at tokens={tokens:.6g} in "
                         f"{int((~ok[partial]).sum())} (run, domain) cell(s) (missing losses) "
                         "and are left out of those domains only")

        def n_sizes(m: int) -> int:   # fewest model sizes of mixture m over the domains
            return min(np.unique(R["params"][ok[:, d] & (R["mixture"] == m)]).size
                       for d in range(nd))

        sizes = np.unique(R["params"][run_any])
        mix_ids = np.unique(R["mixture"][run_any])
        size_fit = None
        if sizes.size == 1:
            if not _same(sizes[0], params):
                raise ScaleError(
                    f"the runs have a single model size ({sizes[0]:.6g} params): the size law "
                    f"cannot be fitted, so predictions are only possible at params={sizes[0]:.6g}, "
                    f"not {params:.6g}; train the sweep at ≥ 3 sizes to extrapolate", params=params)
            used = [m for m in mix_ids if n_sizes(m) >= 1]
            if len(used) < len(mix_ids):
                notes.append(f"{len(mix_ids) - len(used)} mixture(s) lack a loss in some domain "
                             "at the target and are left out of the mixing stage")
            Y = np.array([[L[ok[:, d] & (R["mixture"] == m), d].mean() for d in range(nd)]
                          for m in used]).reshape(len(used), nd)
        else:
            need = 3 if self.tie_alpha == "none" else 2
            used = [m for m in mix_ids if n_sizes(m) >= need]
            left = len(mix_ids) - len(used)
            if left:
                notes.append(f"{left} mixture(s) have runs at fewer than {need} model sizes (in "
                             f"some domain) and are left out of the size stage")
            if not used:
                most = max(n_sizes(m) for m in mix_ids)
                raise InsufficientDataError(
                    f"size stage: each mixture needs runs at ≥ {need} model sizes "
                    f"(tie_alpha={self.tie_alpha!r}); found at most {most}", needed=need, found=most)
            S = max(int((run_any & (R["mixture"] == m)).sum()) for m in used)
            G = len(used) * nd
            Ns, Ys, Ws = np.ones((G, S)), np.ones((G, S)), np.zeros((G, S))
            labels, dom_idx = [], []
            for a, m in enumerate(used):
                for d in range(nd):
                    sel = ok[:, d] & (R["mixture"] == m)
                    g = a * nd + d
                    k = int(sel.sum())
                    Ns[g, :k], Ys[g, :k], Ws[g, :k] = R["params"][sel], L[sel, d], 1.0
                    labels.append(f"{self.mixture_labels_[m]}/{self.domains_[d]}")
                    dom_idx.append(d)
            size_fit = fit_size_stage(labels, Ns, Ys, Ws, np.asarray(dom_idx), nd,
                                      tie=self.tie_alpha, delta=self.delta)
            p = size_fit.params
            Y = np.asarray(size_law(params, p["E"], p["A"], p["alpha"])).reshape(len(used), nd)
        mixtures = self.mixtures_[used]
        mixing = refit_mixing_stage(self.domains_, mixtures, Y, self.mixing_terms,
                                    delta=self.delta, seed=self.seed,
                                    warm=getattr(self, "_warm_mixing", {}).get(key))
        implicit = None
        if self.implicit is not None:
            implicit = fit_implicit_stage(mixtures, Y.mean(1), self.implicit, delta=self.delta,
                                          seed=self.seed)
        fit = TargetFit(params=params, tokens=tokens, mixtures=mixtures,
                        mixture_labels=tuple(self.mixture_labels_[m] for m in used),
                        stage_losses=Y, size=size_fit, mixing=mixing, implicit=implicit,
                        weights=self.weights_, notes=tuple(notes), sources=self.sources_,
                        domains=self.domains_, progress=self.progress_, model=self)
        self._targets[key] = fit
        return fit

    def predict(self, mixtures: np.ndarray, params: float, tokens: float) -> dict[str, np.ndarray]:
        """Predict aggregate and per-domain losses of ``mixtures (n, M)`` at ``(params, tokens)``.

        Returns ``{"loss": (n,), "domains": (n, n_domains)}``.
        """
        fit = self.target(params, tokens)
        r = jnp.asarray(np.atleast_2d(np.asarray(mixtures, float)))
        return {"loss": np.asarray(fit.loss(r)), "domains": np.asarray(fit.domain_losses(r))}

    def observed(self, run_index: np.ndarray) -> np.ndarray:
        """Aggregate observed loss at the last checkpoint of the given runs."""
        L = self.runs_["last_losses"][run_index]
        if self.weights_ is None:
            return L.mean(1)
        return L @ self.weights_
