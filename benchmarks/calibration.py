"""Calibration of target-scale intervals on replicate sweeps drawn from known laws.

For each replicate: draw a random truth and a sweep (``mixlaws.simulate``), fit the nested
laws, sample the posterior at the target and check whether the 50 % and 90 % intervals of the
mean law contain the true aggregate loss of a few mixtures (fitted ones and fresh ones).

Run:  python benchmarks/calibration.py [--replicates 100] [--bootstrap 0]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

from mixlaws.fit import NestedMixingLaw
from mixlaws.runs import validate_runs
from mixlaws.simulate import random_truth, sample_mixtures, simulate_sweep
from mixlaws.posterior import bootstrap_posterior, predict_intervals, sample_posterior

SOURCES = ("web", "code", "books")
DOMAINS = ("web", "code")
TARGET = (1e9, 2e10)


def replicate(seed: int, *, n_draws: int = 1000, bootstrap: int = 0, n_mix: int = 12,
              step: str = "mcmc", mixing: str = "mcmc",
              sizes=(2e7, 5e7, 1e8, 2e8), checkpoints=(0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Truth, and 50 % / 90 % intervals ``(n_test, 2)`` at the target for one replicate."""
    truth = random_truth(SOURCES, DOMAINS, seed=seed)
    df = simulate_sweep(truth, n_mixtures=n_mix, sizes=sizes, checkpoints=checkpoints, seed=seed)
    runs = validate_runs(df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = NestedMixingLaw(tie_beta="all", seed=seed).fit(runs)
        if bootstrap:
            draws = bootstrap_posterior(model, runs, *TARGET, n_boot=bootstrap, seed=seed)
        else:
            draws = sample_posterior(model, runs, *TARGET, n_draws=n_draws, seed=seed,
                                     step=step, mixing=mixing)
    test = np.vstack([model.mixtures_[:2], sample_mixtures(2, len(SOURCES), seed=seed + 999,
                                                           include_uniform=False)])
    true = truth.aggregate(test, *TARGET)
    i50 = predict_intervals(draws, test, 0.5)
    i90 = predict_intervals(draws, test, 0.9)
    return (true, np.c_[i50.lower, i50.upper], np.c_[i90.lower, i90.upper],
            np.asarray(model.predict(test, *TARGET)["loss"]))


def study(n: int, **kw) -> dict[str, float]:
    """Coverage over ``n`` replicates (each contributes 4 mixtures; the first is also reported)."""
    c50, c90, c90_first, width = [], [], [], []
    for s in range(n):
        true, i50, i90, _ = replicate(1000 + s, **kw)
        c50.append((i50[:, 0] <= true) & (true <= i50[:, 1]))
        c90.append((i90[:, 0] <= true) & (true <= i90[:, 1]))
        c90_first.append(c90[-1][0])
        width.append(np.median((i90[:, 1] - i90[:, 0]) / true))
    return {"cover50": float(np.mean(c50)), "cover90": float(np.mean(c90)),
            "cover90_first": float(np.mean(c90_first)), "rel_width90": float(np.median(width)),
            "n": n}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--bootstrap", type=int, default=0, help="bootstrap replicates (0: MCMC)")
    ap.add_argument("--step", default="mcmc", choices=("mcmc", "laplace"))
    ap.add_argument("--mixing", default="mcmc", choices=("mcmc", "gn", "refit", "linear"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = study(args.replicates, bootstrap=args.bootstrap, step=args.step, mixing=args.mixing)
    method = (f"bootstrap ({args.bootstrap})" if args.bootstrap
              else f"MCMC, step={args.step}, mixing={args.mixing}")
    print(f"[calibration, {method}] {res['n']} replicate sweeps x 4 mixtures: "
          f"50 % interval covers {100 * res['cover50']:.1f} %, 90 % interval covers "
          f"{100 * res['cover90']:.1f} % (first mixture only: {100 * res['cover90_first']:.1f} %); "
          f"median 90 % width {100 * res['rel_width90']:.2f} % of the loss "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
