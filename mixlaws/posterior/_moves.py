r"""Many independent small posteriors sampled by one emcee run, block by block.

A sweep has one step law per run: a hundred independent posteriors of 2–3 parameters each.
One ``emcee.EnsembleSampler`` per run spends its time in Python overhead (about 1.5 s a run
here); stacking the runs into one parameter vector and using emcee's stretch move would accept
a proposal only if *all* runs accept it, which collapses as the number of runs grows.

:class:`BlockStretchMove` is an ``emcee.moves.Move`` that applies the Goodman & Weare stretch
move (emcee's :class:`~emcee.moves.StretchMove`, ``a = 2``) to every block *independently*:
for a walker ``X_j`` of one half of the ensemble and each block ``b`` it draws its own
complementary walker ``X_k`` from the other half and its own ``z ~ g(z) ∝ z^{-1/2}`` on
``[1/a, a]``, proposes ``Y_b = X_{k,b} + z (X_{j,b} - X_{k,b})`` and accepts it with probability
``min(1, z^{d-1} p_b(Y_b) / p_b(X_{j,b}))``. Each block's chain is therefore exactly an emcee
stretch-move chain of its own posterior ``p_b``; the blocks only share the random split into
halves. The log-probability of all blocks is evaluated in one vectorised (JAX) call.

:func:`run_blocks` runs it under ``emcee.EnsembleSampler`` with the same length control and
diagnostics as :func:`mixlaws.posterior.run_ensemble`, per block.
"""

from __future__ import annotations

from typing import Callable, Sequence

import emcee
import jax
import numpy as np

from ._mcmc import Chain, ChainDiagnostics, integrated_time

__all__ = ["BlockStretchMove", "run_blocks", "CHAIN_BYTES"]


class BlockStretchMove(emcee.moves.Move):
    """emcee's stretch move applied independently to ``n_blocks`` blocks of parameters.

    Parameters
    ----------
    block_log_prob : ``(n, n_blocks * d) -> (n, n_blocks)`` log-probability of each block.
    n_blocks : number of independent blocks; the parameter vector is their concatenation.
    a : stretch scale (emcee's default 2).

    Attributes
    ----------
    accepted : ``(n_walkers, n_blocks)`` accepted proposals so far.
    proposed : number of proposals made per walker and block.
    """

    def __init__(self, block_log_prob: Callable[[np.ndarray], np.ndarray], n_blocks: int,
                 a: float = 2.0) -> None:
        self.block_log_prob = block_log_prob
        self.n_blocks = int(n_blocks)
        self.a = float(a)
        self.accepted: np.ndarray | None = None
        self.proposed = 0
        self._lp: np.ndarray | None = None

    def propose(self, model, state):  # noqa: D102 (emcee's Move API)
        nw, D = state.coords.shape
        R = self.n_blocks
        d = D // R
        X = state.coords.reshape(nw, R, d).copy()
        if self._lp is None or self._lp.shape != (nw, R):
            self._lp = np.array(self.block_log_prob(state.coords), float).reshape(nw, R)
            self.accepted = np.zeros((nw, R), int)
        rng = model.random
        inds = np.arange(nw) % 2
        rng.shuffle(inds)
        any_acc = np.zeros(nw, bool)
        for split in (0, 1):
            S = inds == split
            s, c = X[S], X[~S]
            ns, nc = s.shape[0], c.shape[0]
            z = ((self.a - 1.0) * rng.rand(ns, R) + 1.0) ** 2 / self.a
            comp = c[rng.randint(nc, size=(ns, R)), np.arange(R)[None, :]]      # (ns, R, d)
            q = comp + z[..., None] * (s - comp)
            new = np.array(self.block_log_prob(q.reshape(ns, D)), float).reshape(ns, R)
            with np.errstate(invalid="ignore"):
                acc = (d - 1) * np.log(z) + new - self._lp[S] > np.log(rng.rand(ns, R))
            X[S] = np.where(acc[..., None], q, s)
            self._lp[S] = np.where(acc, new, self._lp[S])
            self.accepted[S] += acc
            any_acc[S] = acc.any(1)
        self.proposed += 1
        state.coords = X.reshape(nw, D)
        state.log_prob = self._lp.sum(1)
        return state, any_acc


