r"""The emcee driver and its chain diagnostics, apart from the models it samples.

:func:`run_ensemble` runs emcee's affine-invariant ensemble on a JAX
log-probability of a ``(n_walkers, dim)`` array (jitted once, passed with
``vectorize=True``), in chunks, and stops when the chain is longer than
``min_tau_multiple`` (default 50) integrated autocorrelation times of every
parameter, extending up to ``max_steps``; if the budget runs out it emits a
:class:`~mixlaws.errors.ChainWarning` (never a silent pass). ESS is
``n_walkers * kept_steps / tau``.  The stage models live beside it:
:mod:`._size`, :mod:`._step`, :mod:`._mixing`, :mod:`._joint`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import emcee
import jax
import numpy as np

from .. import _config  # noqa: F401
from ..errors import ChainWarning, MixlawsError

__all__ = ["ChainDiagnostics", "Chain", "run_ensemble", "integrated_time", "ridge_moves"]


def ridge_moves() -> list:
    """Differential-evolution moves (80 % DE, 20 % DE snooker; emcee's recommended mixture for
    curved or ridged posteriors), new objects per chain (DE sets its step size from the
    dimension on first use).

    The size stage's ``(log tau, log lambda)`` is L-shaped: when the step-stage variance
    explains the scatter, ``log tau`` is free down to its floor, and vice versa. The stretch
    move crawls along that (tau ≈ 400–540 steps on the 4-size calibration sweeps, chains cut at
    the 20,000-step budget unconverged); this mixture converged there at tau ≈ 90–140.
    """
    return [(emcee.moves.DEMove(), 0.8), (emcee.moves.DESnookerMove(), 0.2)]



@dataclass(frozen=True)
class ChainDiagnostics:
    """What a user needs to trust (or distrust) a chain.

    Attributes
    ----------
    name : what was sampled.
    n_walkers, n_steps : ensemble size and total steps run.
    burn : steps discarded (2 tau, at least 1/5 of the chain... see :func:`run_ensemble`).
    tau : ``(dim,)`` integrated autocorrelation time per parameter (steps).
    steps_per_tau : ``n_steps / max(tau)`` (want ≥ ``min_tau_multiple``).
    ess : ``n_walkers * (n_steps - burn) / max(tau)``.
    acceptance : mean acceptance fraction. For emcee's stretch move (``a = 2``) in the low
        dimensions sampled here (2-8 parameters) 0.4-0.8 is typical (about 0.7 in 2-D); the
        0.2-0.5 rule of thumb is for random-walk Metropolis. Worry about values below ~0.1
        (walkers stuck, e.g. a multimodal or badly scaled posterior) or near 1; judge mixing by
        ``tau`` / ``steps_per_tau``, not by the acceptance.
    converged : ``steps_per_tau >= min_tau_multiple``.
    unphysical : size stage only: number of (draw, group) size-law draws that stayed outside the
        physical region ``0 < E < min y, A > 0`` after redrawing (``A`` clipped to 0 there).
    """

    name: str
    n_walkers: int
    n_steps: int
    burn: int
    tau: np.ndarray
    steps_per_tau: float
    ess: float
    acceptance: float
    converged: bool
    unphysical: int = 0

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {"name": self.name, "n_walkers": self.n_walkers, "n_steps": self.n_steps,
                "burn": self.burn, "tau": [float(x) for x in self.tau],
                "steps_per_tau": float(self.steps_per_tau), "ess": float(self.ess),
                "acceptance": float(self.acceptance), "converged": bool(self.converged),
                "unphysical": int(self.unphysical)}


@dataclass(frozen=True)
class Chain:
    """Post-burn-in samples ``(n_kept_steps, n_walkers, dim)`` and their diagnostics."""

    samples: np.ndarray
    diagnostics: ChainDiagnostics

    def flat(self) -> np.ndarray:
        """Samples flattened to ``(n, dim)``."""
        return self.samples.reshape(-1, self.samples.shape[-1])


def integrated_time(x: np.ndarray, c: float = 5.0, thin: int = 1) -> np.ndarray:
    """Integrated autocorrelation time (in steps) of each column of ``x (n_steps, n_walkers, dim)``.

    emcee's estimator (:func:`emcee.autocorr.integrated_time`: the walkers' mean normalised
    autocorrelation function, Sokal's automatic window with ``c = 5``; the same values, tested),
    vectorised over walkers, and without its "chain too short" exception: the caller decides.
    ``thin > 1`` estimates it on every ``thin``-th step and scales back (cheap length checks
    while a chain is being extended; accurate while ``thin`` is well below tau).
    """
    x = np.asarray(x, float)[::thin]
    n, _, dim = x.shape
    m = 1 << int(np.ceil(np.log2(max(n, 1))))
    out = np.empty(dim)
    for d in range(dim):
        xd = x[:, :, d].T                                                 # (walkers, n)
        f = np.fft.rfft(xd - xd.mean(1, keepdims=True), n=2 * m, axis=-1)
        acf = np.fft.irfft(f.real**2 + f.imag**2, n=2 * m, axis=-1)[:, :n]
        taus = 2.0 * np.cumsum((acf / acf[:, :1]).mean(0)) - 1.0
        inside = np.arange(n) < c * taus
        out[d] = taus[n - 1 if inside.all() else int(np.argmin(inside))]
    return out * thin


def run_ensemble(log_prob: Callable[[jax.Array], jax.Array], x0: np.ndarray, *, name: str,
                 seed: int, min_steps: int = 500, max_steps: int = 20000,
                 min_tau_multiple: float = 50.0, chunk: int = 500,
                 min_ess: float = 0.0, warn: bool = True, moves: Any = None,
                 args: tuple = (), sampler: str = "emcee") -> Chain:
    """Run an affine-invariant ensemble (stretch move, or ``moves``) with a vectorised
    log-probability until long enough.

    Parameters
    ----------
    log_prob : jitted ``(n_walkers, dim), *args -> (n_walkers,)``.
    x0 : ``(n_walkers, dim)`` initial walkers (around the best fit).
    min_steps, max_steps : first run length and budget.
    min_tau_multiple : stop once ``n_steps >= min_tau_multiple * max(tau)``...
    min_ess : ...and the ESS after burn-in, ``n_walkers * 0.8 n_steps / max(tau)``, is at
        least this (e.g. the number of draws wanted from the chain).
    warn : emit a :class:`ChainWarning` for a chain that stays too short (callers that run
        many chains set ``False`` and warn once, from the diagnostics).
    moves : emcee moves (default: its stretch move); see :func:`ridge_moves`.
    args : arrays passed to ``log_prob`` after the walkers.
    sampler : ``"emcee"`` (the reference) or ``"jax"``: the same moves compiled by JAX, 100
        steps per call (:class:`~mixlaws.posterior._ensemble.CompiledEnsemble`); give it a
        stable ``log_prob`` (module-level, data in ``args``) so that it compiles once per shape.

    The chain is extended by ``chunk`` steps (or to the length that the current
    tau estimate asks for, whichever is larger) until the criterion holds or the
    budget is spent. Burn-in is ``max(2 max(tau), n_steps / 5)``.
    """
    nw, dim = x0.shape
    # numpy straight into the jitted function: jnp.asarray first costs ~10x the call itself
    f = lambda x: np.asarray(log_prob(np.asarray(x, float), *args))  # noqa: E731
    lp0 = f(x0)
    if not np.all(np.isfinite(lp0)):
        raise MixlawsError(f"{name}: the best fit has zero posterior density (outside the "
                           f"priors); check the fit warnings")
    if sampler == "jax":
        from ._ensemble import CompiledEnsemble

        ens = CompiledEnsemble(log_prob, x0, lp0, moves=moves, seed=seed, args=args)
        run = ens.run
    elif sampler == "emcee":
        ens = emcee.EnsembleSampler(nw, dim, f, vectorize=True, moves=moves)
        ens.random_state = np.random.RandomState(seed % (2**32)).get_state()
        state = x0

        def run(n: int) -> None:
            nonlocal state
            state = ens.run_mcmc(state, n, progress=False)
    else:
        raise MixlawsError(f"unknown sampler {sampler!r}: use 'emcee' or 'jax'")
    run(min_steps)
    while True:
        chain = ens.get_chain()
        n = chain.shape[0]
        tau = integrated_time(chain[n // 5:])
        need = int(np.ceil(max(min_tau_multiple, min_ess / (0.8 * nw)) * np.max(tau)))
        if n >= need or n >= max_steps:
            break
        run(int(min(max(chunk, need - n + chunk // 5), max_steps - n)))
    tmax = float(np.max(tau))
    burn = int(min(max(2 * tmax, n / 5), n // 2))
    kept = chain[burn:]
    ok = n >= min_tau_multiple * tmax
    diag = ChainDiagnostics(name=name, n_walkers=nw, n_steps=n, burn=burn, tau=tau,
                            steps_per_tau=n / tmax, ess=nw * kept.shape[0] / tmax,
                            acceptance=float(np.mean(ens.acceptance_fraction)), converged=ok)
    if not ok and warn:
        warnings.warn(f"{name}: chain of {n} steps is only {n / tmax:.0f} autocorrelation times "
                      f"(tau = {tmax:.0f} steps; want ≥ {min_tau_multiple:.0f}); intervals may be "
                      f"unreliable: raise the step budget", ChainWarning, stacklevel=2)
    return Chain(samples=kept, diagnostics=diag)


def walkers_in_support(center: np.ndarray, scale: np.ndarray, n: int, rng: np.random.Generator,
             ok: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``n`` walkers in a small Gaussian ball around ``center`` inside the prior support."""
    out = center + scale * rng.standard_normal((n, center.size))
    for _ in range(50):
        bad = ~ok(out)
        if not bad.any():
            break
        out[bad] = center + 0.5 * scale * rng.standard_normal((int(bad.sum()), center.size))
    out[~ok(out)] = center
    return out


def psd_sqrt(C: np.ndarray) -> np.ndarray:
    """A square root ``L`` with ``L L^T = C`` of (batches of) symmetric PSD matrices."""
    lam, V = np.linalg.eigh(0.5 * (C + np.swapaxes(C, -1, -2)))
    return V * np.sqrt(np.maximum(lam, 0.0))[..., None, :]


