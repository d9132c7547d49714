"""The laws: pure JAX functions whose signatures name their parameters.

Each function evaluates one law of Ye et al. (2024), "Data Mixing Laws", or of
the scaling-law literature it nests with.  They are pure, broadcast over
leading axes and are differentiable with :func:`jax.grad`.  The registry
:data:`LAWS` maps a law's name to its function, formula and parameters, so
that fitting code, reports and artifacts can refer to laws by name.

Gauge of the mixing laws: because ``sum_j r_j = 1``, adding a constant to every
``t_ij`` multiplies ``exp(t_i . r)`` by a constant that ``k_i`` absorbs, so the
``t_i`` are identified only up to an additive constant.  mixlaws fixes the gauge
by ``sum_j t_ij = 0`` (:func:`sum_zero_basis` parameterises that subspace).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp
import numpy as np

from .. import _config  # noqa: F401

__all__ = ["Array", "step_law", "size_law", "power_law_log", "mixing_law",
           "implicit_mixing_law", "joint_law", "joint_mix_law", "explicit_aggregate", "sum_zero_basis",
           "MIXING_THETA", "mixing_theta", "mixing_params", "mixing_terms", "Law", "LAWS"]

Array = jnp.ndarray


def step_law(D: Array, E: Array, B: Array, beta: Array) -> Array:
    r"""Loss against training progress of one run.

    .. math:: L(D) = E + B \, D^{-\beta}

    Parameters
    ----------
    D : training tokens (or steps) at the checkpoint, > 0.
    E : irreducible loss of the run at infinite data, > 0.
    B : data-term amplitude, > 0.
    beta : data exponent, in (0, 2).
    """
    return power_law_log(jnp.log(D), E, B, beta)


def power_law_log(log_x: Array, E: Array, A: Array, exponent: Array) -> Array:
    r"""The step and size laws at ``log x`` (what the fits use: ``log(x / x_ref)``, amplitude at ``x_ref``).

    .. math:: L = E + A \, e^{-\mathrm{exponent} \cdot \log x}
    """
    return E + A * jnp.exp(-exponent * log_x)


def size_law(N: Array, E: Array, A: Array, alpha: Array) -> Array:
    r"""Loss against model size at fixed training tokens.

    .. math:: L(N) = E + A \, N^{-\alpha}

    Parameters
    ----------
    N : model size (non-embedding parameters), > 0.
    E : irreducible loss at infinite size, > 0.
    A : size-term amplitude, > 0.
    alpha : size exponent, in (0, 2).
    """
    return power_law_log(jnp.log(N), E, A, alpha)


def mixing_law(r: Array, c: Array, k: Array, t: Array) -> Array:
    r"""Per-domain data mixing law of Ye et al. (2024).

    .. math:: L_i(r) = c_i + k_i \exp\Big(\sum_j t_{ij} r_j\Big)

    Parameters
    ----------
    r : mixture proportions, shape ``(..., M)``, on the simplex (or their coordinates
        ``r H`` in the sum-zero basis, with ``t`` given as ``u``: ``r . t = (r H) . u``).
    c : irreducible part of the loss, > 0; scalar or ``(n_domains,)``.
    k : amplitude, > 0; same shape as ``c``.
    t : source effects, shape ``(M,)`` or ``(n_domains, M)``, each row with ``sum == 0``
        (gauge); ``t_j < 0`` means source ``j`` helps the domain.

    Returns
    -------
    ``(...)`` for one domain, ``(..., n_domains)`` for a row of ``t`` per domain.

    Examples
    --------
    >>> import numpy as np
    >>> float(mixing_law(np.array([0.5, 0.5]), 2.0, 1.0, np.array([-1.0, 1.0])))
    3.0
    """
    return c + k * jnp.exp(jnp.tensordot(r, t, axes=([-1], [-1])))


def implicit_mixing_law(r: Array, c: Array, a: Array, t: Array) -> Array:
    r"""Implicit aggregation over ``K`` latent validation domains.

    .. math:: L(r) = c + \sum_{k=1}^{K} s_k \exp(b_k + t_k \cdot r)
              = c + \sum_{k=1}^{K} \exp(a_k + t_k \cdot r)

    Only ``s_k e^{b_k}`` is identified, so the law is written with
    ``a_k = \log s_k + b_k``; each row ``t_k`` is gauge-fixed to sum to zero.

    Parameters
    ----------
    r : mixture proportions, shape ``(..., M)``.
    c : irreducible loss, > 0; scalar, or ``(n_domains,)`` for one law per domain.
    a : log-amplitudes of the latent domains, shape ``(K,)`` or ``(n_domains, K)``.
    t : source effects per latent domain, shape ``(K, M)`` or ``(n_domains, K, M)``.

    With a leading domain axis this is the ``K``-term mixing law of each domain (the
    ``nested-sum`` family), returning ``(..., n_domains)``.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array([[-1.0, 1.0], [1.0, -1.0]])
    >>> round(float(implicit_mixing_law(np.array([1.0, 0.0]), 2.0, np.zeros(2), t)), 6)  # 2+1/e+e
    5.086161
    """
    return c + jnp.sum(jnp.exp(a + jnp.tensordot(r, t, axes=([-1], [-1]))), axis=-1)


def joint_law(
    r: Array,
    N: Array,
    D: Array,
    c: Array,
    k: Array,
    t: Array,
    A: Array,
    alpha: Array,
    B: Array,
    beta: Array,
) -> Array:
    r"""Joint law in mixture, model size and training tokens (Chinchilla form).

    .. math:: L(r, N, D) = c + k \exp(t \cdot r) + A N^{-\alpha} + B D^{-\beta}

    The mixture enters through the irreducible term ``E(r) = c + k exp(t . r)``
    (in the spirit of Shukor et al. 2025).  At fixed ``(N, D)`` it is a
    :func:`mixing_law`, at fixed ``(r, N)`` a :func:`step_law`, at fixed
    ``(r, D)`` a :func:`size_law`; the nested pipeline is exact on it.
    """
    return mixing_law(r, c, k, t) + size_law(N, 0.0, A, alpha) + step_law(D, 0.0, B, beta)


def joint_mix_law(
    r: Array,
    N: Array,
    D: Array,
    c: Array,
    k: Array,
    t: Array,
    a: Array,
    p: Array,
    alpha: Array,
    b: Array,
    q: Array,
    beta: Array,
) -> Array:
    r"""Joint law whose size and data terms also depend on the mixture.

    .. math::

        L(r, N, D) = c + k \exp(t \cdot r) + \exp(a + p \cdot r)\, N^{-\alpha}
                     + \exp(b + q \cdot r)\, D^{-\beta}

    In the spirit of Shukor et al. (2025), "Scaling Laws for Optimal Data Mixtures":
    the amplitudes of the size and data terms are log-linear in the mixture,
    ``A(r) = exp(a + p . r)`` and ``B(r) = exp(b + q . r)``.  ``t``, ``p`` and ``q`` each
    sum to zero (gauge: a constant added to ``p`` is absorbed by ``a``, to ``q`` by
    ``b``, to ``t`` by ``k``).  With ``p = q = 0`` it is :func:`joint_law` with
    ``A = e^a``, ``B = e^b``.

    Parameters
    ----------
    r : mixture proportions ``(..., M)``.
    N, D : model size and training tokens, > 0.
    c, k : irreducible offset and mixing amplitude, > 0.
    t, p, q : source effects on the irreducible term, the size amplitude and the data
        amplitude, shape ``(M,)`` (or ``(n_domains, M)`` with per-domain ``c, k, a, ...``
        of shape ``(n_domains,)`` to evaluate every domain at once, as :func:`mixing_law`).
    a, b : log-amplitudes of the size and data terms at ``p . r = q . r = 0``.
    alpha, beta : size and data exponents, in (0, 2).
    """
    def dot(x: Array) -> Array:
        return jnp.tensordot(r, x, axes=([-1], [-1]))

    return (mixing_law(r, c, k, t) + jnp.exp(a + dot(p) - alpha * jnp.log(N))
            + jnp.exp(b + dot(q) - beta * jnp.log(D)))


def explicit_aggregate(losses: Array, weights: Array) -> Array:
    r"""Explicit aggregation with known validation weights.

    .. math:: L(r) = \sum_i w_i L_i(r), \qquad \sum_i w_i = 1
    """
    return losses @ weights


def sum_zero_basis(m: int) -> np.ndarray:
    """Orthonormal basis ``H`` of the sum-zero subspace of R^m, shape ``(m, m-1)``.

    ``t = H @ u`` maps ``u`` in R^(m-1) one-to-one onto vectors with
    ``sum(t) == 0``; ``u = H.T @ t`` inverts it.  Columns are Helmert contrasts.
    """
    if m < 1:
        raise ValueError("need at least one source")
    H = np.zeros((m, m - 1))
    for j in range(1, m):
        H[:j, j - 1] = 1.0 / np.sqrt(j * (j + 1))
        H[j, j - 1] = -j / np.sqrt(j * (j + 1))
    return H


MIXING_THETA = ("c", "log k", "u")
"""Layout of a fitted mixing law's vector ``theta = (c, log k, u_1..u_{M-1})`` with ``t = H u``."""


