"""The predictive distribution ``suggest`` plans with: a perturbed-observation ensemble of refits.

Member ``b`` of family ``f`` is the estimator of ``f`` refitted to a perturbed copy of the runs
table (member 0 is the fit to the data as given):

* every run's losses on domain ``d`` are multiplied by :math:`\\exp(\\sigma_d z_{b,\\mathrm{run},d})`,
  :math:`z \\sim N(0, 1)` shared by the run's checkpoints (run-level noise), and
* optionally (``jackknife > 0``; off by default because every left-out pattern changes the
  problem shapes and JAX recompiles for each) the runs of a random fraction of the distinct
  mixtures are left out, never so many that fewer than ``M + 2`` remain (a delete-d jackknife
  over mixtures: how much the law's extrapolation across the simplex depends on which mixtures
  were trained).

:math:`\\sigma_d` is the run-level relative noise measured on the table itself,

.. math:: \\hat\\sigma_d^2 = \\frac{1}{n - p} \\sum_{i=1}^{n} \\log^2\\frac{y_{id}}{\\hat L_d(r_i, N_i, D_i)},

with :math:`y_{id}` a run's loss at its last checkpoint, :math:`\\hat L_d` the point fit and
:math:`p = M + 1` (clipped to [1e-3, 0.05]); the aggregate version :math:`\\hat\\sigma` is the
noise of a fantasised observation.  This is the randomised-maximum-likelihood /
perturbed-observation approximation of a posterior (as in ensemble Kalman filters): cheap because a refit costs
a fraction of a second, faithful to the nesting because every member runs the whole pipeline,
and any law family (``mixlaws.fit.FAMILIES``) can contribute members, so structural
uncertainty enters as members of several families.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .._threads import thread_map
from ..errors import MixlawsError
from ..fit import family
from ..runs import RunsTable

__all__ = ["Ensemble", "perturbed_table", "run_noise", "fit_ensemble", "family_settings"]

_NOISE_FLOOR, _NOISE_CAP = 1e-3, 0.05


@dataclass(frozen=True, eq=False)
class Ensemble:
    """Fitted members (any family's estimators) and the noise they were drawn with."""

    members: tuple[Any, ...]
    families: tuple[str, ...]
    noise: float
    notes: tuple[str, ...] = ()

    def predict(self, points: Sequence[tuple[np.ndarray, float, float]]) -> np.ndarray:
        """Aggregate loss of every member at ``points`` ``[(mixture, params, tokens)]``: ``(B, P)``.

        Points sharing a scale are predicted in one call per member.
        """
        scales: dict[tuple[float, float], list[int]] = {}
        for p, (_, n, d) in enumerate(points):
            scales.setdefault((float(n), float(d)), []).append(p)
        out = np.empty((len(self.members), len(points)))
        for (n, d), idx in scales.items():
            R = np.stack([points[p][0] for p in idx])
            for b, m in enumerate(self.members):
                out[b, idx] = m.predict(R, n, d)["loss"]
        return out

    def predict_target(self, R: np.ndarray, params: float, tokens: float) -> np.ndarray:
        """Aggregate loss of every member for mixtures ``R (n, M)`` at the target: ``(B, n)``."""
        return np.stack([m.predict(R, params, tokens)["loss"] for m in self.members])


def family_settings(name: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The subset of ``settings`` family ``name``'s estimator accepts and does not fix itself."""
    fam = family(name)
    accepted = set(inspect.signature(fam.estimator.__init__).parameters) - {"self"}
    return {k: v for k, v in (settings or {}).items()
            if k in accepted and k not in fam.settings and v is not None}


def perturbed_table(runs: RunsTable, sigma: Any, rng: np.random.Generator,
                    drop: int = 0) -> RunsTable:
    """``runs`` with losses times ``exp(sigma_d z_run,d)`` and the runs of ``drop`` random mixtures left out.

    ``sigma`` is a scalar or one value per domain; ``z ~ N(0, 1)`` per run and domain.
    """
    data = runs.data.copy()
    ids, inverse = np.unique(data["run"].to_numpy(), return_inverse=True)
    cols = runs.loss_columns
    z = rng.standard_normal((len(ids), len(cols)))
    factor = np.exp(np.broadcast_to(np.asarray(sigma, float), (len(cols),)) * z)[np.ravel(inverse)]
    data[cols] = data[cols].to_numpy(float) * factor
    if drop > 0:
        mix = data[runs.mix_columns].to_numpy(float)
        uniq, which = np.unique(mix, axis=0, return_inverse=True)
        out = rng.choice(len(uniq), size=min(drop, len(uniq) - 1), replace=False)
        data = data[~np.isin(np.ravel(which), out)].reset_index(drop=True)
    return RunsTable(data=data, sources=runs.sources, domains=runs.domains,
                     progress=runs.progress, path=runs.path, notes=runs.notes)


def _aggregate(model: Any, losses: np.ndarray) -> np.ndarray:
    w = getattr(model, "weights_", None)
    return losses.mean(1) if w is None else losses @ np.asarray(w)


def run_noise(model: Any, runs: RunsTable, per_domain: bool = False) -> Any:
    """Run-level relative noise of the runs' last checkpoints around ``model``.

    The aggregate ``sigma`` (a float), or with ``per_domain`` one value per domain (an array).
    """
    data = runs.data
    last = data.groupby("run", sort=False).tail(1)
    Yd = last[runs.loss_columns].to_numpy(float)
    y = Yd if per_domain else _aggregate(model, Yd)
    R = last[runs.mix_columns].to_numpy(float)
    N, D = last["params"].to_numpy(float), last["tokens"].to_numpy(float)
    res = []
    for key in sorted(set(zip(N.tolist(), D.tolist()))):
        sel = (N == key[0]) & (D == key[1])
        try:
            pred = model.predict(R[sel], *key)["domains" if per_domain else "loss"]
        except MixlawsError:
            continue
        res.append(np.log(y[sel] / pred))
    if not res:
        return np.full(len(runs.domains), _NOISE_FLOOR) if per_domain else _NOISE_FLOOR
    r = np.concatenate(res)
    dof = max(r.shape[0] - (len(runs.sources) + 1), 1)
    sig = np.clip(np.sqrt(np.sum(r**2, axis=0) / dof), _NOISE_FLOOR, _NOISE_CAP)
    return sig if per_domain else float(sig)


def _fit(name: str, settings: dict[str, Any], runs: RunsTable, seed: int) -> Any:
    kw = dict(settings)
    fam = family(name)
    if "seed" in inspect.signature(fam.estimator.__init__).parameters:
        kw["seed"] = seed
    return fam.make(**kw).fit(runs)


def _fit_members(name: str, settings: dict[str, Any], tables: Sequence[RunsTable], seed: int,
                 target: tuple[float, float], probe: np.ndarray) -> list[Any]:
    """Fit ``name`` to each table, in threads; the error instead where it fails or cannot
    predict ``probe`` at ``target``.  Their warnings (convergence notes) are dropped: the
    user's own fit of the table reports them."""
    def one(table: RunsTable) -> Any:
        try:
            member = _fit(name, settings, table, seed)
            member.predict(probe, *target)
        except MixlawsError as exc:
            return exc
        return member

    return [m for m, _ in thread_map(one, tables, record=True, xla=True)]


def fit_ensemble(runs: RunsTable, target: tuple[float, float], *, laws: Sequence[str] = ("nested",),
                 n_members: int = 16, settings: Mapping[str, Any] | None = None,
                 jackknife: float = 0.0, seed: int = 0) -> tuple[Ensemble | None, list[str]]:
    """Fit a perturbed-observation ensemble of ``n_members`` per law family.

    ``jackknife`` is the fraction of distinct mixtures each member leaves out (0 by default:
    every left-out pattern changes the problem shapes, and JAX recompiles for each).
    Returns ``(ensemble, notes)``; ``ensemble`` is None when no family can predict at ``target``
    from this table (too few sizes or mixtures), and ``notes`` say why.
    """
    members, fams, notes, sigmas = [], [], [], []
    for k, name in enumerate(laws):
        kw = family_settings(name, settings)
        probe = runs.mixtures()[0][:1]
        [point] = _fit_members(name, kw, [runs], seed, target, probe)
        if isinstance(point, MixlawsError):
            notes.append(f"law {name!r} cannot predict at the target from this table: {point}")
            continue
        sigma = run_noise(point, runs)
        sigma_d = run_noise(point, runs, per_domain=True)
        sigmas.append(sigma)
        rng = np.random.default_rng([seed, k, 0xD51])
        n_mix = len(runs.mixtures()[0])
        drop = max(0, min(int(jackknife * n_mix), n_mix - (len(runs.sources) + 2)))
        # the perturbed tables drawn in order, fitted in threads; a member that fails is
        # tried once more on a table without left-out mixtures, drawn after all the others
        tables = [perturbed_table(runs, sigma_d, rng, drop=drop) for _ in range(n_members - 1)]
        fitted = _fit_members(name, kw, tables, seed, target, probe)
        failed = [i for i, m in enumerate(fitted) if isinstance(m, MixlawsError)]
        retry = _fit_members(name, kw, [perturbed_table(runs, sigma_d, rng, drop=0)
                                        for _ in failed], seed, target, probe)
        for i, m in zip(failed, retry):
            fitted[i] = m
        fam_members = [point] + [m for m in fitted if not isinstance(m, MixlawsError)]
        members += fam_members
        fams += [name] * len(fam_members)
        left_out = f" (each leaving out {drop} of {n_mix} mixtures)" if drop else ""
        notes.append(f"law {name!r}: {len(fam_members)} members{left_out}, run-level noise "
                     f"sigma = {sigma:.4g} (relative)")
    if not members:
        return None, notes
    return Ensemble(tuple(members), tuple(fams), float(np.max(sigmas)), tuple(notes)), notes
