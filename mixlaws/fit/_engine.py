"""Robust, batched, multi-start fitting with exact JAX Jacobians.

The engine fits ``G`` independent groups (runs, mixture/domain pairs,
validation domains) at once.  For group ``g`` with parameters ``theta_g`` the
objective is the **sum** (never the mean, see DESIGN §4) of a Huber loss of
log-residuals, scaled by its threshold ``delta`` so that it is of the order of
the number of residuals:

.. math::

    F_g(\\theta_g) = \\sum_i w_{gi}\\,\\rho\\big(r_{gi}/\\delta\\big),\\qquad
    r_{gi} = \\log \\hat L_{gi}(\\theta_g) - \\log L_{gi},

with ``rho(z) = z^2/2`` for ``|z| <= 1`` and ``|z| - 1/2`` beyond (Hoffmann
et al. 2022 fit the same robust objective).  Callers parameterise positive
quantities in log space and pass box bounds.

The solver is a projected Levenberg-Marquardt iteration with iteratively
reweighted (Huber) normal equations, vectorised over groups with
:func:`jax.vmap` and compiled once per problem shape.  Every start is run and
the best is kept per group.  Convergence is judged per group by the **Newton
decrement** ``g^T H^{-1} g`` over the free parameters (a scale-free measure
of how much the objective could still drop), never assumed; non-convergence
and parameters on their bounds are reported.

Shared (tied) exponents are handled by :func:`profile_shared`, which
minimises the profile objective over one shared scalar with the groups
re-fitted at each value.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from .. import _config  # noqa: F401
from ..errors import ConvergenceWarning, FitError

__all__ = ["GroupSolution", "JacobianStructure", "ProfileResult", "huber", "solve_groups",
           "profile_shared"]

ResidualFn = Callable[[jax.Array, Any], jax.Array]
"""``residual(theta_g, data_g) -> (n,)`` log-residuals of one group."""

DECREMENT_TOL = 1e-8
"""A group has converged when its Newton decrement ``g^T H^-1 g`` (twice the decrease a Newton
step would still bring) is below ``DECREMENT_TOL * max(1, F_g)``."""


def huber(z: jax.Array) -> jax.Array:
    """Huber function with unit threshold: ``z^2/2`` inside ``|z|<=1``, ``|z|-1/2`` outside."""
    a = jnp.abs(z)
    return jnp.where(a <= 1.0, 0.5 * z * z, a - 0.5)


@dataclass(frozen=True)
class GroupSolution:
    """Best parameters per group and their diagnostics.

    Attributes
    ----------
    theta : ``(G, P)`` parameters (internal parameterisation).
    objective : ``(G,)`` robust objective ``F_g``.
    decrement : ``(G,)`` Newton decrement at the solution.
    converged : ``(G,)`` decrement below :data:`DECREMENT_TOL` and finite.
    at_bound : ``(G,)`` some parameter sits on a box bound.
    cov : ``(G, P, P)`` Gauss-Newton covariance ``s^2 (J^T W J)^{-1}`` over the
        free parameters (``inf`` where not identified, 0 for parameters on a bound).
    sigma2 : ``(G,)`` weighted residual variance ``sum w r^2 / (n - P)``.
    residuals : ``(G, n)`` log-residuals at the solution.
    iterations : total iterations over all starts.
    n_starts : number of starts tried (fewer than given when they agreed early).
    bound_side : ``(G, P)`` -1 where a parameter sits on its lower bound, +1 on its upper
        bound, 0 inside (None when unknown).
    """

    theta: np.ndarray
    objective: np.ndarray
    decrement: np.ndarray
    converged: np.ndarray
    at_bound: np.ndarray
    cov: np.ndarray
    sigma2: np.ndarray
    residuals: np.ndarray
    iterations: int
    n_starts: int
    bound_side: np.ndarray | None = None


@dataclass(frozen=True)
class JacobianStructure:
    """The sparsity of a group's Jacobian, coloured: which parameters each residual row uses.

    ``index[i, k]`` is the parameter of colour ``k`` that residual ``i`` depends on (``-1``:
    none); every parameter has one colour, i.e. appears in one column only, so the parameters
    of a colour have disjoint rows and one forward-mode product per colour recovers all of their
    derivatives. The step law's residuals, for instance, each use one ``E_d``, one ``B_d`` and
    the run's ``beta``: three colours for ``2 n_domains + 1`` parameters.

    A wrong structure gives wrong derivatives, so :meth:`check` compares it with the dense
    Jacobian (the tests do this for every structure the stages declare).

    ``blocks`` (optional, ``(n_blocks, m)``) partitions the parameters into *local* blocks that
    share no residual with another block, the rest being *global* (used by any residual): the
    step law's ``(E_d, B_d)`` per domain and the run's shared ``beta``. The normal matrix is
    then an arrowhead -- block diagonal with a dense border -- and each Newton system is solved
    by the Schur complement of its ``m x m`` blocks (:func:`block_solve`) in ``O(n_blocks)``
    instead of ``O(P^3)``. The partition is checked against ``index`` here.
    """

    index: np.ndarray
    n_params: int
    blocks: np.ndarray | None = None

    def __post_init__(self) -> None:
        idx = np.asarray(self.index)
        if idx.ndim != 2 or idx.min() < -1 or idx.max() >= self.n_params:
            raise ValueError("index must be (n_residuals, n_colours) in [-1, n_params)")
        for k in range(idx.shape[1]):
            others = np.delete(idx, k, axis=1)
            if np.isin(idx[:, k][idx[:, k] >= 0], others).any():
                raise ValueError(f"a parameter of colour {k} appears in another colour")
        if self.blocks is not None:
            blk = np.asarray(self.blocks)
            if blk.ndim != 2 or np.unique(blk).size != blk.size or blk.min() < 0 \
                    or blk.max() >= self.n_params:
                raise ValueError("blocks must be (n_blocks, m) distinct parameter indices")
            owner, _ = self._owners(blk)
            rows = np.where(idx < 0, self.n_params, idx)
            own = np.where(owner[rows] >= 0, owner[rows], -1)
            hi, lo = own.max(1), np.where(own >= 0, own, np.iinfo(int).max).min(1)
            if np.any((hi >= 0) & (hi != lo)):
                raise ValueError("a residual uses parameters of two local blocks")

    def arrays(self) -> tuple:
        """``(seeds (K, P), index (n, K), blocks)`` with ``-1`` mapped to the scratch slot
        ``P``; ``blocks`` is None or ``(local (n_blocks, m), global (q,), plan)`` indices.

        ``plan`` (None when the colours do not allow it) forms the blocks of the normal
        equations without the dense ``P x P`` matrix: each colour is *local* (its parameters
        are all at one position ``s`` of their blocks) or *global*; ``plan = (rows (n_blocks,
        R), local_colours (m,), global_colours (Kg,), onehot (n + 1, Kg, q))``: the residual
        rows of each block (padded with the zero row ``n``), the colour at each block
        position, and which global parameter each row's global colours hold."""
        idx = np.asarray(self.index)
        P = self.n_params
        seeds = np.zeros((idx.shape[1], P))
        for k in range(idx.shape[1]):
            seeds[k, np.unique(idx[:, k][idx[:, k] >= 0])] = 1.0
        blocks = None
        if self.blocks is not None:
            local = np.asarray(self.blocks, int)
            glob = np.setdiff1d(np.arange(P), local.ravel())
            blocks = (jnp.asarray(local), jnp.asarray(glob), self._plan(local, glob))
        return jnp.asarray(seeds), jnp.asarray(np.where(idx < 0, P, idx)), blocks

    def _owners(self, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Block of each parameter and its position in it (``-1``: global), over ``P + 1``
        slots (the last, the scratch slot of absent entries, global)."""
        nb, m = blocks.shape
        owner = np.full(self.n_params + 1, -1)
        pos = np.full(self.n_params + 1, -1)
        owner[blocks.ravel()] = np.repeat(np.arange(nb), m)
        pos[blocks.ravel()] = np.tile(np.arange(m), nb)
        return owner, pos

    def _plan(self, local: np.ndarray, glob: np.ndarray) -> tuple | None:
        idx = np.asarray(self.index)
        n, K = idx.shape
        nb, m = local.shape
        owner, pos = self._owners(local)
        rows_idx = np.where(idx < 0, self.n_params, idx)
        slot_of = {}
        global_cols = []
        for k in range(K):
            used = idx[:, k] >= 0
            positions = np.unique(pos[rows_idx[used, k]])
            if used.any() and (owner[rows_idx[used, k]] >= 0).all() and positions.size == 1:
                slot_of.setdefault(int(positions[0]), []).append(k)
            elif (owner[rows_idx[used, k]] < 0).all():
                global_cols.append(k)
            else:
                return None
        if sorted(slot_of) != list(range(m)) or any(len(v) != 1 for v in slot_of.values()):
            return None
        local_cols = [slot_of[s][0] for s in range(m)]
        row_block = owner[rows_idx[:, local_cols]].max(1)            # -1: a row of no block
        counts = np.bincount(row_block[row_block >= 0], minlength=nb)
        rows = np.full((nb, max(int(counts.max()), 1)), n)
        for b in range(nb):
            r = np.flatnonzero(row_block == b)
            rows[b, :r.size] = r
        gpos = np.full(self.n_params + 1, -1)
        gpos[glob] = np.arange(glob.size)
        onehot = np.zeros((n + 1, len(global_cols), glob.size))
        for a, k in enumerate(global_cols):
            used = idx[:, k] >= 0
            onehot[np.flatnonzero(used), a, gpos[idx[used, k]]] = 1.0
        return (jnp.asarray(rows), jnp.asarray(local_cols), jnp.asarray(global_cols, int),
                jnp.asarray(onehot))

    def check(self, residual: ResidualFn, theta: np.ndarray, data: Any) -> float:
        """Largest ``|J_dense - J_structured|`` at ``theta`` (one group); 0 up to rounding."""
        seeds, index, _ = self.arrays()
        t = jnp.asarray(theta, dtype=jnp.float64)
        J, Jc = jax.jit(lambda t, d: (jax.jacfwd(residual)(t, d), jax.vmap(
            lambda s: jax.jvp(lambda u: residual(u, d), (t,), (s,))[1])(seeds).T))(t, data)
        J, Jc = np.asarray(J), np.asarray(Jc)
        rebuilt = np.zeros((J.shape[0], self.n_params + 1))
        np.put_along_axis(rebuilt, np.asarray(index), Jc, axis=1)
        return float(np.max(np.abs(J - rebuilt[:, :-1])))


def _small_solve(A: jax.Array, b: jax.Array) -> jax.Array:
    """Solve the batched ``(k, m, m)`` systems ``A x = b`` (``b (k, m, r)``); closed form
    (adjugate) for ``m <= 2``, LU otherwise."""
    if A.shape[-1] == 1:
        return b / A
    if A.shape[-1] == 2:
        a, c, d, e = A[:, 0, 0], A[:, 0, 1], A[:, 1, 0], A[:, 1, 1]
        det = (a * e - c * d)[:, None]
        return jnp.stack([e[:, None] * b[:, 0] - c[:, None] * b[:, 1],
                          a[:, None] * b[:, 1] - d[:, None] * b[:, 0]], 1) / det[:, None]
    return jnp.linalg.solve(A, b)


def block_solve(M: jax.Array, rhs: jax.Array, blocks: Any = None) -> jax.Array:
    """Solve ``M x = rhs`` for one group; ``blocks`` from :meth:`JacobianStructure.arrays`.

    With ``blocks = (local (k, m), global (q,))`` and ``M`` zero between different local
    blocks (an arrowhead), eliminate the local blocks ``A_j`` first:
    ``S = C - sum_j B_j^T A_j^{-1} B_j``, ``x_g = S^{-1} (r_g - sum_j B_j^T A_j^{-1} r_j)``,
    ``x_j = A_j^{-1} (r_j - B_j x_g)``. The same ``x`` as a dense solve, up to rounding.
    """
    if blocks is None:
        return jnp.linalg.solve(M, rhs)
    local, glob = blocks[:2]
    xl, xg = _schur(M[local[:, :, None], local[:, None, :]],
                    M[local[:, :, None], glob[None, None, :]], M[glob[:, None], glob[None, :]],
                    rhs[local], rhs[glob])
    return jnp.zeros_like(rhs).at[local].set(xl).at[glob].set(xg)


def _schur(A: jax.Array, Bm: jax.Array, C: jax.Array, rl: jax.Array,
           rg: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Solve the arrowhead system of blocks ``A (k, m, m)``, border ``Bm (k, m, q)``, corner
    ``C (q, q)`` for right-hand sides ``rl (k, m)``, ``rg (q,)``: ``(x_local, x_global)``."""
    if C.shape[0] == 0:
        return _small_solve(A, rl[..., None])[..., 0], rg
    sol = _small_solve(A, jnp.concatenate([rl[..., None], Bm], -1))
    Ar, AB = sol[..., 0], sol[..., 1:]
    S = C - jnp.einsum("kmi,kmj->ij", Bm, AB)
    xg = jnp.linalg.solve(S, rg - jnp.einsum("kmi,km->i", Bm, Ar))
    return Ar - AB @ xg, xg


def _free_system(g: jax.Array, H: jax.Array, theta: jax.Array, lo: jax.Array,
                 hi: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Zero the gradient and decouple the Hessian rows of parameters held on a bound."""
    free = ~_held(g, theta, lo, hi)
    gf = jnp.where(free, g, 0.0)
    Hf = jnp.where(free[:, None] & free[None, :], H, 0.0) + jnp.diag(jnp.where(free, 0.0, 1.0))
    return gf, Hf, free


def _objective(residual: ResidualFn, theta: jax.Array, d: Any, w: jax.Array,
               delta: float) -> jax.Array:
    return jnp.sum(w * huber(residual(theta, d) / delta))


def _irls_weights(residual: ResidualFn, theta: jax.Array, d: Any, w: jax.Array,
                  delta: float) -> tuple[jax.Array, jax.Array]:
    """Huber's ``psi(z)`` and IRLS weight ``min(1, 1/|z|)`` of each residual, ``z = r/delta``
    (times the residual weights)."""
    z = residual(theta, d) / delta
    return w * jnp.clip(z, -1.0, 1.0), w * jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.abs(z), 1e-300))


def _compressed_jacobian(residual: ResidualFn, theta: jax.Array, d: Any,
                         seeds: jax.Array) -> jax.Array:
    """``(n, K)``: one forward-mode product per colour (Curtis, Powell & Reid 1974)."""
    return jax.vmap(lambda s: jax.jvp(lambda t: residual(t, d), (theta,), (s,))[1])(seeds).T


def _normal_equations(residual: ResidualFn, theta: jax.Array, d: Any, w: jax.Array,
                      delta: float, structure: Any) -> tuple[jax.Array, jax.Array]:
    """IRLS gradient ``J^T w psi(z) / delta`` and Hessian ``J^T Omega J / delta^2`` of one group.

    A residual function may carry ``normal_equations(theta, d, psi, omega) -> (J^T psi,
    J^T diag(omega) J)``, the same sums in closed form; the dense path then uses it instead of
    forward-mode differentiation.
    ``structure`` (``None``: dense) is a :class:`JacobianStructure`'s ``(seeds, index)``: one
    forward-mode product per colour gives the compressed Jacobian (Curtis, Powell & Reid 1974),
    and the products are scattered into ``g`` and ``H`` by the parameter each row depends on,
    which costs ``n K^2`` instead of ``n P^2`` for ``K`` colours (the same sums, in another order).
    """
    psi, omega = _irls_weights(residual, theta, d, w, delta)
    closed = getattr(residual, "normal_equations", None)
    if structure is None and closed is not None:
        g, H = closed(theta, d, psi, omega)
        return g / delta, H / delta**2
    if structure is None:
        J = jax.jacfwd(residual)(theta, d)
        return J.T @ psi / delta, (J * omega[:, None]).T @ J / delta**2
    seeds, index, _ = structure                   # (K, P) one-hot colours, (n, K) in [0, P]
    P = theta.size
    Jc = _compressed_jacobian(residual, theta, d, seeds)
    g = jnp.zeros(P + 1).at[index].add(Jc * psi[:, None])[:P] / delta
    outer = omega[:, None, None] * Jc[:, :, None] * Jc[:, None, :]
    H = jnp.zeros((P + 1, P + 1)).at[index[:, :, None], index[:, None, :]].add(outer)
    return g, H[:P, :P] / delta**2


def _held(g: jax.Array, theta: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """Parameters on a bound whose gradient pushes them out of the box."""
    span = 1e-9 * (1.0 + jnp.abs(hi - lo))
    return ((theta <= lo + span) & (g > 0)) | ((theta >= hi - span) & (g < 0))


def _block_system(residual: ResidualFn, theta: jax.Array, d: Any, w: jax.Array, lo: jax.Array,
                  hi: jax.Array, delta: float, structure: Any):
    """:func:`_linear_system` in block form (``structure`` has a plan): the normal equations'
    blocks, border and corner summed over each block's rows, never the dense matrix."""
    seeds, _, (local, glob, (rows, lcols, gcols, onehot)) = structure
    P, m = theta.size, local.shape[1]
    psi, omega = _irls_weights(residual, theta, d, w, delta)
    psi, omega = jnp.append(psi, 0.0) / delta, jnp.append(omega, 0.0) / delta**2
    Jc = _compressed_jacobian(residual, theta, d, seeds)
    Jc = jnp.concatenate([Jc, jnp.zeros((1, Jc.shape[1]))])            # row n: zero (padding)
    Lb, Ob = Jc[:, lcols][rows], omega[rows]                              # (k, R, m), (k, R)
    A = jnp.einsum("brs,br,brt->bst", Lb, Ob, Lb)
    gl = jnp.einsum("brs,br->bs", Lb, psi[rows])
    Jg = jnp.einsum("ik,ikj->ij", Jc[:, gcols], onehot)                   # (n + 1, q)
    Bm = jnp.einsum("brs,br,brj->bsj", Lb, Ob, Jg[rows])
    C = jnp.einsum("ij,i,ik->jk", Jg, omega, Jg)
    gg = Jg.T @ psi
    held = _held(jnp.zeros(P).at[local].set(gl).at[glob].set(gg), theta, lo, hi)
    hl, hg = held[local], held[glob]
    eye_m = jnp.eye(m)
    A = jnp.where(hl[:, :, None] | hl[:, None, :], 0.0, A) + hl[:, :, None] * eye_m
    Bm = jnp.where(hl[:, :, None] | hg[None, None, :], 0.0, Bm)
    C = jnp.where(hg[:, None] | hg[None, :], 0.0, C) + jnp.diag(hg.astype(C.dtype))
    gl, gg = jnp.where(hl, 0.0, gl), jnp.where(hg, 0.0, gg)
    gf = jnp.zeros(P).at[local].set(gl).at[glob].set(gg)
    diag = jnp.zeros(P).at[local].set(jnp.diagonal(A, axis1=1, axis2=2)).at[glob].set(
        jnp.diagonal(C))

    def solve(v: jax.Array) -> jax.Array:
        xl, xg = _schur(A + v[local][:, :, None] * eye_m, Bm, C + jnp.diag(v[glob]), gl, gg)
        return jnp.zeros(P).at[local].set(xl).at[glob].set(xg)

    return gf, diag, solve


def _linear_system(residual: ResidualFn, theta: jax.Array, d: Any, w: jax.Array, lo: jax.Array,
                   hi: jax.Array, delta: float, structure: Any = None):
    """IRLS gradient ``gf`` over the free parameters, the diagonal of their Hessian ``Hf``
    (1 for a held parameter) and ``solve(v)``, the solution of ``(Hf + diag(v)) x = gf``."""
    if structure is not None and structure[2] is not None and structure[2][2] is not None:
        return _block_system(residual, theta, d, w, lo, hi, delta, structure)
    g, H = _normal_equations(residual, theta, d, w, delta, structure)
    gf, Hf, _ = _free_system(g, H, theta, lo, hi)
    blocks = None if structure is None else structure[2]
    return gf, jnp.diag(Hf), lambda v: block_solve(Hf + jnp.diag(v), gf, blocks)


def _linearise(residual: ResidualFn, theta: jax.Array, d: Any, w: jax.Array, lo: jax.Array,
               hi: jax.Array, delta: float, structure: Any = None):
    """:func:`_linear_system` and the Newton decrement ``gf^T Hf^-1 gf``."""
    gf, diag, solve = _linear_system(residual, theta, d, w, lo, hi, delta, structure)
    newton = solve(jnp.full(theta.size, 1e-12 * jnp.sum(diag)))
    return gf, diag, solve, jnp.dot(gf, newton)


@partial(jax.jit, static_argnums=(0,))
def _lm_step(residual: ResidualFn, theta: jax.Array, F: jax.Array, lam: jax.Array, data: Any,
             weights: jax.Array, lo: jax.Array, hi: jax.Array, delta: float, structure: Any,
             move: Any = True):
    """One damped, projected Levenberg-Marquardt step for every group, and the Newton
    decrement where it starts.  ``move=False`` (a traced flag: the same program) keeps
    ``theta`` and ``F``: the decrement of a final state, without a program of its own."""
    def one(theta, F, lam, d, w, lo_g, hi_g):
        gf, diag, solve, dec = _linearise(residual, theta, d, w, lo_g, hi_g, delta, structure)
        step = -solve(lam * (diag + 1e-12 * jnp.sum(diag) / theta.size))
        step = jnp.where(jnp.isfinite(step), step, 0.0)
        cand = jnp.clip(theta + step, lo_g, hi_g)
        Fc = _objective(residual, cand, d, w, delta)
        ok = jnp.isfinite(Fc) & (Fc <= F) & move
        theta = jnp.where(ok, cand, theta)
        F = jnp.where(ok, Fc, F)
        lam = jnp.where(ok, jnp.maximum(lam / 3.0, 1e-12), jnp.minimum(lam * 4.0, 1e16))
        return theta, F, lam, dec

    return jax.vmap(one)(theta, F, lam, data, weights, lo, hi)


@partial(jax.jit, static_argnums=(0,))
def _objectives(residual: ResidualFn, theta: jax.Array, data: Any, weights: jax.Array,
                delta: float) -> jax.Array:
    """Objective of every group (a small program: no derivatives)."""
    return jax.vmap(lambda t, d, w: _objective(residual, t, d, w, delta))(theta, data, weights)


AGREE_RTOL = 1e-9
"""Two starts agree on a group when their objectives differ by at most this relative amount
(the loop stops at a decrement of ``1e-10 F``, so converged starts in one basin agree)."""

COMPACT_MIN = 16
"""A working batch of at least this many groups sheds its finished groups once at most a
quarter of them are still active and they fit a smaller :func:`_bucket` (see :func:`_lm`)."""


def _bucket(n: int) -> int:
    """Batch size for ``n`` active groups: the next power of two (at least 8), so that the
    compiled step is reused across calls."""
    return max(8, 1 << int(np.ceil(np.log2(max(n, 1)))))


PAD_MAX_WORK = 2**27
"""``solve_groups(pad=True)`` pads only problems of at most this many ``groups x rows x P^2``
(the normal equations' work per iteration): above it a solve costs far more than compiling
its programs (~0.3 s each), and up to 25 % more groups and rows would cost more than it saves
(a 128-source x 200-domain x 1,000-mixture swarm, ``fit --law auto``: 364.1 s with its mixing
stages padded, 299.7 s without)."""


def _fine_bucket(n: int) -> int:
    """``n`` rounded up to 8, 10, 12, 14 x a power of two (at least 8): four sizes an octave,
    at most 25 % padding -- the full batch of a problem, and the rows of large problems."""
    if n <= 8:
        return 8
    e = 1 << (int(np.ceil(np.log2(n))) - 4)        # n in (8e, 16e]
    return int(-(-n // (2 * e)) * 2 * e)


def _row_bucket(n: int) -> int:
    """Row count of a padded problem (:func:`solve_groups`'s ``pad``): the next power of two
    up to 64 rows (at least 8; padding small problems costs nothing), then :func:`_fine_bucket`."""
    return _bucket(n) if n <= 64 else _fine_bucket(n)


def _pad_problem(data: Any, weights: np.ndarray, bounds: np.ndarray,
                 starts: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """The problem with groups padded to :func:`_fine_bucket` (copies of the last group) and
    rows to :func:`_row_bucket` (copies of the last row, weight 0): problems whose sizes
    share a bucket share compiled programs.  Data leaves of two or more axes whose second
    axis has the weights' length are rows; the others are per group."""
    G, n = weights.shape
    dG, dn = _fine_bucket(G) - G, _row_bucket(n) - n

    def pad(a: Any, rows: bool) -> Any:
        xp = jnp if isinstance(a, jax.Array) else np
        widths = [(0, dG)] + [(0, 0)] * (np.ndim(a) - 1)
        if rows:
            widths[1] = (0, dn)
        return xp.pad(a, widths, mode="edge")

    data = jax.tree.map(lambda a: pad(a, np.ndim(a) >= 2 and np.shape(a)[1] == n), data)
    weights = np.pad(np.pad(np.asarray(weights, float), [(0, 0), (0, dn)]), [(0, dG), (0, 0)],
                     mode="edge")
    bounds = np.pad(bounds, [(0, dG), (0, 0), (0, 0)], mode="edge")
    starts = np.pad(starts, [(0, 0), (0, dG), (0, 0)], mode="edge")
    return data, weights, bounds, starts


def _write_back(full: list[np.ndarray] | None, state: tuple, rows: np.ndarray,
                real: np.ndarray) -> list[np.ndarray]:
    """The full-batch numpy state with the working slots that hold their own group written
    in (``full=None``: the working batch is still the full one)."""
    if full is None:
        return [np.array(a) for a in state]
    for dst, src in zip(full, state):
        dst[rows[real]] = np.asarray(src)[real]
    return full


def _lm(residual: ResidualFn, theta: jax.Array, data: Any, weights: jax.Array, lo: jax.Array,
        hi: jax.Array, max_iter: int, delta: float, structure: Any = None):
    """Iterate :func:`_lm_step` until every group's decrement is tiny or damping saturates.

    Groups are independent, so a group whose decrement is below the stopping tolerance is
    finished: when at most a quarter of a working batch of ``>= COMPACT_MIN`` groups is still
    active and they fit a smaller :func:`_bucket`, the active ones move to that batch (padded
    with copies) and the finished ones keep their state. A few slow groups then no longer cost
    the whole batch's work (on Ye et al.'s 5-group table: 104 runs, a handful need 500
    iterations; on RedPajama's joint law, one domain of 22 needs 530-745 per start, the others
    40-140).

    The loop runs in Python around a compiled step (``lax.while_loop`` around
    this body deadlocks intermittently in the XLA CPU runtime of jax 0.10).
    """
    F = _objectives(residual, theta, data, weights, delta)
    lam = jnp.full(theta.shape[0], 1e-3, dtype=jnp.float64)   # not weakly typed: one program
    state = (theta, F, lam, jnp.full_like(lam, jnp.inf))    # theta, F, lambda, decrement
    batch = (data, weights, lo, hi)
    full = None                                    # numpy state of every group, once shrunk
    rows = np.arange(theta.shape[0])               # full-batch index of each working slot
    real = np.ones(theta.shape[0], bool)           # slot holds its own group (not a copy)
    it = 0
    while it < max_iter:
        state = _lm_step(residual, *state[:3], *batch, delta, structure, True)
        it += 1
        if it % 5 == 0:
            F_, lam_, dec_ = (np.asarray(a) for a in state[1:])
            tol = DECREMENT_TOL * 1e-2 * np.maximum(1.0, F_)
            active = (dec_ > tol) & (lam_ < 1e15) & real
            if not active.any():
                break
            n_act = int(active.sum())
            if (len(rows) >= COMPACT_MIN and n_act <= len(rows) // 4
                    and _bucket(n_act) < len(rows)):
                full = _write_back(full, state, rows, real)
                keep = rows[active]
                rows = np.concatenate([keep, np.full(_bucket(n_act) - n_act, keep[0])])
                real = np.arange(len(rows)) < n_act
                state = tuple(jnp.asarray(a[rows]) for a in full)
                batch = jax.tree.map(lambda a: jnp.asarray(a)[rows], (data, weights, lo, hi))
    if full is not None:
        state = tuple(jnp.asarray(a) for a in _write_back(full, state, rows, real))
    theta, F = state[:2]
    # the decrement at the final point: the step's program, not moving (no second program)
    dec = _lm_step(residual, theta, F, state[2], data, weights, lo, hi, delta, structure,
                   False)[3]
    return theta, F, dec, it


@partial(jax.jit, static_argnums=(0,))
def _covariance(residual: ResidualFn, theta: jax.Array, data: Any, weights: jax.Array,
                lo: jax.Array, hi: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    def one(theta_g, d, w, lo_g, hi_g):
        r = residual(theta_g, d)
        J = jax.jacfwd(residual)(theta_g, d)
        P = theta_g.size
        dof = jnp.maximum(jnp.sum(w) - P, 1.0)
        s2 = jnp.sum(w * r * r) / dof
        JtJ = (J * w[:, None]).T @ J
        span = 1e-9 * (1.0 + jnp.abs(hi_g - lo_g))
        held = (theta_g <= lo_g + span) | (theta_g >= hi_g - span)
        free = ~held
        M = jnp.where(free[:, None] & free[None, :], JtJ, 0.0) + jnp.diag(jnp.where(free, 0.0, 1.0))
        inv = jnp.linalg.pinv(M, hermitian=True)
        ok = jnp.all(jnp.isfinite(inv)) & (jnp.linalg.matrix_rank(M) == P)
        inv = jnp.where(free[:, None] & free[None, :], inv, 0.0)
        cov = jnp.where(ok, s2 * inv, jnp.inf)
        return cov, s2, r

    return jax.vmap(one)(theta, data, weights, lo, hi)


def solve_groups(
    residual: ResidualFn,
    data: Any,
    weights: np.ndarray,
    bounds: np.ndarray,
    starts: np.ndarray,
    *,
    delta: float = 1e-3,
    max_iter: int = 2000,
    structure: JacobianStructure | None = None,
    agree: int | None = None,
    pad: bool = False,
) -> GroupSolution:
    """Fit every group from every start (or until the starts agree); keep the best per group.

    Parameters
    ----------
    residual : ``residual(theta_g, data_g) -> (n,)`` log-residuals; must be a
        module-level or otherwise stable function (it keys the compilation cache).
    data : pytree of arrays with leading axis ``G``.
    weights : ``(G, n)`` residual weights (0 masks padding).
    bounds : ``(G, P, 2)`` box bounds of the parameters.
    starts : ``(S, G, P)`` starting points.
    delta : Huber threshold on log-residuals.
    max_iter : iteration cap per start.
    structure : the Jacobian's sparsity, shared by the groups (default: dense). The iterates
        are those of the dense computation up to rounding; the normal equations cost
        ``n K^2`` instead of ``n P^2``.
    agree : stop trying further starts on a group once its best objective has been reached
        by this many starts (each within :data:`AGREE_RTOL` of it, the others worse), i.e.
        its landscape has shown one basin ``agree`` times; None (default) runs every start.
        Later starts run only on the groups still undecided (a batch padded to
        :func:`_bucket`), so one domain with two basins does not cost every domain all
        starts. The starts are taken in the order given, so put the cheapest first.
    pad : solve the problem padded to bucketed sizes (:func:`_pad_problem`), so that folds
        and tables of nearby sizes reuse one compiled program instead of compiling their own
        (0.1-0.5 s each on 2 cores; a backtest compiles one set per fold).  Only for data
        whose leaves of two or more axes all hold rows on their second axis, matching
        ``weights``.  The padded rows have weight 0 and the padded groups are copies: the
        solution is that of the unpadded problem up to rounding.  Problems of more than
        :data:`PAD_MAX_WORK` are solved as they are.
    """
    G0, n0 = np.shape(weights)
    if pad and G0 * n0 * starts.shape[-1] ** 2 <= PAD_MAX_WORK:
        data, weights, bounds, starts = _pad_problem(data, weights, bounds, starts)
    struct = None if structure is None else structure.arrays()
    lo = jnp.asarray(bounds[..., 0])
    hi = jnp.asarray(bounds[..., 1])
    w = jnp.asarray(weights, dtype=jnp.float64)
    best = None
    iterations = 0
    hits = np.zeros(starts.shape[1], int)         # starts that reached each group's best
    tried = 0
    G = starts.shape[1]
    for s in range(starts.shape[0]):
        todo = np.arange(G)
        if agree is not None and s >= agree:
            todo = np.flatnonzero(hits < agree)
            if todo.size == 0:
                break
        tried += 1
        sub, rows = (data, w, lo, hi), todo
        if todo.size < G:            # the undecided groups only, padded with copies
            rows = np.concatenate([todo, np.full(_bucket(todo.size) - todo.size, todo[0])])
            sub = jax.tree.map(lambda a: jnp.asarray(a)[rows], sub)
        theta0 = jnp.clip(jnp.asarray(starts[s][rows], dtype=jnp.float64), sub[2], sub[3])
        th_s, F_s, dec_s, it = _lm(residual, theta0, *sub, max_iter, float(delta), struct)
        theta = np.array(starts[s], float) if best is None else best[0].copy()
        F, dec = np.full(G, np.inf), np.full(G, np.inf)
        theta[todo], F[todo], dec[todo] = (np.asarray(a)[:todo.size] for a in (th_s, F_s, dec_s))
        iterations += int(it)
        F = np.where(np.isfinite(F), F, np.inf)
        cand = (theta, F, dec)
        if best is None:
            best = cand
            hits[:] = np.isfinite(F)
        else:
            tie = np.abs(F - best[1]) <= AGREE_RTOL * np.maximum(1.0, np.abs(best[1]))
            better = cand[1] < best[1]
            hits = np.where(tie, hits + 1, np.where(better, 1, hits))
            best = (np.where(better[:, None], cand[0], best[0]), np.where(better, cand[1], best[1]),
                    np.where(better, cand[2], best[2]))
    theta, F, dec = (a[:G0] for a in best)
    if not np.all(np.isfinite(F)):
        bad = np.flatnonzero(~np.isfinite(F)).tolist()
        raise FitError(f"no start gave a finite objective for groups {bad[:10]}", groups=bad)
    cov, s2, r = (np.asarray(a)[:G0] for a in _covariance(residual, jnp.asarray(best[0]), data, w,
                                                             lo, hi))
    r, bounds = r[:, :n0], bounds[:G0]
    span = 1e-9 * (1.0 + np.abs(bounds[..., 1] - bounds[..., 0]))
    side = np.where(theta <= bounds[..., 0] + span, -1, 0) + np.where(
        theta >= bounds[..., 1] - span, 1, 0)
    at_bound = (side != 0).any(axis=1)
    return GroupSolution(theta=theta, objective=F, decrement=dec, bound_side=side.astype(np.int8),
                         converged=np.isfinite(dec) & (dec <= DECREMENT_TOL * np.maximum(1.0, F)),
                         at_bound=at_bound,
                         cov=cov, sigma2=s2, residuals=r, iterations=iterations,
                         n_starts=tried)


@dataclass(frozen=True)
class ProfileResult:
    """Minimum of a profile objective over one shared log-parameter."""

    value: float          # the shared parameter (log space)
    stderr: float         # standard error of the log-parameter from the profile curvature
    converged: bool
    solution: GroupSolution


def profile_shared(
    fit_at: Callable[[float], GroupSolution],
    lo: float,
    hi: float,
    *,
    sigma2: Callable[[GroupSolution], float],
    delta: float,
    n_grid: int = 9,
    xtol: float = 1e-7,
) -> ProfileResult:
    """Minimise ``min_theta F(theta; s)`` over a shared scalar ``s`` in ``[lo, hi]``.

    A grid of ``n_grid`` values brackets the minimum; bounded Brent refines it
    to ``xtol``.  The standard error follows from the profile's curvature:
    ``var(s) = sigma^2 / (delta^2 F''(s))`` (the Huber objective is
    ``sum r^2 / (2 delta^2)`` near the optimum).
    """
    grid = np.linspace(lo, hi, n_grid)
    cache: dict[float, GroupSolution] = {}

    def F(s: float) -> float:
        if s not in cache:
            cache[s] = fit_at(float(s))
        return float(np.sum(cache[s].objective))

    vals = np.array([F(s) for s in grid])
    i = int(np.argmin(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, n_grid - 1)]
    res = scipy.optimize.minimize_scalar(F, bounds=(a, b), method="bounded",
                                         options={"xatol": xtol, "maxiter": 200})
    s = float(res.x) if res.fun <= vals[i] else float(grid[i])
    sol = cache.get(s) or fit_at(s)
    h = 1e-3
    curv = (F(min(s + h, hi)) - 2 * F(s) + F(max(s - h, lo))) / h**2
    var = sigma2(sol) / (delta**2 * curv) if curv > 0 else np.inf
    on_edge = s <= lo + 1e-6 or s >= hi - 1e-6
    return ProfileResult(value=s, stderr=float(np.sqrt(var)),
                         converged=bool(res.success) and not on_edge and bool(sol.converged.all()),
                         solution=sol)


def warn_unconverged(stage: str, labels: list[str], converged: np.ndarray,
                     decrement: np.ndarray, *, emit: bool = True) -> list[str]:
    """Emit a :class:`ConvergenceWarning` for unconverged groups (``emit=False``: do not) and
    return its text."""
    bad = [labels[i] for i in np.flatnonzero(~converged)]
    if not bad:
        return []
    worst = np.nanmax(np.where(np.isfinite(decrement), decrement, np.nan)) if np.any(
        np.isfinite(decrement)) else float("inf")
    msg = (f"{stage}: not converged for {len(bad)} of {len(labels)} fits "
           f"({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}); "
           f"largest Newton decrement {worst:.2e}")
    if emit:
        warnings.warn(msg, ConvergenceWarning, stacklevel=3)
    return [msg]
