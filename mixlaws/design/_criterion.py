r"""The value of a run: expected reduction of the regret of the chosen target mixture, per FLOP.

Members ``b = 1..B`` of the ensemble are equally likely a priori.  ``F[b, r]`` is member ``b``'s
predicted loss at the target for mixture ``r`` of a finite feasible set, and
``Reg[b, r] = F[b, r] - min_r' F[b, r']`` its regret.  With posterior weights ``w`` the mixture
chosen is :math:`\hat r(w) = \arg\min_r \sum_b w_b F_{b r}` and its expected regret is

.. math:: \mathrm{ER}(w) = \min_r \sum_b w_b \mathrm{Reg}_{b r}.

A set ``S`` of proposed runs is valued by fantasy (a knowledge-gradient-type criterion): a member
``b_0`` plays the truth, the runs' aggregate losses are drawn as
:math:`y_p = Y_{b_0 p} e^{\sigma \epsilon_p}`, and the ensemble is importance-reweighted by
the likelihood :math:`w_b \propto \exp(-\sum_{p \in S} (\log Y_{bp} - \log y_p)^2 / 2\sigma^2)`.
Averaging over ``b_0`` and ``E`` common-random-number draws of ``\epsilon`` gives
:math:`\mathrm{ER}(S)`; the value of adding candidate ``c`` is
:math:`(\mathrm{ER}(S) - \mathrm{ER}(S \cup c)) / \mathrm{FLOPs}_c`.  Reweighting instead of
refitting is what makes this cheap: a candidate costs ``O(B^2 E |R|)`` operations, not a refit.
Batches are built greedily, each pick conditioned on the fantasised outcomes of the earlier
ones, so a second run that only repeats what the first teaches has little value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Fantasies", "expected_regret", "optimum_spread", "greedy_batch", "GreedyStep"]


def _softmax(logw: np.ndarray) -> np.ndarray:
    z = logw - logw.max(-1, keepdims=True)
    w = np.exp(z)
    return w / w.sum(-1, keepdims=True)


def expected_regret(logw: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """``ER(w) = min_r sum_b w_b Reg[b, r]`` for log-weights ``(..., B)`` and ``Reg (B, R)``."""
    return (_softmax(logw) @ reg).min(-1)


def optimum_spread(logw: np.ndarray, optima: np.ndarray) -> np.ndarray:
    """Posterior mean L1 distance of the members' optima ``(B, M)`` from their weighted mean."""
    w = _softmax(logw)
    centre = w @ optima
    return np.sum(w * np.abs(optima[None] - centre[..., None, :]).sum(-1), axis=-1) \
        if w.ndim > 1 else float(np.sum(w * np.abs(optima - centre).sum(-1)))


@dataclass(frozen=True, eq=False)
class Fantasies:
    """Log-likelihood terms of fantasised outcomes at the candidate points.

    ``term(p)`` is ``(B0, E, B)``: for truth member ``b0`` and draw ``e``, the log-likelihood of
    member ``b`` given the fantasised loss at point ``p``.
    """

    logY: np.ndarray   # (B, P) log predicted aggregate loss at the points
    eps: np.ndarray    # (B, E, P) standard normal draws (common random numbers)
    sigma: float

    @classmethod
    def draw(cls, Y: np.ndarray, sigma: float, n_draws: int, rng: np.random.Generator) -> "Fantasies":
        """Fantasies for predictions ``Y (B, P)`` with relative noise ``sigma``."""
        B, P = Y.shape
        return cls(np.log(Y), rng.standard_normal((B, n_draws, P)), float(sigma))

    def term(self, points: tuple[int, ...]) -> np.ndarray:
        """Summed log-likelihood ``(B0, E, B)`` of the outcomes at ``points``."""
        idx = list(points)
        lt = self.logY[:, idx]                                   # (B, P')
        obs = lt[:, None, :] + self.sigma * self.eps[:, :, idx]  # (B0, E, P')
        d = lt[None, None, :, :] - obs[:, :, None, :]            # (B0, E, B, P')
        return -0.5 * np.sum(d**2, axis=-1) / self.sigma**2


@dataclass(frozen=True)
class GreedyStep:
    """One pick of :func:`greedy_batch`: candidate index, value per FLOP, regret and spread after."""

    index: int
    value: float
    regret: float
    spread: float


def greedy_batch(terms: list[np.ndarray], flops: np.ndarray, points: list[tuple[int, ...]],
                 reg: np.ndarray, optima: np.ndarray, *, budget: float, max_runs: int,
                 n_runs: np.ndarray, spread: np.ndarray | None = None,
                 ) -> tuple[list[GreedyStep], float, float]:
    """Pick candidates greedily by expected regret reduction per FLOP within ``budget``.

    Parameters
    ----------
    terms : per candidate, the ``(B0, E, B)`` log-likelihood of its fantasised outcomes.
    flops : ``(C,)`` cost of each candidate; ``n_runs`` how many runs (rows) each has.
    points : per candidate, the indices of its points (candidates sharing a point exclude each other).
    reg : ``(B, R)`` regret matrix; ``optima`` ``(B, M)`` members' optimal mixtures.
    budget, max_runs : total FLOPs and number of runs allowed.
    spread : ``(C,)`` predictive spread of each candidate's outcome; when no candidate is
        expected to reduce the regret (all members agree), the pick maximises ``spread / flops``
        instead (uncertainty sampling) and its value is recorded as 0.

    Returns
    -------
    steps, regret_before, spread_before
    """
    B = reg.shape[0]
    if not terms:
        return [], float(expected_regret(np.zeros(B), reg)), float(optimum_spread(np.zeros(B), optima))
    B0, E, _ = terms[0].shape
    acc = np.zeros((B0, E, B))
    before = float(expected_regret(np.zeros(B), reg))
    spread0 = float(optimum_spread(np.zeros(B), optima))
    current, left, runs_left = before, float(budget), int(max_runs)
    alive = np.ones(len(terms), bool)
    used: set[int] = set()
    steps: list[GreedyStep] = []
    T = np.stack(terms)                                            # (C, B0, E, B)
    while True:
        ok = alive & (flops <= left * (1 + 1e-12)) & (n_runs <= runs_left)
        if not ok.any():
            break
        idx = np.flatnonzero(ok)
        chunk = max(1, int(2e6 // max(B0 * E * reg.shape[1], 1)))        # bounded memory
        er = np.concatenate([expected_regret(acc[None] + T[idx[a:a + chunk]], reg).mean(axis=(1, 2))
                             for a in range(0, len(idx), chunk)])        # (len(idx),)
        gain = (current - er) / flops[idx]
        j = int(np.argmax(gain))
        if not gain[j] > 0 and spread is not None:
            j = int(np.argmax(spread[idx] / flops[idx]))
            gain = np.zeros_like(gain)
        c = int(idx[j])
        acc = acc + T[c]
        current = float(er[j])
        spr = float(optimum_spread(acc, optima).mean())
        steps.append(GreedyStep(c, float(gain[j]), current, spr))
        left -= float(flops[c])
        runs_left -= int(n_runs[c])
        used.update(points[c])
        alive &= np.array([not (set(p) & used) for p in points])
    return steps, before, spread0
