r"""An affine-invariant ensemble sampler compiled by JAX: emcee's moves, whole chunks per call.

emcee runs every step in Python and calls the log-probability twice per step (once per half
of the ensemble); for the small posteriors of mixlaws' stages (2-8 parameters, a
log-probability of tens of microseconds) the Python and dispatch overhead is most of the cost
(~0.5 ms a step). :func:`sample_chunk` runs ``n_steps`` steps in one compiled ``lax.scan``.

One step (Goodman & Weare 2010; Foreman-Mackey et al. 2013): the walkers are split at random
into two halves; each half in turn proposes from the other half's current positions and
accepts with probability ``min(1, exp(f + log p(Y) - log p(X)))``. The move of a step is drawn
from ``moves`` by weight, as emcee does. Moves (``X`` a walker, ``c, c'`` distinct walkers of
the other half, ``z`` likewise):

* ``("stretch", a)``: ``Y = c + s (X - c)``, ``s ~ g(s) ∝ s^{-1/2}`` on ``[1/a, a]``,
  ``f = (d - 1) log s`` (emcee's ``StretchMove``).
* ``("de", sigma, gamma0)``: ``Y = X + gamma (c - c')``, ``gamma = gamma0 (1 + sigma N(0,1))``,
  ``gamma0 = 2.38 / sqrt(2 d)`` when 0; ``f = 0`` (emcee's ``DEMove``).
* ``("snooker", gamma)``: the differential-evolution snooker update of ter Braak & Vrugt
  (2008): ``e = (X - z) / |X - z|``, ``Y = X + gamma e e^T (c - c')``,
  ``f = (d - 1) log(|Y - z| / |X - z|)``. (The paper's form; emcee 3.1's ``DESnookerMove``
  normalises ``e`` and the factor differently.)

Every move keeps the target invariant; the same statistical check is run on this sampler and
on emcee (``tests/test_samplers.py``). Non-finite log-probabilities reject.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import _config  # noqa: F401
from ..errors import MixlawsError

__all__ = ["MoveSpec", "jax_moves", "sample_chunk", "CompiledEnsemble"]

MoveSpec = tuple
"""``(kind, *params, weight)`` with kind ``"stretch"``, ``"de"`` or ``"snooker"`` (hashable)."""


def jax_moves(moves) -> tuple[MoveSpec, ...]:  # noqa: ANN001
    """Translate emcee moves (``None``, a move, or ``[(move, weight), ...]``) into specs."""
    import emcee

    if moves is None:
        moves = [(emcee.moves.StretchMove(), 1.0)]
    elif not isinstance(moves, (list, tuple)):
        moves = [(moves, 1.0)]
    out = []
    for item in moves:
        mv, w = item if isinstance(item, tuple) else (item, 1.0)
        if isinstance(mv, emcee.moves.StretchMove):
            out.append(("stretch", float(mv.a), float(w)))
        elif isinstance(mv, emcee.moves.DEMove):
            out.append(("de", float(mv.sigma), float(mv.gamma0 or 0.0), float(w)))
        elif isinstance(mv, emcee.moves.DESnookerMove):
            out.append(("snooker", float(mv.gammas), float(w)))
        else:
            raise MixlawsError(f"the compiled sampler has no {type(mv).__name__}; "
                               f"use sampler='emcee'")
    return tuple(out)


def _propose(spec: MoveSpec, key: jax.Array, s: jax.Array, c: jax.Array
             ) -> tuple[jax.Array, jax.Array]:
    """Proposal ``(ns, d)`` and log factor ``(ns,)`` of one move for walkers ``s`` given ``c``."""
    ns, d = s.shape
    nc = c.shape[0]
    k1, k2, k3, k4 = jax.random.split(key, 4)
    j = jax.random.randint(k1, (ns,), 0, nc)
    j2 = (j + 1 + jax.random.randint(k2, (ns,), 0, max(nc - 1, 1))) % nc      # j2 != j
    kind = spec[0]
    if kind == "stretch":
        a = spec[1]
        z = ((a - 1.0) * jax.random.uniform(k3, (ns,)) + 1.0) ** 2 / a
        q = c[j] + z[:, None] * (s - c[j])
        return q, (d - 1.0) * jnp.log(z)
    if kind == "de":
        sigma, g0 = spec[1], spec[2] or 2.38 / np.sqrt(2.0 * d)
        gamma = g0 * (1.0 + sigma * jax.random.normal(k3, (ns, 1)))
        return s + gamma * (c[j] - c[j2]), jnp.zeros(ns)
    if kind == "snooker":
        gamma = spec[1]
        z = c[jax.random.randint(k4, (ns,), 0, nc)]
        delta = s - z
        norm = jnp.sqrt(jnp.sum(delta * delta, 1, keepdims=True))
        e = delta / norm
        q = s + gamma * e * jnp.sum(e * (c[j] - c[j2]), 1, keepdims=True)
        nq = jnp.sqrt(jnp.sum((q - z) ** 2, 1))
        return q, (d - 1.0) * (jnp.log(nq) - jnp.log(norm[:, 0]))
    raise MixlawsError(f"unknown move {kind!r}")


@partial(jax.jit, static_argnames=("log_prob", "moves", "n_steps"))
def sample_chunk(log_prob: Callable, moves: tuple[MoveSpec, ...], n_steps: int, x: jax.Array,
                 lp: jax.Array, key: jax.Array, args: tuple = ()
                 ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Run ``n_steps`` ensemble steps from walkers ``x (nw, d)`` with log-probabilities ``lp``.

    ``log_prob(X, *args)`` maps ``(n, d)`` to ``(n,)`` and must be a stable (module-level or
    cached) function: it is a static argument, so a new closure compiles anew. Returns the
    last ``(x, lp)``, the chain ``(n_steps, nw, d)`` and accepted proposals per walker
    ``(nw,)``.
    """
    nw = x.shape[0]
    h = nw - nw // 2
    logw = jnp.log(jnp.asarray([m[-1] for m in moves], float))

    def half(x, lp, idx_s, idx_c, key, m):
        s, c, ls = x[idx_s], x[idx_c], lp[idx_s]
        ka, kb = jax.random.split(key)
        props = [_propose(spec, ka, s, c) for spec in moves]
        q, f = props[0]
        for i, (qi, fi) in enumerate(props[1:], 1):
            q, f = jnp.where(m == i, qi, q), jnp.where(m == i, fi, f)
        lq = log_prob(q, *args)
        acc = (jnp.log(jax.random.uniform(kb, ls.shape)) < f + lq - ls) & jnp.isfinite(lq)
        x = x.at[idx_s].set(jnp.where(acc[:, None], q, s))
        lp = lp.at[idx_s].set(jnp.where(acc, lq, ls))
        return x, lp, acc

    def step(carry, key):
        x, lp, n_acc = carry
        km, kp, k0, k1 = jax.random.split(key, 4)
        m = jax.random.categorical(km, logw)
        perm = jax.random.permutation(kp, nw)
        first, second = perm[:h], perm[h:]
        x, lp, a0 = half(x, lp, first, second, k0, m)
        x, lp, a1 = half(x, lp, second, first, k1, m)
        n_acc = n_acc.at[first].add(a0).at[second].add(a1)
        return (x, lp, n_acc), x

    (x, lp, n_acc), chain = jax.lax.scan(step, (x, lp, jnp.zeros(nw, int)),
                                         jax.random.split(key, n_steps))
    return x, lp, chain, n_acc