def mixing_theta(c: Array, k: Array, t: Array, H: np.ndarray) -> np.ndarray:
    """Pack ``(c, k, t)`` (leading axes alike) into ``theta = (c, log k, t H)``."""
    c, k, t = np.asarray(c, float), np.asarray(k, float), np.asarray(t, float)
    return np.concatenate([c[..., None], np.log(k)[..., None], t @ H], -1)


def mixing_params(theta: np.ndarray, H: np.ndarray) -> dict[str, np.ndarray]:
    """Unpack ``theta = (c, log k, u)`` (any leading axes) into canonical ``{c, k, t = H u}``."""
    theta = np.asarray(theta, float)
    return {"c": theta[..., 0], "k": np.exp(theta[..., 1]), "t": theta[..., 2:] @ H.T}


def mixing_terms(RH: Array, theta: Array) -> tuple[Array, Array]:
    """``(f, e)`` of the mixing law at the basis coordinates ``RH (n, M-1)`` for ``theta (nd, P)``:
    ``e = k exp(u . RH)`` and ``f = c + e``, both ``(nd, n)``."""
    e = jnp.exp(theta[:, 1:2] + theta[:, 2:] @ RH.T)
    return theta[:, :1] + e, e


@dataclass(frozen=True)
class Law:
    """A registered law: its function, formula, parameter names and how they are fitted.

    ``positive`` names the parameters constrained positive; ``log_space`` those of them
    that the fit parameterises by their logarithm (the others are fitted on a linear scale
    within bounds, e.g. the irreducible terms in ``[0, min observed loss]``).
    """

    name: str
    func: Callable[..., Array]
    formula: str
    variables: tuple[str, ...]
    params: tuple[str, ...]
    positive: tuple[str, ...]
    log_space: tuple[str, ...]


