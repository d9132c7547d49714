"""The known truth behind a simulated sweep: :class:`SweepTruth` and :func:`random_truth`.

For validation domain ``d``, mixture ``r``, model size ``N`` and tokens ``D``:

.. math::

    L_d(r, N, D) = c_d + k_d \\exp(t_d \\cdot r) + A_d \\exp(s\\, u_d \\cdot r) N^{-\\alpha}
                   + B_d D^{-\\beta}

with sum-zero rows ``t_d`` and ``u_d`` (gauge) and ``c_d, k_d, A_d, B_d > 0``. Public through
:mod:`mixlaws.simulate`, which also draws sweeps from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..errors import ArtifactError, MixlawsError, MixtureError, ScaleError

__all__ = ["SweepTruth", "random_truth", "domain_weights"]

_KIND = "mixlaws.SweepTruth"
_VERSION = 1
_ARRAYS = ("c", "k", "t", "A", "B", "u")
_SCALARS = ("alpha", "beta", "mixture_scaling", "noise", "run_noise")
#: extra names that make a validation domain benefit from a training source
_AFFINITY = {"prose": ("book", "fiction", "gutenberg", "pg19", "novel"),
             "science": ("paper", "arxiv", "academic", "pubmed", "s2orc"),
             "web": ("cc", "crawl", "c4", "refinedweb"),
             "code": ("github", "stack"), "math": ("arxiv", "proof", "dm_math")}


@dataclass(frozen=True, eq=False)
class SweepTruth:
    """Known parameters of a simulated sweep (see the module docstring for the law).

    Attributes
    ----------
    sources, domains : tuple of str
        Training sources (``M``) and validation domains (``n_dom``).
    c, k : ndarray, shape (n_dom,)
        Irreducible offset and mixing amplitude, both > 0.
    t : ndarray, shape (n_dom, M)
        Mixing coefficients, rows sum to 0; ``t_dj < 0`` means source ``j`` helps ``d``.
    A, B : ndarray, shape (n_dom,)
        Size and data coefficients (> 0); ``alpha``, ``beta`` their shared exponents.
    u : ndarray, shape (n_dom, M)
        Sum-zero direction of the mixture dependence of ``A``; ``mixture_scaling`` its strength ``s``.
    noise, run_noise : float
        Relative sd of per-checkpoint noise and of the per-run offset.
    """

    sources: tuple[str, ...]
    domains: tuple[str, ...]
    c: np.ndarray
    k: np.ndarray
    t: np.ndarray
    A: np.ndarray
    alpha: float
    B: np.ndarray
    beta: float
    u: np.ndarray
    mixture_scaling: float = 0.0
    noise: float = 0.003
    run_noise: float = 0.002

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        for name in ("sources", "domains"):
            names = tuple(getattr(self, name))
            bad = not names or len(set(names)) < len(names)
            if bad or any(not isinstance(x, str) or not x for x in names):
                raise MixlawsError(f"SweepTruth: {name} must be non-empty, unique strings; "
                                   f"got {names!r}")
            set_(name, names)
        shapes = {"c": (self.n_domains,), "k": (self.n_domains,), "A": (self.n_domains,),
                  "B": (self.n_domains,), "t": (self.n_domains, self.n_sources),
                  "u": (self.n_domains, self.n_sources)}
        for name, shape in shapes.items():
            arr = np.array(getattr(self, name), dtype=np.float64)
            if arr.shape != shape or not np.all(np.isfinite(arr)):
                raise MixlawsError(f"SweepTruth: {name} must be a finite array of shape {shape}, "
                                   f"got shape {arr.shape}")
            if name in ("c", "k", "A", "B") and np.any(arr <= 0):
                raise MixlawsError(f"SweepTruth: every {name}_d must be > 0; got {arr.tolist()}")
            if name in ("t", "u"):
                tol = 1e-9 * np.maximum(1.0, np.abs(arr).sum(axis=1))
                if np.any(np.abs(arr.sum(axis=1)) > tol):
                    raise MixlawsError(f"SweepTruth: rows of {name} must sum to 0 (gauge); "
                                       f"subtract each row's mean")
            arr.setflags(write=False)
            set_(name, arr)
        for name in _SCALARS:
            value = float(getattr(self, name))
            lower_ok = value > 0 if name in ("alpha", "beta") else value >= 0
            if not (math.isfinite(value) and lower_ok):
                raise MixlawsError(f"SweepTruth: {name} must be finite and "
                                   f"{'> 0' if name in ('alpha', 'beta') else '>= 0'}; got {value}")
            set_(name, value)

    @property
    def n_sources(self) -> int:
        """Number of training sources ``M``."""
        return len(self.sources)

    @property
    def n_domains(self) -> int:
        """Number of validation domains."""
        return len(self.domains)

    def loss(self, r: Any, params: Any, tokens: Any) -> np.ndarray:
        """Noiseless per-domain losses ``L_d(r, N, D)``, broadcasting over leading axes.

        Parameters
        ----------
        r : array_like, shape (..., M)
            Mixtures (not checked to lie on the simplex).
        params, tokens : array_like
            Model sizes ``N`` and training tokens ``D`` (> 0), broadcastable with ``r.shape[:-1]``.

        Returns
        -------
        ndarray, shape (..., n_dom)
            ``c_d + k_d exp(t_d.r) + A_d exp(s u_d.r) N^-alpha + B_d D^-beta``. Each element
            depends only on its own inputs (no BLAS), so batch and single calls agree exactly.
        """
        r = np.asarray(r, dtype=np.float64)
        if r.ndim == 0 or r.shape[-1] != self.n_sources:
            raise MixtureError(f"mixture has shape {r.shape}; the last axis must have one entry per "
                               f"source {list(self.sources)}", shape=r.shape)
        n = np.asarray(params, dtype=np.float64)[..., None]
        d = np.asarray(tokens, dtype=np.float64)[..., None]
        if np.any(~(n > 0)) or np.any(~(d > 0)):
            raise ScaleError("params and tokens must be positive numbers")
        mix = np.sum(r[..., None, :] * self.t, axis=-1)
        size_mix = np.sum(r[..., None, :] * self.u, axis=-1)
        return (self.c + self.k * np.exp(mix) + self.A * np.exp(self.mixture_scaling * size_mix)
                * n ** (-self.alpha) + self.B * d ** (-self.beta))

    def aggregate(self, r: Any, params: Any, tokens: Any, weights: Any = None) -> np.ndarray:
        """Aggregate loss ``L(r, N, D) = sum_d w_d L_d(r, N, D)``; ``w`` uniform by default.

        ``weights`` is a sequence over :attr:`domains` or a mapping ``domain -> weight``
        (non-negative, summing to 1). Returns shape ``r.shape[:-1]`` broadcast with the scales.
        """
        return np.sum(self.loss(r, params, tokens) * domain_weights(self, weights), axis=-1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (plain lists and floats); :meth:`from_dict` inverts it exactly."""
        out: dict[str, Any] = {"kind": _KIND, "version": _VERSION,
                               "sources": list(self.sources), "domains": list(self.domains)}
        for f in fields(self):
            if f.name in _ARRAYS:
                out[f.name] = getattr(self, f.name).tolist()
            elif f.name in _SCALARS:
                out[f.name] = float(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepTruth:
        """Rebuild a truth from :meth:`to_dict` output (a ``generation`` entry is ignored)."""
        if not isinstance(d, Mapping) or d.get("kind") != _KIND:
            raise ArtifactError(f"not a {_KIND} dict (kind={getattr(d, 'get', dict().get)('kind')!r}); "
                                "pass the output of SweepTruth.to_dict()")
        if d.get("version") != _VERSION:
            raise ArtifactError(f"{_KIND} version {d.get('version')!r} is not supported (expected "
                                f"{_VERSION}); regenerate it with this mixlaws")
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(d))
        extra = sorted(set(d) - names - {"kind", "version", "generation"})
        if missing or extra:
            raise ArtifactError(f"{_KIND} dict: missing keys {missing}, unknown keys {extra}")
        try:
            return cls(**{name: d[name] for name in names})
        except (MixlawsError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{_KIND} dict is invalid: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SweepTruth):
            return NotImplemented
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name))
                   if f.name in _ARRAYS else getattr(self, f.name) == getattr(other, f.name)
                   for f in fields(self))

    __hash__ = None  # type: ignore[assignment]


