"""The joint alternative to nesting: one law in mixture, model size and tokens.

Per validation domain ``d``, fitted to every post-warm-up checkpoint of every run at once:

.. math::

    L_d(r, N, D) = c_d + k_d \\exp(t_d \\cdot r) + A_d N^{-\\alpha_d} + B_d D^{-\\beta_d},
    \\qquad \\sum_j t_{dj} = 0

(:func:`mixlaws.laws.joint_law`; Chinchilla's form with a mixture-dependent
irreducible term, in the spirit of Shukor et al. 2025).  It needs no per-run
extrapolation, so it fits any table shape whose scales identify the size and data
terms: sweeps with many checkpoints per run (Ye et al. 2024), final-loss-only
tables (one checkpoint per run at several sizes and token counts, the Chinchilla
shape), one source or many.  With one source (``M = 1``) ``c + k exp(t . r)`` is the
constant ``c + k``, so ``k`` is dropped and the law is Chinchilla's
``E + A N^-alpha + B D^-beta`` with ``E = c`` (``k = 0``, ``t = 0`` in ``fit_.params``).

Fitting follows DESIGN §4 (the Chinchilla refit of Besiroglu et al. 2024): the
**sum** of Huber terms (``delta = 1e-3``) on log-losses, exact JAX Jacobians
(:func:`mixlaws.fit.solve_groups`), positive parameters in log space (``k``,
``A``, ``B``, ``alpha``, ``beta``; ``c`` is boxed in ``[0, min loss]``), the
amplitudes taken at the data's geometric-mean scales ``N_ref, D_ref`` to
decorrelate them from the exponents, and a Latin hypercube of starts over
``(c, log A_ref, log alpha, log B_ref, log beta)`` (plus random mixture effects) with
the best kept per domain, tried until :data:`~mixlaws.fit._stages.AGREE_STARTS` of them have
reached every domain's best objective (on Ye et al.'s RedPajama table the fit and its backtest
folds stop after a few of the 12 starts: 2.8-4.4x faster, 1B predictions within 4e-8 of the
all-starts fit).  Convergence (Newton decrement) is checked and a
:class:`~mixlaws.errors.ConvergenceWarning` raised when it fails.

The estimator also builds, at a target ``(N*, D*)``, a :class:`JointTarget` whose
``loss(r)`` (JAX, differentiable) and ``domain_losses(r)`` the optimiser uses, and
round-trips through JSON (``to_dict`` / ``from_dict``) exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.stats import qmc

from .. import _config  # noqa: F401
from .._version import __version__
from ..errors import ArtifactError, InsufficientDataError, MixtureError, NotFittedError
from ..laws import LAWS, joint_law, power_law_log, sum_zero_basis
from ..runs._warmup import WARMUP, drop_warmup
from ._base import Estimator
from ._target import TargetActions, check_scale
from ._engine import GroupSolution, solve_groups
from ._stages import AGREE_STARTS, StageFit, _log_stderr, _summarise

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import RunsTable

__all__ = ["JointMixingLaw", "JointTarget", "MIN_SCALES"]

MIN_SCALES = 5
"""Distinct (params, tokens) scales a table needs for ``c + A N^-alpha + B D^-beta``
(five parameters) to be identified.  It also needs ≥ 3 model sizes and ≥ 3 token counts:
at two sizes ``c + A N^-alpha`` takes two values for three parameters, and every point of
that ridge fits exactly (noiseless, 2 sizes x 3 token budgets: 14 % off at 1e9 params)."""


def _joint_residual(theta: jnp.ndarray, data: Any) -> jnp.ndarray:
    RH, xN, xD, y = data
    m1 = RH.shape[1]
    c, lk, u = theta[0], theta[1], theta[2:2 + m1]
    lA, la, lB, lb = theta[2 + m1:]
    pred = joint_law(RH, jnp.exp(xN), jnp.exp(xD), c, jnp.exp(lk), u, jnp.exp(lA), jnp.exp(la),
                     jnp.exp(lB), jnp.exp(lb))                # r . t = (r H) . u
    return jnp.log(pred) - jnp.log(y)


def _scale_residual(theta: jnp.ndarray, data: Any) -> jnp.ndarray:
    """One source: ``E + A_ref (N/N_ref)^-alpha + B_ref (D/D_ref)^-beta`` (no mixture term)."""
    _, xN, xD, y = data
    c, lA, la, lB, lb = theta
    pred = power_law_log(xN, c, jnp.exp(lA), jnp.exp(la)) + power_law_log(xD, 0.0, jnp.exp(lB),
                                                                           jnp.exp(lb))
    return jnp.log(pred) - jnp.log(y)


def _n_joint(M: int) -> int:
    """Parameters per domain of the plain joint law (``c, k, M-1 contrasts, A, alpha, B, beta``;
    without ``k`` and contrasts for one source)."""
    return 5 if M == 1 else 2 + (M - 1) + 4


@dataclass(frozen=True)
class JointTarget(TargetActions):
    """A joint-family law evaluated at one target scale ``(params, tokens)``.

    The counterpart of :class:`~mixlaws.fit.TargetFit` for the joint families: the
    optimiser and the CLI only use :meth:`loss` and :meth:`domain_losses`.

    Attributes
    ----------
    params, tokens : target ``N*`` and ``D*``.
    law : name of the law in :data:`mixlaws.laws.LAWS`.
    coef : per-domain parameters of that law, ``(n_domains,)`` arrays, matrices as
        ``(n_domains, M)`` (the law evaluates every domain at once).
    weights : aggregation weights over domains.
    sources, domains, progress : names and the table's progress unit.
    mixtures : the fitted mixtures (for extrapolation distances and trust regions).
    model : the fitted estimator.
    """

    params: float
    tokens: float
    law: str
    coef: dict[str, np.ndarray]
    weights: np.ndarray
    sources: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    progress: str = "tokens"
    mixtures: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    model: Any = field(default=None, compare=False, repr=False)

    def domain_losses(self, r: jnp.ndarray) -> jnp.ndarray:
        """Per-domain predicted losses ``(..., n_domains)`` of mixtures ``r (..., M)`` (JAX)."""
        coef = {k: jnp.asarray(v) for k, v in self.coef.items()}
        return LAWS[self.law].func(jnp.asarray(r), self.params, self.tokens, **coef)

    def loss(self, r: jnp.ndarray) -> jnp.ndarray:
        """Aggregate predicted loss ``sum_d w_d L_d(r)`` of mixtures ``r (..., M)`` (JAX)."""
        return self.domain_losses(r) @ jnp.asarray(self.weights)


def _run_summary(df: pd.DataFrame, sources: tuple[str, ...], domains: tuple[str, ...],
                 warmup: float) -> tuple[dict[str, Any], np.ndarray, tuple[str, ...]]:
    """Per-run summary (the same fields as the nested model's ``runs_``), mixtures, labels."""
    last = df.groupby("run", sort=False).tail(1)
    kept = drop_warmup(df, warmup).groupby("run", sort=False).size()
    mix = last[[f"mix:{s}" for s in sources]].to_numpy(float)
    codes, _ = pd.factorize(pd.Series([row.tobytes() for row in mix]))
    first = [int(np.flatnonzero(codes == m)[0]) for m in range(codes.max() + 1)]
    run_ids = last["run"].astype(str).tolist()
    runs = {"run": run_ids, "params": last["params"].to_numpy(float),
            "mixture": np.asarray(codes, int),
            "n_checkpoints": kept.reindex(last["run"]).fillna(0).to_numpy(int),
            "last_tokens": last["tokens"].to_numpy(float),
            "last_losses": last[[f"loss:{d}" for d in domains]].to_numpy(float)}
    return runs, mix[first], tuple(run_ids[i] for i in first)


class JointMixingLaw(Estimator):
    """Joint law ``L_d(r, N, D)`` fitted per validation domain (see the module docstring).

    Parameters
    ----------
    val_weights : optional {domain: weight} for the aggregate (default: plain mean).
    warmup : drop checkpoints below this fraction of a run's last tokens.
    delta : Huber threshold on log-residuals.
    n_starts : Latin-hypercube starts per domain (at most: the fit stops trying them once
        ``AGREE_STARTS`` agree on every domain's best objective).
    seed : seed of the starts.

    Attributes (after ``fit``)
    --------------------------
    sources_, domains_, weights_ : names and aggregation weights.
    fit_ : :class:`~mixlaws.fit.StageFit` with canonical ``c, k, t, A, alpha, B, beta``.
    logNref_, logDref_ : log of the reference scales of the internal amplitudes.
    runs_, mixtures_, mixture_labels_ : per-run summary and distinct mixtures (as the nested model).
    progress_, source_path_, notes_ : the table's progress unit, path and notes.
    """

    family = "joint"
    law = "joint"

    def __init__(self, *, val_weights: Mapping[str, float] | None = None, warmup: float = WARMUP,
                 delta: float = 1e-3, n_starts: int = 12, seed: int = 0) -> None:
        self.val_weights = val_weights
        self.warmup = warmup
        self.delta = delta
        self.n_starts = n_starts
        self.seed = seed

    # -- data ----------------------------------------------------------------------------------
    def _prepare(self, runs: "RunsTable", n_params: int) -> tuple[np.ndarray, ...]:
        """Check the table identifies the law; set the summary attributes; return the design."""
        from ._nested import NestedMixingLaw

        sources, domains = tuple(runs.sources), tuple(runs.domains)
        df = drop_warmup(runs.data, self.warmup)
        n_size, n_tok = df["params"].nunique(), df["tokens"].nunique()
        n_scale = len(df[["params", "tokens"]].drop_duplicates())
        where = f"{runs.path}: " if runs.path else ""
        if n_size < 3 or n_tok < 3 or n_scale < MIN_SCALES:
            raise InsufficientDataError(
                f"{where}the {self.family} law needs runs at ≥ 3 model sizes, ≥ 3 distinct token "
                f"counts and ≥ {MIN_SCALES} distinct (params, tokens) scales after warm-up; found "
                f"{n_size}, {n_tok} and {n_scale}: add runs at other sizes or token counts, or "
                f"use --law nested",
                needed=MIN_SCALES, found=n_scale)
        runs_, mixtures, labels = _run_summary(runs.data, sources, domains, self.warmup)
        M = len(sources)
        if M > 1 and len(mixtures) < M + 1:
            raise InsufficientDataError(
                f"{where}the mixture term c + k exp(t . r) of {M} sources needs ≥ {M + 1} distinct "
                f"mixtures; found {len(mixtures)}: add runs at other mixtures or drop constant "
                f"mix: columns", needed=M + 1, found=len(mixtures))
        n = len(df)
        if n < n_params + 1:
            raise InsufficientDataError(
                f"{where}the {self.family} law has {n_params} parameters per domain and needs "
                f"≥ {n_params + 1} checkpoints after warm-up; found {n}",
                needed=n_params + 1, found=n)
        self.weights_ = NestedMixingLaw(val_weights=self.val_weights)._weights(domains)
        self.sources_, self.domains_ = sources, domains
        self.runs_, self.mixtures_, self.mixture_labels_ = runs_, mixtures, labels
        self.progress_, self.source_path_ = runs.progress, runs.path
        self.notes_ = tuple(runs.notes)
        R = df[[f"mix:{s}" for s in sources]].to_numpy(float)
        logN, logD = np.log(df["params"].to_numpy(float)), np.log(df["tokens"].to_numpy(float))
        self.logNref_, self.logDref_ = float(logN.mean()), float(logD.mean())
        Y = df[[f"loss:{d}" for d in domains]].to_numpy(float).T          # (nd, n)
        # cells left missing by ``nan_policy="omit"`` get weight 0 (and a finite placeholder,
        # the domain's median, so residuals stay finite); every other checkpoint weight 1
        W = np.isfinite(Y).astype(float)
        Y = np.where(W > 0, Y, np.nanmedian(Y, axis=1, keepdims=True))
        return R, logN - self.logNref_, logD - self.logDref_, Y, W

    # -- the plain joint law -------------------------------------------------------------------
    def _n_params(self, M: int) -> int:
        """Free parameters per domain of this family's law."""
        return _n_joint(M)

    def _solve(self, R: np.ndarray, xN: np.ndarray, xD: np.ndarray, Y: np.ndarray,
               W: np.ndarray) -> tuple[GroupSolution, np.ndarray]:
        """Fit the plain joint law of every domain; the solution and the sum-zero basis."""
        nd, n = Y.shape
        M = R.shape[1]
        H = sum_zero_basis(M)
        data = tuple(jnp.broadcast_to(jnp.asarray(a), (nd,) + a.shape)
                     for a in (R @ H, xN, xD)) + (jnp.asarray(Y),)
        bounds, starts = self._joint_starts(Y, M)
        residual = _scale_residual if M == 1 else _joint_residual
        sol = solve_groups(residual, data, W, bounds, starts, delta=self.delta,
                           agree=AGREE_STARTS, pad=True)
        return sol, H

    def _joint_starts(self, Y: np.ndarray, M: int) -> tuple[np.ndarray, np.ndarray]:
        """Box bounds ``(nd, P, 2)`` and starts ``(n_starts, nd, P)`` of the plain joint law."""
        nd = Y.shape[0]
        m1 = M - 1 if M > 1 else 0
        P = _n_joint(M)
        ymin, ymax = Y.min(1), Y.max(1)
        big = np.log(10 * ymax)
        o = 1 if M == 1 else 1 + M      # index of log A_ref; then log alpha, log B_ref, log beta
        bounds = np.zeros((nd, P, 2))
        bounds[:, 0] = np.stack([np.zeros(nd), ymin], -1)
        if M > 1:
            bounds[:, 1] = np.stack([np.full(nd, -30.0), big], -1)
            bounds[:, 2:1 + M] = [-50.0, 50.0]
        for j in (o, o + 2):            # log amplitudes at the reference scales
            bounds[:, j] = np.stack([np.full(nd, -30.0), big], -1)
        for j in (o + 1, o + 3):        # log exponents in (1e-3, 2)
            bounds[:, j] = [np.log(1e-3), np.log(2.0)]
        rng = np.random.default_rng(self.seed)
        S = int(self.n_starts)
        # Latin hypercube over (c / min y, log A_ref / min y, log alpha, log B_ref / min y, log beta)
        lo = np.array([0.1, np.log(0.02), np.log(0.05), np.log(0.02), np.log(0.05)])
        hi = np.array([0.95, 0.0, 0.0, 0.0, 0.0])
        design = lo + qmc.LatinHypercube(d=5, seed=rng).random(S) * (hi - lo)
        starts = np.zeros((S, nd, P))
        starts[:, :, 0] = design[:, :1] * ymin
        for j, col, rel in ((o, 1, True), (o + 1, 2, False), (o + 2, 3, True), (o + 3, 4, False)):
            starts[:, :, j] = design[:, col:col + 1] + (np.log(ymin) if rel else 0.0)
        for s in range(S if M > 1 else 0):
            starts[s, :, 1] = np.log(rng.uniform(0.05, 0.3) * ymin)
            starts[s, :, 2:1 + M] = 0.0 if s == 0 else rng.normal(0, 1.0, (nd, m1))
        return bounds, starts

    def _canonical(self, sol: GroupSolution, H: np.ndarray, M: int
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, float]]:
        """Canonical parameters, standard errors and median correlations of the plain joint law."""
        th, cov = sol.theta, sol.cov
        nd = th.shape[0]
        o = 1 if M == 1 else 1 + M      # index of log A_ref
        iA, ia, iB, ib = o, o + 1, o + 2, o + 3
        alpha, beta = np.exp(th[:, ia]), np.exp(th[:, ib])
        if M == 1:
            k, t = np.zeros(nd), np.zeros((nd, 1))
        else:
            k, t = np.exp(th[:, 1]), th[:, 2:1 + M] @ H.T
        params = {"c": th[:, 0].copy(), "k": k, "t": t,
                  "A": np.exp(th[:, iA] + alpha * self.logNref_), "alpha": alpha,
                  "B": np.exp(th[:, iB] + beta * self.logDref_), "beta": beta}
        diag = np.diagonal(cov, axis1=1, axis2=2)
        stderr = {"c": np.sqrt(np.abs(diag[:, 0])),
                  "k": np.zeros(nd) if M == 1 else _log_stderr(k, diag[:, 1]),
                  "alpha": _log_stderr(alpha, diag[:, ia]), "beta": _log_stderr(beta, diag[:, ib])}
        corr = {}
        for amp, lam, ref, e, name in ((iA, ia, self.logNref_, alpha, "A"),
                                       (iB, ib, self.logDref_, beta, "B")):
            # log A = lA + e log N_ref and e = exp(la): the delta method on the pair
            g = ref * e
            v_amp = cov[:, amp, amp] + 2 * g * cov[:, amp, lam] + g * g * cov[:, lam, lam]
            c_ae = e * (cov[:, amp, lam] + g * cov[:, lam, lam])
            v_e = e * e * cov[:, lam, lam]
            stderr[name] = params[name] * np.sqrt(np.abs(v_amp))
            with np.errstate(invalid="ignore", divide="ignore"):
                r = c_ae / np.sqrt(v_amp * v_e)
            ok = np.isfinite(r)
            corr[f"{name}-{'alpha' if name == 'A' else 'beta'}"] = \
                float(np.median(r[ok])) if ok.any() else float("nan")
        return params, stderr, corr

    def fit(self, runs: "RunsTable") -> "JointMixingLaw":
        """Fit the joint law of every domain to all checkpoints after warm-up; return self."""
        M = len(runs.sources)
        R, xN, xD, Y, W = self._prepare(runs, self._n_params(M))
        sol, H = self._solve(R, xN, xD, Y, W)
        params, stderr, corr = self._canonical(sol, H, M)
        nd, n = Y.shape
        law = ("L_d(N,D) = E_d + A_d N^(-alpha_d) + B_d D^(-beta_d)  (one source: E_d = c_d)"
               if M == 1 else LAWS["joint"].formula.replace("L(", "L_d("))
        self.fit_: StageFit = _summarise("joint", law, list(self.domains_), sol, W,
                                         params, stderr, corr, nd * self._n_params(M))
        return self

    # -- prediction ----------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "fit_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(runs) "
                                 f"first")

    def target(self, params: float, tokens: float) -> JointTarget:
        """The fitted law at ``(params, tokens)``: ``loss(r)`` and ``domain_losses(r)`` (JAX)."""
        self._check_fitted()
        params, tokens = check_scale(params, tokens)
        p = self.fit_.params
        coef = {name: np.asarray(p[name]) for name in LAWS[self.law].params}
        return JointTarget(params=params, tokens=tokens, law=self.law, coef=coef,
                           weights=np.asarray(self.weights_, float), sources=self.sources_,
                           domains=self.domains_, progress=self.progress_,
                           mixtures=self.mixtures_, model=self)

    def predict(self, mixtures: np.ndarray, params: float, tokens: float) -> dict[str, np.ndarray]:
        """Aggregate and per-domain losses of ``mixtures (n, M)`` at ``(params, tokens)``."""
        fit = self.target(params, tokens)
        r = np.atleast_2d(np.asarray(mixtures, float))
        if r.ndim != 2 or r.shape[1] != len(self.sources_):
            raise MixtureError(f"mixtures have shape {r.shape}; need one column per source "
                               f"{list(self.sources_)}", shape=r.shape)
        L = np.asarray(fit.domain_losses(jnp.asarray(r)))
        return {"loss": L @ self.weights_, "domains": L}

    # -- artifact ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fitted estimator; :meth:`from_dict` inverts it exactly."""
        from ._artifact import FIT_KIND, FORMAT_VERSION, encode, stage_to_dict

        self._check_fitted()
        return {
            "kind": FIT_KIND, "format_version": FORMAT_VERSION, "mixlaws_version": __version__,
            "family": self.family, "settings": encode(self.get_params()),
            "source_path": self.source_path_, "progress": self.progress_,
            "sources": list(self.sources_), "domains": list(self.domains_),
            "weights": encode(self.weights_), "log_ref": [self.logNref_, self.logDref_],
            "runs": encode(self.runs_), "mixtures": encode(self.mixtures_),
            "mixture_labels": list(self.mixture_labels_), "fit": stage_to_dict(self.fit_),
            "notes": list(self.notes_),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, path: str = "<dict>") -> "JointMixingLaw":
        """Rebuild a fitted estimator from :meth:`to_dict` output."""
        from ._artifact import decode, stage_from_dict

        if d.get("family") != cls.family:
            raise ArtifactError(f"{path} holds a {d.get('family')!r} fit, not {cls.family!r}",
                                path=path)
        try:
            model = cls(**d["settings"])
            model.sources_, model.domains_ = tuple(d["sources"]), tuple(d["domains"])
            model.weights_ = decode(d["weights"])
            model.logNref_, model.logDref_ = (float(x) for x in d["log_ref"])
            model.progress_, model.source_path_ = d["progress"], d["source_path"]
            r = d["runs"]
            model.runs_ = {"run": list(r["run"]), "params": decode(r["params"]),
                           "mixture": decode(r["mixture"], int),
                           "n_checkpoints": decode(r["n_checkpoints"], int),
                           "last_tokens": decode(r["last_tokens"]),
                           "last_losses": decode(r["last_losses"]).reshape(
                               len(r["run"]), len(model.domains_))}
            model.mixtures_ = decode(d["mixtures"]).reshape(-1, len(model.sources_))
            model.mixture_labels_ = tuple(d["mixture_labels"])
            model.fit_ = stage_from_dict(d["fit"])
            model.notes_ = tuple(d["notes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{path} is a damaged {cls.family} fit artifact "
                                f"({type(exc).__name__}: {exc}); refit with `mixlaws fit`",
                                path=path) from None
        return model