def _run(block_log_prob: Callable[[np.ndarray], np.ndarray], prev: np.ndarray, seed: int,
         min_steps: int, max_steps: int, chunk: int, need_of: Callable[[np.ndarray], np.ndarray],
         settle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Continue the chains ``prev (n0, nw, R, d)`` of all blocks with one emcee run (the new
    run starts at their last state, so the concatenation is one Markov chain). Stops when every
    block has the length it needs, or when at most a fraction ``settle`` still lacks it (the
    caller continues those alone), or at ``max_steps`` in total. Returns the whole chain
    ``(n, nw, R, d)``, each block's need and its acceptance fraction in this run."""
    n0, nw, R, d = prev.shape
    move = BlockStretchMove(block_log_prob, R)
    sampler = emcee.EnsembleSampler(nw, R * d, lambda x: block_log_prob(x).sum(1),
                                    vectorize=True, moves=move)
    sampler.random_state = np.random.RandomState(seed % (2**32)).get_state()
    # the stacked vector has more coordinates than walkers; each block is well spread
    state = sampler.run_mcmc(prev[-1].reshape(nw, R * d), max(min_steps - n0 + 1, chunk),
                             progress=False, skip_initial_state_check=True)
    while True:
        chain = np.concatenate([prev[:-1], sampler.get_chain().reshape(-1, nw, R, d)])
        n = chain.shape[0]
        need = need_of(chain)
        short = need > n
        if not short.any() or n >= max_steps or short.mean() <= settle:
            return chain, need, move.accepted.mean(0) / max(move.proposed, 1)
        goal = float(np.quantile(need, 1.0 - settle))     # length at which enough are done
        more = int(min(max(chunk, goal - n + chunk // 5), max_steps - n))
        state = sampler.run_mcmc(state, more, progress=False, skip_initial_state_check=True)


CHAIN_BYTES = 2 * 2**30
"""Memory :func:`run_blocks` lets one emcee run's stored chain take at ``max_steps`` (with the
copy made when it is extended): blocks beyond it are sampled in consecutive groups. A mixing
stage of 50 domains x 24 sources (96 walkers x 24 parameters a domain) would otherwise store
0.9 MB a step, 18 GB at 20,000 steps."""


def run_blocks(log_prob_for: Callable[[np.ndarray], Callable[[jax.Array], jax.Array]],
               x0: np.ndarray, *,
               names: Sequence[str], seed: int, min_steps: int = 300, max_steps: int = 10000,
               min_tau_multiple: float = 50.0, chunk: int = 300, min_ess: float = 0.0,
               settle: float = 0.2, max_bytes: float = CHAIN_BYTES) -> list[Chain]:
    """Sample ``n_blocks`` independent posteriors with emcee (:class:`BlockStretchMove`).

    Parameters
    ----------
    log_prob_for : ``idx (R',) -> f`` with ``f: X (n, R', d) -> (n, R')`` the (jitted)
        log-probability of blocks ``idx``; called for all blocks, then for the slow ones.
    x0 : ``(n_walkers, n_blocks, d)`` initial walkers (inside every block's support).
    names : one name per block, for the diagnostics.
    min_steps, max_steps, min_tau_multiple, chunk, min_ess : as in
        :func:`mixlaws.posterior.run_ensemble`, per block: a block is done when its chain is
        at least ``min_tau_multiple`` autocorrelation times long and has ``min_ess``.
    settle : once at most this fraction of the blocks is not done, the others stop and the
        slow ones are continued alone (cheaper per step), up to ``max_steps`` in total.
    max_bytes : bound on one emcee run's stored chain at ``max_steps`` (:data:`CHAIN_BYTES`):
        when all blocks would exceed it, they are sampled in consecutive groups that do not
        (each group its own emcee run, seeded ``seed + group``; a single group is the same run
        as without the bound; a block that alone exceeds it is sampled alone, still storing
        its whole run until it stops). The samples every block keeps are thinned to about
        ``max_bytes / n_blocks`` (by at most half the block's autocorrelation time).

    Returns one :class:`~mixlaws.posterior.Chain` per block (samples ``(kept, n_walkers, d)``,
    acceptance the block's own in its last run). No warning is emitted: callers summarise.
    """
    nw, R, d = x0.shape
    per_block = 2.0 * max_steps * nw * d * x0.dtype.itemsize
    size = R if max_bytes >= R * per_block else max(1, int(max_bytes // per_block))
    out: list[Chain] = []
    for k, lo in enumerate(range(0, R, size)):
        part = np.arange(lo, min(lo + size, R))
        out += _sample_blocks(lambda idx, part=part: log_prob_for(part[idx]), x0[:, part],
                              [names[j] for j in part], seed + k, min_steps, max_steps,
                              min_tau_multiple, chunk, min_ess, settle, max_bytes / R)
    return out


def _sample_blocks(log_prob_for, x0: np.ndarray, names: Sequence[str], seed: int,
                   min_steps: int, max_steps: int, min_tau_multiple: float, chunk: int,
                   min_ess: float, settle: float, keep_bytes: float) -> list[Chain]:
    """:func:`run_blocks` for one group of blocks, in one emcee run. Each block keeps its
    post-burn-in samples, thinned (by at most half its autocorrelation time, so that
    little information is lost) to about ``keep_bytes``."""
    nw, R, d = x0.shape

    def need_of(chain: np.ndarray) -> np.ndarray:
        n = chain.shape[0]
        kept = chain[n // 5:].reshape(n - n // 5, nw, -1)
        tau = integrated_time(kept, thin=max(1, kept.shape[0] // 1000)).reshape(-1, d).max(1)
        return np.ceil(np.maximum(min_tau_multiple, min_ess / (0.8 * nw)) * tau).astype(int)

    chains: list[Chain | None] = [None] * R
    todo, chain, rnd = np.arange(R), x0[None], 0
    while todo.size:
        f = (lambda g, k: lambda x: np.asarray(g(np.asarray(x, float).reshape(x.shape[0], k, d))))(
            log_prob_for(todo), todo.size)
        chain, need, acc = _run(f, chain, seed + 7919 * rnd, min_steps, max_steps, chunk,
                                need_of, settle if rnd == 0 else 0.0)
        n = chain.shape[0]
        done = (need <= n) | (rnd > 0) | (n >= max_steps)
        for j in np.flatnonzero(done):
            tau = integrated_time(chain[n // 5:, :, j])
            tmax = float(tau.max())
            burn = int(min(max(2 * tmax, n / 5), n // 2))
            nbytes = (n - burn) * nw * d * chain.itemsize
            thin = max(1, min(int(np.ceil(nbytes / keep_bytes)), int(tmax // 2)))
            kept = chain[burn::thin, :, j].copy()     # a copy: no view keeps the whole run alive
            chains[todo[j]] = Chain(samples=kept, diagnostics=ChainDiagnostics(
                name=names[todo[j]], n_walkers=nw, n_steps=n, burn=burn, tau=tau,
                steps_per_tau=n / tmax, ess=nw * (n - burn) / tmax, acceptance=float(acc[j]),
                converged=bool(n >= min_tau_multiple * tmax)))
        chain = chain[:, :, ~done]
        todo, rnd = todo[~done], rnd + 1
    return chains  # type: ignore[return-value]
