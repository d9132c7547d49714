"""A joint law whose size and data terms depend on the mixture (family ``joint-mix``).

Per validation domain ``d`` (:func:`mixlaws.laws.joint_mix_law`):

.. math::

    L_d(r, N, D) = c_d + k_d e^{t_d \\cdot r} + e^{a_d + p_d \\cdot r} N^{-\\alpha_d}
                   + e^{b_d + q_d \\cdot r} D^{-\\beta_d},
    \\qquad \\textstyle\\sum_j t_{dj} = \\sum_j p_{dj} = \\sum_j q_{dj} = 0,

in the spirit of Shukor et al. (2025), "Scaling Laws for Optimal Data Mixtures": the
mixture changes how fast loss falls with size and data, not only its floor.  With
``p = q = 0`` it is the plain joint law (:class:`~mixlaws.fit.JointMixingLaw`).

Why a subclass of the joint estimator rather than an option: it shares the table
checks, reference scales, target and artifact, but has its own parameter layout,
starts and regularisation; as a family of its own it is backtested and averaged
like any other (``FAMILIES["joint-mix"]``).

Fitting: the plain joint law is fitted first (Latin hypercube of starts); its
optimum (``p = q = 0``), ``n_mix_starts - 1`` perturbations of it and the joint
law's Latin-hypercube starts (with ``p = q = 0``) start this fit, best kept, so the
robust objective is never worse than the joint law's up to the penalty below.  (From
the joint optimum alone the fit can stay in its basin when the mixture dependence is
strong: a sweep with ``A_d(r)`` varying by ``e^{+-0.6}`` kept a 1.3 % rms misfit with 4
such starts, 0.33 % — the noise — with the hypercube added.)  Parameters in the solver:
``c``, ``log k``, ``t = H u``, ``log A_ref + H pu``, ``log alpha``, ``log B_ref + H qu``, ``log beta`` (``H`` the sum-zero basis,
amplitudes at the geometric-mean scales; ``a = log A_ref + alpha log N_ref``).

Regularisation (weak identification): ``p`` and ``q`` are identified only through
how the *slopes* in ``N`` and ``D`` differ between mixtures, which few sizes or short
runs barely constrain.  Each coordinate of ``pu`` and ``qu`` adds a pseudo-residual
``ridge * pu_j`` to the summed Huber objective (``H`` is orthonormal, so this is
``ridge^2 (|p|^2 + |q|^2)`` in the quadratic zone): a pull towards the plain joint
law that, for checkpoint noise of relative sd ``sigma``, acts as a Gaussian prior of
sd ``sigma / ridge`` on every coordinate (sd 5 for ``sigma = 0.5 %`` and the default
``ridge = 1e-3``), weak where the data speak and decisive only along flat directions.
It is not decisive enough everywhere: on Ye et al.'s RedPajama runs (70M-305M, 22 Pile
domains, ``python benchmarks/joint_families.py``) 6 of 22 domains end with a parameter on
its box (Ubuntu_IRC's ``q`` at the +-20 box; as in the plain joint law, where 2 domains put
``k -> 0`` and ``t`` on its +-50 box), a sign that those domains' size/data terms are not
identified by 3 sizes; the fit report lists them.  Raise ``ridge`` to pull harder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import jax.numpy as jnp
import numpy as np

from .. import _config  # noqa: F401
from ..laws import LAWS, joint_mix_law
from ..runs._warmup import WARMUP
from ._engine import solve_groups
from ._joint import JointMixingLaw, _n_joint
from ._stages import _log_stderr, _summarise

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import RunsTable

__all__ = ["JointMixMixingLaw"]


def _mix_residual(theta: jnp.ndarray, data: Any) -> jnp.ndarray:
    RH, xN, xD, y, ridge = data
    m1 = RH.shape[1]
    c, lk = theta[0], theta[1]
    u = theta[2:2 + m1]
    lA, pu = theta[2 + m1], theta[3 + m1:3 + 2 * m1]
    la = theta[3 + 2 * m1]
    lB, qu = theta[4 + 2 * m1], theta[5 + 2 * m1:5 + 3 * m1]
    lb = theta[5 + 3 * m1]
    pred = joint_mix_law(RH, jnp.exp(xN), jnp.exp(xD), c, jnp.exp(lk), u, lA, pu, jnp.exp(la),
                         lB, qu, jnp.exp(lb))                 # r . t = (r H) . u
    return jnp.concatenate([jnp.log(pred) - jnp.log(y), ridge * pu, ridge * qu])


class JointMixMixingLaw(JointMixingLaw):
    """Joint law with mixture-dependent size and data amplitudes (see the module docstring).

    Parameters
    ----------
    val_weights, warmup, delta, n_starts, seed : as :class:`~mixlaws.fit.JointMixingLaw`
        (``n_starts`` are the plain joint fit's starts).
    ridge : pseudo-residual scale pulling ``p, q`` towards 0 (default 1e-3; 0 disables).
    n_mix_starts : starts of the full fit near the joint optimum (it and perturbations of it),
        added to the ``n_starts`` hypercube starts.

    Attributes (after ``fit``)
    --------------------------
    fit_ : :class:`~mixlaws.fit.StageFit` with canonical ``c, k, t, a, p, alpha, b, q, beta``.
    joint_ : the plain joint fit it started from (a :class:`~mixlaws.fit.StageFit`).
    Others as :class:`~mixlaws.fit.JointMixingLaw`.  With one source there is no ``p, q``
    and the fit is the plain joint law's.
    """

    family = "joint-mix"
    law = "joint-mix"

    def __init__(self, *, val_weights: Mapping[str, float] | None = None, warmup: float = WARMUP,
                 delta: float = 1e-3, n_starts: int = 12, seed: int = 0, ridge: float = 1e-3,
                 n_mix_starts: int = 4) -> None:
        super().__init__(val_weights=val_weights, warmup=warmup, delta=delta, n_starts=n_starts,
                         seed=seed)
        self.ridge = ridge
        self.n_mix_starts = n_mix_starts

    def _n_params(self, M: int) -> int:
        return 5 if M == 1 else 3 * M + 3

    def fit(self, runs: "RunsTable") -> "JointMixMixingLaw":
        """Fit the plain joint law, then the mixture-dependent one from it; return self."""
        M = len(runs.sources)
        R, xN, xD, Y, Wy = self._prepare(runs, self._n_params(M))
        sol0, H = self._solve(R, xN, xD, Y, Wy)
        jp, jse, jcorr = self._canonical(sol0, H, M)
        nd, n = Y.shape
        self.joint_ = _summarise("joint", LAWS["joint"].formula, list(self.domains_), sol0,
                                 Wy, jp, jse, jcorr, nd * _n_joint(M))
        zero = np.zeros((nd, max(M, 1)))
        if M == 1:   # no mixture: the law is the plain joint law
            params = {"c": jp["c"], "k": jp["k"], "t": jp["t"], "a": np.log(jp["A"]), "p": zero,
                      "alpha": jp["alpha"], "b": np.log(jp["B"]), "q": zero, "beta": jp["beta"]}
            stderr = {"c": jse["c"], "alpha": jse["alpha"], "beta": jse["beta"]}
            self.fit_ = _summarise("joint-mix", LAWS["joint-mix"].formula, list(self.domains_),
                                   sol0, Wy, params, stderr, jcorr, nd * 5)
            return self
        m1 = M - 1
        P = self._n_params(M)
        i = 2 + m1

        def embed(th: np.ndarray) -> np.ndarray:      # joint (c, lk, u, lA, la, lB, lb), p = q = 0
            z = np.zeros(th.shape[:-1] + (m1,))
            return np.concatenate([th[..., :i + 1], z, th[..., i + 1:i + 3], z, th[..., i + 3:]],
                                  axis=-1)

        rng = np.random.default_rng([self.seed, 7])
        near = np.repeat(embed(sol0.theta)[None], max(int(self.n_mix_starts), 1), axis=0)
        for s in range(1, near.shape[0]):
            near[s, :, i + 1:i + 1 + m1] = rng.normal(0, 0.3, (nd, m1))
            near[s, :, i + 3 + m1:i + 3 + 2 * m1] = rng.normal(0, 0.3, (nd, m1))
        starts = np.concatenate([near, embed(self._joint_starts(Y, M)[1])])
        ymax = Y.max(1)
        big = np.log(10 * ymax)
        bounds = np.zeros((nd, P, 2))
        bounds[:, 0] = np.stack([np.zeros(nd), Y.min(1)], -1)
        bounds[:, 1] = np.stack([np.full(nd, -30.0), big], -1)
        bounds[:, 2:2 + m1] = [-50.0, 50.0]
        for j in (i, i + 2 + m1):                          # log amplitudes at the reference
            bounds[:, j] = np.stack([np.full(nd, -30.0), big], -1)
        bounds[:, i + 1:i + 1 + m1] = [-20.0, 20.0]         # pu
        bounds[:, i + 3 + m1:i + 3 + 2 * m1] = [-20.0, 20.0]  # qu
        for j in (i + 1 + m1, i + 3 + 2 * m1):              # log exponents in (1e-3, 2)
            bounds[:, j] = [np.log(1e-3), np.log(2.0)]
        data = tuple(jnp.broadcast_to(jnp.asarray(a), (nd,) + a.shape)
                     for a in (R @ H, xN, xD)) + (jnp.asarray(Y), jnp.full(nd, float(self.ridge)))
        W = np.concatenate([Wy, np.ones((nd, 2 * m1))], axis=1)
        sol = solve_groups(_mix_residual, data, W, bounds, starts, delta=self.delta)
        th = sol.theta
        ia, ib = i + 1 + m1, i + 3 + 2 * m1
        alpha, beta = np.exp(th[:, ia]), np.exp(th[:, ib])
        params = {"c": th[:, 0].copy(), "k": np.exp(th[:, 1]), "t": th[:, 2:2 + m1] @ H.T,
                  "a": th[:, i] + alpha * self.logNref_, "p": th[:, i + 1:i + 1 + m1] @ H.T,
                  "alpha": alpha, "b": th[:, i + 2 + m1] + beta * self.logDref_,
                  "q": th[:, i + 3 + m1:i + 3 + 2 * m1] @ H.T, "beta": beta}
        diag = np.diagonal(sol.cov, axis1=1, axis2=2)
        stderr = {"c": np.sqrt(np.abs(diag[:, 0])), "k": _log_stderr(params["k"], diag[:, 1]),
                  "alpha": _log_stderr(alpha, diag[:, ia]), "beta": _log_stderr(beta, diag[:, ib])}
        Wdata = np.concatenate([Wy, np.zeros((nd, 2 * m1))], axis=1)
        self.fit_ = _summarise("joint-mix", LAWS["joint-mix"].formula.replace("L(", "L_d("),
                               list(self.domains_), sol, Wdata, params, stderr, {}, nd * P)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (adds the plain joint fit it started from)."""
        from ._artifact import stage_to_dict

        d = super().to_dict()
        d["joint"] = stage_to_dict(self.joint_)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, path: str = "<dict>") -> "JointMixMixingLaw":
        """Rebuild a fitted estimator from :meth:`to_dict` output."""
        from ._artifact import stage_from_dict

        model = super().from_dict(d, path=path)
        model.joint_ = stage_from_dict(d["joint"]) if "joint" in d else None
        return model
