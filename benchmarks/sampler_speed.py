"""ESS per second of the size-stage sampler: emcee against the JAX-compiled ensemble.

The same posterior (the size stage's ``(log alpha, log tau, log lambda)`` of each sweep), the
same start, the same moves (80 % DE, 20 % DE snooker), chains run until >= 50 tau and the
wanted ESS: only the sampler differs (``mixlaws.posterior._size.SIZE_SAMPLER``). Sweeps: the
calibration benchmark's simulated replicates (3 sources, 2 domains, 12 mixtures x 4 sizes) and,
when ``../shared/data`` is there, Ye et al.'s RedPajama table at the 1B target. Every sampler
runs each posterior twice; the second, compiled run is the one timed (a first call compiles).

Run:  python benchmarks/sampler_speed.py [--replicates 3]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

import mixlaws.posterior._size as size_mod
from mixlaws.fit import NestedMixingLaw
from mixlaws.posterior import sample_posterior

import calibration  # benchmarks/ is on sys.path


def _timed_size_chain(model, runs, target, sampler: str, seed: int) -> tuple[float, dict]:
    """Wall time and diagnostics of the size stage's chain (the rest of the posterior untimed)."""
    seen = {}
    inner = size_mod.run_ensemble

    def timed(*a, **kw):
        t0 = time.perf_counter()
        ch = inner(*a, **kw)
        seen["t"], seen["d"] = time.perf_counter() - t0, ch.diagnostics
        return ch

    size_mod.run_ensemble, size_mod.SIZE_SAMPLER = timed, sampler
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(2):
                sample_posterior(model, runs, *target, n_draws=400, seed=seed)
    finally:
        size_mod.run_ensemble, size_mod.SIZE_SAMPLER = inner, "jax"
    d = seen["d"]
    return seen["t"], {"ess": d.ess, "tau": float(max(d.tau)), "steps": d.n_steps}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=3)
    args = ap.parse_args()
    cases = []
    for s in range(args.replicates):
        truth = calibration.random_truth(calibration.SOURCES, calibration.DOMAINS, seed=1000 + s)
        df = calibration.simulate_sweep(truth, n_mixtures=12, sizes=(2e7, 5e7, 1e8, 2e8),
                                        checkpoints=np.linspace(0.2, 1.0, 9), seed=1000 + s)
        runs = calibration.validate_runs(df)
        cases.append((f"simulated sweep {s}", NestedMixingLaw(tie_beta="all", seed=1000 + s),
                      runs, calibration.TARGET, 1000 + s))
    from _data import load_redpajama
    loaded = load_redpajama()          # None (and a printed reason) without ../shared/data
    if loaded is not None:
        cases.append(("RedPajama 1B/100k steps", NestedMixingLaw(val_weights=loaded[1]),
                      loaded[0], (805.7e6, 100_000 * 2**20), 0))
    print(f"{'posterior':26s} {'sampler':8s} {'steps':>6s} {'tau':>6s} {'ESS':>7s} "
          f"{'s':>6s} {'ESS/s':>8s}")
    for name, model, runs, target, seed in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(runs)
        rate = {}
        for sampler in ("emcee", "jax"):
            t, d = _timed_size_chain(model, runs, target, sampler, seed)
            rate[sampler] = d["ess"] / t
            print(f"{name:26s} {sampler:8s} {d['steps']:6d} {d['tau']:6.0f} {d['ess']:7.0f} "
                  f"{t:6.2f} {rate[sampler]:8.0f}")
        print(f"{'':26s} ratio jax/emcee ESS/s: {rate['jax'] / rate['emcee']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