def domain_weights(truth: SweepTruth, weights: Any) -> np.ndarray:
    """Validation-domain weights ``w`` as an array over ``truth.domains`` (uniform when None).

    ``weights``: None, a sequence over the domains, or a mapping ``domain -> weight`` (missing
    domains get 0). Must be non-negative and sum to 1 (within 1e-9), else :class:`MixtureError`.
    """
    if weights is None:
        return np.full(truth.n_domains, 1.0 / truth.n_domains)
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(truth.domains))
        if unknown:
            raise MixtureError(f"weights name unknown domains {unknown}; known: {list(truth.domains)}")
        weights = [weights.get(name, 0.0) for name in truth.domains]
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (truth.n_domains,) or not np.all(np.isfinite(w)) or np.any(w < 0) \
            or abs(w.sum() - 1.0) > 1e-9:
        raise MixtureError(f"weights must be {truth.n_domains} non-negative numbers summing to 1 "
                           f"(one per domain {list(truth.domains)}); got {w.tolist()}")
    return w


def _centered(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=-1, keepdims=True)


def _prefers(domain: str, source: str) -> bool:
    d, s = domain.lower(), source.lower()
    return d in s or s in d or any(a in s for a in _AFFINITY.get(d, ()))


def random_truth(sources: Sequence[str], domains: Sequence[str], *, seed: int = 0,
                 noise: float = 0.003, run_noise: float = 0.002,
                 mixture_scaling: float = 0.0) -> SweepTruth:
    """Draw a realistic truth (Chinchilla-like magnitudes; losses ~2.5-4.5 at N=1e8, D=2e9).

    ``alpha ~ 0.34``, ``beta ~ 0.28`` (jittered by ~3 %), ``A_d, B_d ~ 400 exp(N(0, 0.15^2))``,
    ``c_d ~ U(1.5, 2.0)``, ``k_d ~ U(0.2, 0.6)``, ``t_d`` and ``u_d`` entries ``N(0, 1)`` made
    sum-zero. A domain named like a source (equal, substring, or a known synonym such as
    prose/books, science/papers) gets ``t_dj`` lowered by ``U(1.5, 2.5)``; a domain matching no
    source prefers one random source. Same seed, same parameters whatever ``mixture_scaling``.
    """
    sources, domains = tuple(sources), tuple(domains)
    rng = np.random.default_rng(seed)
    m, n = len(sources), len(domains)
    t = rng.normal(size=(n, m))
    bonus = rng.uniform(1.5, 2.5, size=(n, m))
    fallback = rng.integers(0, max(m, 1), size=n)
    for i, dom in enumerate(domains):
        hits = [j for j, src in enumerate(sources) if _prefers(dom, src)] or [int(fallback[i])]
        t[i, hits] -= bonus[i, hits]
    return SweepTruth(
        sources=sources, domains=domains, c=rng.uniform(1.5, 2.0, n), k=rng.uniform(0.2, 0.6, n),
        t=_centered(t), A=400.0 * np.exp(rng.normal(0.0, 0.15, n)),
        alpha=float(0.34 * np.exp(rng.normal(0.0, 0.03))), B=400.0 * np.exp(rng.normal(0.0, 0.15, n)),
        beta=float(0.28 * np.exp(rng.normal(0.0, 0.03))), u=_centered(rng.normal(size=(n, m))),
        mixture_scaling=mixture_scaling, noise=noise, run_noise=run_noise)
