"""Calibration of the backtest discrepancy model on sweeps whose truth is outside every family.

Each simulated sweep (``mixlaws.simulate``) has
* a size effect that depends on the mixture (``mixture_scaling`` s = 1: ``A_d exp(s u_d . r)``),
  which the joint law cannot represent, and
* a learning-rate schedule that bends each run's curve near its end
  (:func:`mixlaws.simulate.anneal_sweep`, relative drop ``a ~ U(0, 0.04)`` drawn per sweep),
  which no family represents.

Per sweep: 10 mixtures x 20M/50M/100M/200M x 10 checkpoints (10 %..100 % of 20 tokens/param,
3 validation domains, checkpoint noise 0.3 %, run noise 0.2 %).  We backtest each family on
the sweep (the default folds: largest-size, truncate 0.3, long-runs, both, 3 mixture
folds), fit it on the whole sweep,
predict 5 new mixtures at the target N* = 800M, D* = 16e9 tokens (dN = dD = log 4, u = 1.96)
and check whether the 90 % discrepancy interval (``Discrepancy.interval``) of the
backtest-calibrated model contains the new runs' simulated (noisy) losses.  Also printed: the
same check with a zero-discrepancy interval (only the measured run scatter), for contrast.

Run:  python benchmarks/backtest_calibration.py [--sweeps 30] [--first-seed 0] [--families nested,joint]
          [--save FILE | --load FILE]   (--load re-evaluates saved sweeps without fitting)
          [--carry-bias] [--concentration A] [--priors B,S0,S1,K]   (variants to compare)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

from mixlaws.backtest import (DEFAULT_FOLDS, STACKING_CONCENTRATION, BacktestResult, backtest,
                              extrapolation_distance, family_weights, mixture_quantile,
                              stacked_discrepancy)
from mixlaws.fit import make_estimator, mixture_extrapolation
from mixlaws.runs import validate_runs
from mixlaws.simulate import anneal_sweep, random_truth, sample_mixtures, simulate_sweep

SOURCES = ("web", "code", "books", "papers")
DOMAINS = ("web", "code", "prose")
SIZES = [2e7, 5e7, 1e8, 2e8]
TARGET_N = 8e8
TPP = 20.0
Z90 = 1.6448536269514722


def one_sweep(seed: int, families: list[str]) -> dict:
    """Backtest one simulated sweep and predict its targets; JSON-ready record."""
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
    res = backtest(runs, families, DEFAULT_FOLDS, n_mixture_folds=3, seed=seed)
    dN, dD = extrapolation_distance(runs, TARGET_N, D)
    obs = target.data[target.loss_columns].to_numpy(float).mean(1)
    fitted = runs.data.groupby("run", sort=False)[runs.mix_columns].first().to_numpy(float)
    hull = [e.hull_distance for e in mixture_extrapolation(fitted, new_mix, runs.sources)]
    out = {"seed": seed, "amp": amp, "dN": float(dN[0]), "dD": float(dD[0]), "hull": hull,
           "backtest": res.to_dict(), "log_ratio": {}}
    for fam in families:
        est = make_estimator(fam, seed=seed).fit(runs)
        pred = est.predict(target.data[target.mix_columns].to_numpy(float), TARGET_N, D)["loss"]
        out["log_ratio"][fam] = np.log(obs / pred).tolist()
    return out


def _result(record: dict, priors: dict | None) -> BacktestResult:
    res = BacktestResult.from_dict(record["backtest"])
    if priors:
        res = BacktestResult(res.predictions.drop(columns="covered"), res.status,
                             settings=res.settings, level=res.level, priors=priors,
                             notes=res.notes)
    return res


def evaluate(record: dict, fam: str, level: float = 0.9, without_mixtures: bool = False,
             priors: dict | None = None) -> dict:
    """Coverage of the backtest-calibrated interval at the target for one sweep and family."""
    res = _result(record, priors)
    exclude = sorted({f"mixtures:{k}" for k in res.predictions["part"]}) if without_mixtures else []
    disc = res.discrepancy(fam, exclude=exclude)
    e = np.asarray(record["log_ratio"][fam])
    hull = np.asarray(record.get("hull", 0.0), float)
    p = disc.predict(record["dN"], record["dD"], hull)
    lo, hi = disc.interval(1.0, record["dN"], record["dD"], level, hull)
    return {"rel": np.expm1(-e), "covered": (np.log(lo) <= e) & (e <= np.log(hi)),
            "naive": np.abs(e) <= Z90 * max(disc.sigma_within_, 1e-12),
            "bias": float(np.mean(p["bias"])), "sd": float(np.mean(p["sd"])),
            "half_width": float(np.mean(np.log(hi) - np.log(lo))) / 2}


def mixture_of_families(log_pred: np.ndarray, discs: list, ww: np.ndarray, dN: float,
                        dD: float, hull: np.ndarray, level: float = 0.9) -> tuple:
    """Earlier versions' ``--law auto`` interval of ``log L`` (a diagnostic now): the stacked
    mixture of the families' own discrepancy-widened predictives
    ``sum_k w_k N(log L_k + b_k, s_k^2)``; ``log_pred (n, K)``."""
    mu, sig = [], []
    for k, d in enumerate(discs):
        p = d.predict(dN, dD, hull)
        mu.append(log_pred[:, k] + p["bias"])
        sig.append(p["sd"] * np.ones(len(log_pred)))
    mu, sig = np.stack(mu, 1), np.stack(sig, 1)
    return (mixture_quantile(mu, sig, ww, 0.5 - level / 2),
            mixture_quantile(mu, sig, ww, 0.5 + level / 2))


def evaluate_auto(record: dict, families: list[str], level: float = 0.9,
                  priors: dict | None = None,
                  concentration: float = STACKING_CONCENTRATION) -> dict:
    """The same check for ``--law auto``: the stacked prediction ``sum_k w_k L_k`` and the
    interval of its own discrepancy (:func:`mixlaws.backtest.stacked_discrepancy`), as
    :class:`~mixlaws.backtest.AveragedTarget` computes them; and, as a diagnostic, earlier
    versions' interval (:func:`mixture_of_families`)."""
    res = _result(record, priors)
    w, _ = family_weights(res, families, concentration=concentration)
    ww = np.array([w[f] for f in families])
    disc = stacked_discrepancy(res, w, concentration=concentration)
    hull = np.asarray(record.get("hull", 0.0), float)
    # log(L_obs / L_k) per family; set log L_obs = 0, so log L_k = -e_k
    e_k = np.stack([np.asarray(record["log_ratio"][f]) for f in families], 1)
    e = -np.log(np.exp(-e_k) @ ww)                             # log(L_obs / sum_k w_k L_k)
    lo, hi = disc.quantiles(record["dN"], record["dD"], level, hull)
    mlo, mhi = mixture_of_families(-e_k, [res.discrepancy(f) for f in families], ww,
                                   record["dN"], record["dD"], hull, level)
    return {"rel": np.expm1(-e), "covered": (lo <= e) & (e <= hi), "weights": ww,
            "half_width": float(np.mean(hi - lo)) / 2,
            "mixture_covered": (mlo <= 0) & (0 <= mhi),
            "mixture_half_width": float(np.mean(mhi - mlo)) / 2}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweeps", type=int, default=30)
    ap.add_argument("--first-seed", type=int, default=0, help="seed of the first sweep (fresh "
                    "sweeps to check a change chosen on the saved ones)")
    ap.add_argument("--families", default="nested,joint")
    ap.add_argument("--save", metavar="FILE", help="write the per-sweep records (JSON)")
    ap.add_argument("--load", metavar="FILE", help="re-evaluate saved records instead of fitting")
    ap.add_argument("--priors", metavar="B,S0,S1,K", help="discrepancy prior scales to evaluate "
                    "(default: the Discrepancy defaults)")
    ap.add_argument("--carry-bias", action="store_true", help="evaluate the discrepancy with "
                    "the sign of its bias carried to the target (Discrepancy(carry_bias=True))")
    ap.add_argument("--concentration", type=float, default=STACKING_CONCENTRATION,
                    help="Dirichlet concentration of the stacking weights (default "
                    "%(default)s; 1 = plain stacking)")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when piped to a file
    warnings.simplefilter("ignore")
    families = [f for f in args.families.split(",") if f]
    priors = None
    if args.priors:
        priors = dict(zip(("prior_b", "prior_s0", "prior_s1", "prior_k"),
                          map(float, args.priors.split(","))))
    if args.carry_bias:
        priors = {**(priors or {}), "carry_bias": True}
    t0 = time.perf_counter()
    if args.load:
        with open(args.load) as f:
            records = json.load(f)
        families = [f for f in families if f in records[0]["log_ratio"]]
    else:
        records = []
        for seed in range(args.first_seed, args.first_seed + args.sweeps):
            records.append(one_sweep(seed, families))
            r = records[-1]
            print(f"  sweep {seed}: a = {r['amp']:.4f}; " + "; ".join(
                f"{fam} mean rel err {100 * np.mean(np.expm1(-np.asarray(r['log_ratio'][fam]))):+.2f} %"
                for fam in families), flush=True)
            if args.save:
                with open(args.save, "w") as f:
                    json.dump(records, f)
    dt = time.perf_counter() - t0
    print(f"[out-of-family calibration] {len(records)} sweeps x 5 target mixtures at N*=800M, "
          f"D*=16e9 (u = 1.96), {dt:.0f} s")
    for without in (False, True):
        print(("discrepancy fitted on every fold" if not without else
               "diagnostic: discrepancy fitted without the mixture folds"))
        print(f"{'family':<8} {'cover90':>8} {'sweeps all in':>14} {'naive90':>8} "
              f"{'mean|err|%':>10} {'max|err|%':>9} {'med sd%':>8} {'med half90%':>11}")
        for fam in families:
            r = [evaluate(x, fam, without_mixtures=without, priors=priors) for x in records]
            cov = np.concatenate([x["covered"] for x in r])
            naive = np.concatenate([x["naive"] for x in r])
            rel = np.concatenate([x["rel"] for x in r])
            full = np.mean([x["covered"].all() for x in r])
            print(f"{fam:<8} {cov.mean():8.3f} {full:14.2f} {naive.mean():8.3f} "
                  f"{100 * np.mean(np.abs(rel)):10.2f} {100 * np.max(np.abs(rel)):9.2f} "
                  f"{100 * np.median([x['sd'] for x in r]):8.2f} "
                  f"{100 * np.median([x['half_width'] for x in r]):11.2f}")
    if len(families) > 1:
        r = [evaluate_auto(x, families, priors=priors, concentration=args.concentration)
             for x in records]
        cov = np.concatenate([x["covered"] for x in r])
        rel = np.concatenate([x["rel"] for x in r])
        wts = np.mean([x["weights"] for x in r], 0)
        print(f"auto ({'+'.join(families)}, stacking): cover90 {cov.mean():.3f}, sweeps all in "
              f"{np.mean([x['covered'].all() for x in r]):.2f}, mean|err| "
              f"{100 * np.mean(np.abs(rel)):.2f} %, max|err| {100 * np.max(np.abs(rel)):.2f} %, "
              f"med half90 {100 * np.median([x['half_width'] for x in r]):.2f} %, mean weights "
              + ", ".join(f"{f} {v:.2f}" for f, v in zip(families, wts)))
        cov = np.concatenate([x["mixture_covered"] for x in r])
        print(f"diagnostic, earlier versions' auto interval (the stacked mixture of the "
              f"families' own predictives): cover90 {cov.mean():.3f}, sweeps all in "
              f"{np.mean([x['mixture_covered'].all() for x in r]):.2f}, med half90 "
              f"{100 * np.median([x['mixture_half_width'] for x in r]):.2f} %")
    print("cover90: share of the held-out target runs inside the 90 % discrepancy interval; "
          "sweeps all in: share of sweeps whose 5 targets are all inside (errors within a sweep "
          "are correlated); naive90: interval with zero discrepancy (within-fold run scatter "
          "only); med half90: median half-width of the 90 % interval in log units")
    return 0


if __name__ == "__main__":
    sys.exit(main())