LAWS: dict[str, Law] = {
    law.name: law
    for law in (
        Law("step", step_law, "L(D) = E + B * D^(-beta)", ("D",), ("E", "B", "beta"),
            ("E", "B", "beta"), ("beta",)),
        Law("size", size_law, "L(N) = E + A * N^(-alpha)", ("N",), ("E", "A", "alpha"),
            ("E", "A", "alpha"), ("A", "alpha")),
        Law("mixing", mixing_law, "L_i(r) = c_i + k_i * exp(sum_j t_ij r_j), sum_j t_ij = 0",
            ("r",), ("c", "k", "t"), ("c", "k"), ("k",)),
        Law("implicit", implicit_mixing_law,
            "L(r) = c + sum_k exp(a_k + t_k . r), sum_j t_kj = 0", ("r",), ("c", "a", "t"),
            ("c",), ()),
        Law("joint", joint_law,
            "L(r, N, D) = c + k * exp(t . r) + A * N^(-alpha) + B * D^(-beta)",
            ("r", "N", "D"), ("c", "k", "t", "A", "alpha", "B", "beta"),
            ("c", "k", "A", "alpha", "B", "beta"), ("k", "A", "alpha", "B", "beta")),
        Law("joint-mix", joint_mix_law,
            "L(r, N, D) = c + k * exp(t . r) + exp(a + p . r) * N^(-alpha) "
            "+ exp(b + q . r) * D^(-beta), sum t = sum p = sum q = 0",
            ("r", "N", "D"), ("c", "k", "t", "a", "p", "alpha", "b", "q", "beta"),
            ("c", "k", "alpha", "beta"), ("k", "alpha", "beta")),
    )
}
