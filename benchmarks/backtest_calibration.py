"""Calibration of the backtest discrepancy model on sweeps whose truth is outside every family.

Each simulated sweep (``mixlaws.simulate``) has
* a size effect that depends on the mixture (``mixture_scaling`` s = 1: ``A_d exp(s u_d . r)``),
  which the joint law cannot represent, and
* a learning-rate schedule that bends each run's curve near its end
  (:func:`mixlaws.simulate.anneal_sweep`, relative drop ``a ~ U(0, 0.04)`` drawn per sweep),
  which no family represents.

Per sweep: 10 mixtures x 20M/50M/100M/200M x 10 checkpoints (10 %..100 % of 20 tokens/param,
3 validation domains, checkpoint noise 0.3 %, run noise 0.2 %).  We backtest each family on
the sweep (largest-size, truncate 0.3, both, 3 mixture folds), fit it on the whole sweep,
predict 5 new mixtures at the target N* = 800M, D* = 16e9 tokens (dN = dD = log 4, u = 1.96)
and check whether the 90 % discrepancy interval ``pred exp(bias ± 1.645 sd)`` of the
backtest-calibrated model contains the new runs' simulated (noisy) losses.  Also printed: the
same check with a zero-discrepancy interval (only the measured run scatter), for contrast.

Run:  python benchmarks/backtest_calibration.py [--sweeps 30] [--families nested,joint]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

from mixlaws.backtest import backtest, extrapolation_distance
from mixlaws.fit import make_estimator
from mixlaws.runs import validate_runs
from mixlaws.simulate import anneal_sweep, random_truth, sample_mixtures, simulate_sweep

SOURCES = ("web", "code", "books", "papers")
DOMAINS = ("web", "code", "prose")
SIZES = [2e7, 5e7, 1e8, 2e8]
TARGET_N = 8e8
TPP = 20.0
Z90 = 1.6448536269514722


def one_sweep(seed: int, families: list[str]) -> list[dict]:
    rng = np.random.default_rng([seed, 77])
    amp = float(rng.uniform(0.0, 0.04))
    truth = random_truth(SOURCES, DOMAINS, seed=seed, mixture_scaling=1.0)
    sweep = anneal_sweep(simulate_sweep(truth, n_mixtures=10, sizes=SIZES, tokens_per_param=TPP,
                                        checkpoints=[0.1 * i for i in range(1, 11)], seed=seed),
                         amp)
    runs = validate_runs(sweep)
    new_mix = sample_mixtures(5, len(SOURCES), seed=seed + 1000, include_uniform=False)
    target = validate_runs(anneal_sweep(simulate_sweep(
        truth, mixtures=new_mix, sizes=[TARGET_N], tokens_per_param=TPP, checkpoints=[1.0],
        seed=seed + 2000), amp))
    D = float(target.data["tokens"].iloc[0])
    res = backtest(runs, families, ("largest-size", "truncate", "both", "mixtures"),
                   n_mixture_folds=3, seed=seed)
    dN, dD = extrapolation_distance(runs, TARGET_N, D)
    out = []
    for fam in families:
        est = make_estimator(fam, seed=seed).fit(runs)
        pred = est.predict(target.data[target.mix_columns].to_numpy(float), TARGET_N, D)["loss"]
        obs = target.data[target.loss_columns].to_numpy(float).mean(1)
        disc = res.discrepancy(fam)
        p = disc.predict(dN, dD)
        e = np.log(obs / pred)
        out.append({"seed": seed, "family": fam, "amp": amp, "rel": pred / obs - 1,
                    "covered": np.abs(e - p["bias"]) <= Z90 * p["sd"],
                    "naive": np.abs(e) <= Z90 * max(disc.sigma_within_, 1e-12),
                    "bias": float(p["bias"][0]), "sd": float(p["sd"][0])})
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweeps", type=int, default=30)
    ap.add_argument("--families", default="nested,joint")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    families = [f for f in args.families.split(",") if f]
    t0 = time.perf_counter()
    rows = []
    for seed in range(args.sweeps):
        rows += one_sweep(seed, families)
        done = [x for x in rows if x["seed"] == seed]
        print(f"  sweep {seed}: a = {done[0]['amp']:.4f}; " + "; ".join(
            f"{x['family']} mean rel err {100 * np.mean(x['rel']):+.2f} %, bias {100 * x['bias']:+.2f} %, "
            f"sd {100 * x['sd']:.2f} %, covered {int(x['covered'].sum())}/5" for x in done),
            flush=True)
    dt = time.perf_counter() - t0
    print(f"[out-of-family calibration] {args.sweeps} sweeps x 5 target mixtures at N*=800M, "
          f"D*=16e9 (u = 1.96), {dt:.0f} s")
    print(f"{'family':<8} {'cover90':>8} {'sweeps all in':>14} {'naive90':>8} "
          f"{'mean|err|%':>10} {'max|err|%':>9} {'median sd%':>10}")
    for fam in families:
        r = [x for x in rows if x["family"] == fam]
        cov = np.concatenate([x["covered"] for x in r])
        naive = np.concatenate([x["naive"] for x in r])
        rel = np.concatenate([x["rel"] for x in r])
        full = np.mean([x["covered"].all() for x in r])
        print(f"{fam:<8} {cov.mean():8.3f} {full:14.2f} {naive.mean():8.3f} "
              f"{100 * np.mean(np.abs(rel)):10.2f} {100 * np.max(np.abs(rel)):9.2f} "
              f"{100 * np.median([x['sd'] for x in r]):10.2f}")
    print("cover90: share of the held-out target runs inside the 90 % discrepancy interval; "
          "sweeps all in: share of sweeps whose 5 targets are all inside (errors within a sweep "
          "are correlated); naive90: interval with zero discrepancy (run scatter only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