class CompiledEnsemble:
    """The state of a compiled ensemble run, extended chunk by chunk (emcee's role in
    :func:`mixlaws.posterior.run_ensemble`).

    Parameters
    ----------
    log_prob : ``(X (n, d), *args) -> (n,)``, stable (see :func:`sample_chunk`).
    x0 : ``(nw, d)`` initial walkers; ``lp0`` their log-probabilities.
    moves : emcee moves, as :func:`mixlaws.posterior.run_ensemble` takes them (:func:`jax_moves`).
    seed : the run's seed.
    block : steps per compiled call (runs are extended in multiples of it).
    """

    def __init__(self, log_prob: Callable, x0: np.ndarray, lp0: np.ndarray, *, moves,
                 seed: int, args: Sequence = (), block: int = 100) -> None:  # noqa: ANN001
        self.log_prob, self.args, self.block = log_prob, tuple(args), int(block)
        self.moves = jax_moves(moves)
        self._x, self._lp = jnp.asarray(x0, float), jnp.asarray(lp0, float)
        self._key = jax.random.PRNGKey(seed % (2**32))
        self._chunks: list[np.ndarray] = []
        self._acc = np.zeros(x0.shape[0])
        self.n_steps = 0

    def run(self, n: int) -> None:
        """Extend the chain by at least ``n`` steps (a multiple of ``block``)."""
        for _ in range(max(1, int(np.ceil(n / self.block)))):
            self._key, sub = jax.random.split(self._key)
            self._x, self._lp, chain, acc = sample_chunk(self.log_prob, self.moves, self.block,
                                                         self._x, self._lp, sub, self.args)
            self._chunks.append(np.asarray(chain))
            self._acc += np.asarray(acc)
            self.n_steps += self.block

    def get_chain(self) -> np.ndarray:
        """The whole chain ``(n_steps, nw, d)``."""
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0]

    @property
    def acceptance_fraction(self) -> np.ndarray:
        """Accepted proposals per walker over all steps."""
        return self._acc / max(self.n_steps, 1)
