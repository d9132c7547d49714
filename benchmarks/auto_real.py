"""``--law auto`` on held-out public runs: errors and coverage of its 90 % new-run intervals.

For each Ye et al. (2024) table (``../shared/data/ye2024``) and each real extrapolation it
can replay — (a) ``largest-size``: fit 70M-305M, predict every 410M run at its end;
(b) ``long-runs``: the runs reaching 90-100k steps cut at 30k, everything else whole,
predict their ends — the averaged model is fitted on the fold's training table only (its
own backtests, stacking weights and discrepancy models come from that table: it never sees
the held-out losses) and scored on the held-out runs, beside each member family.  The row
``auto-mixture`` is a diagnostic: the same prediction with earlier versions' interval (the
stacked mixture of the families' own discrepancy-widened predictives,
``backtest_calibration.mixture_of_families``).

Run:  python benchmarks/auto_real.py [--tables redpajama,5mix] [--families nested,joint]
          [--inner-folds largest-size,truncate,both,mixtures] [--mixture-folds 3]
(the defaults are those of ``--law auto``)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

from mixlaws.backtest import (AUTO_FAMILIES, DEFAULT_FOLDS, AveragedMixingLaw,
                              extrapolation_distance, largest_size_fold, long_runs_fold)
from mixlaws.fit import mixture_extrapolation
from _data import DATA  # benchmarks/ is on sys.path
from backtest_calibration import mixture_of_families
from backtest_real import TABLES, load


def score(law: AveragedMixingLaw, fold) -> list[dict]:
    t = fold.targets
    cols = [f"mix:{s}" for s in law.sources_]
    loss_cols = [f"loss:{d}" for d in law.domains_]
    w = np.asarray(law.weights_)
    fams = list(law.members_)
    discs = [law.discrepancy_[f] for f in fams]
    ww = np.array([law.law_weights_[f] for f in fams])
    fitted = fold.train.data.groupby("run", sort=False)[fold.train.mix_columns].first()
    rows = []
    for (N, D), g in t.groupby(["params", "tokens"]):
        at = law.target(N, D)
        r = g[cols].to_numpy(float)
        obs = g[loss_cols].to_numpy(float) @ w
        pred = at.predict(r)
        lo, hi = at.interval(r, 0.9)
        per = at.per_law(r)
        dN, dD = extrapolation_distance(fold.train, N, D)
        hull = [e.hull_distance for e in mixture_extrapolation(fitted.to_numpy(float), r,
                                                               law.sources_)]
        log_pred = np.log(np.stack([per[f] for f in fams], 1))
        mlo, mhi = np.exp(mixture_of_families(log_pred, discs, ww, dN[0], dD[0],
                                              np.asarray(hull)))
        for i in range(len(g)):
            rows.append({"obs": obs[i], "auto": pred[i], "lo": lo[i], "hi": hi[i],
                         "auto-mixture": pred[i], "mix_lo": mlo[i], "mix_hi": mhi[i],
                         **{f: v[i] for f, v in per.items()}})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--tables", default="redpajama,5mix")
    ap.add_argument("--families", default=",".join(AUTO_FAMILIES))
    ap.add_argument("--inner-folds", default=",".join(DEFAULT_FOLDS))
    ap.add_argument("--mixture-folds", type=int, default=3)
    args = ap.parse_args()
    wpath = os.path.join(args.data, "pile_valid_weights.json")
    if not os.path.exists(wpath):
        print(f"skipped: {wpath} not found")
        return 0
    warnings.simplefilter("ignore")
    with open(wpath) as f:
        weights = json.load(f)
    fams = tuple(x for x in args.families.split(",") if x)
    inner = tuple(x for x in args.inner_folds.split(",") if x)
    print(f"families {', '.join(fams)}; inner backtest folds {', '.join(inner)}")
    print(f"{'table':<10} {'target':<13} {'n':>3} {'law':<12} {'weight':>7} {'mean|err|%':>10} "
          f"{'max|err|%':>9} {'bias%':>7} {'cover90':>8} {'width%':>7}")
    for name in [x for x in args.tables.split(",") if x]:
        if not os.path.exists(os.path.join(args.data, TABLES[name])):
            continue
        runs = load(args.data, name)
        for fold in (largest_size_fold(runs), long_runs_fold(runs)):
            if fold.skipped:
                print(f"{name:<10} {fold.name:<13} skipped: {fold.skipped}")
                continue
            t0 = time.perf_counter()
            law = AveragedMixingLaw(families=fams, folds=inner,
                                    n_mixture_folds=args.mixture_folds,
                                    val_weights=weights).fit(fold.train)
            rows = score(law, fold)
            dt = time.perf_counter() - t0
            obs = np.array([r["obs"] for r in rows])
            for lab in ("auto", "auto-mixture") + tuple(law.members_):
                pred = np.array([r[lab] for r in rows])
                e = pred / obs - 1
                cover = width = ""
                if lab.startswith("auto"):
                    k = ("lo", "hi") if lab == "auto" else ("mix_lo", "mix_hi")
                    lo, hi = (np.array([r[x] for r in rows]) for x in k)
                    cover = f"{int(((lo <= obs) & (obs <= hi)).sum())}/{len(obs)}"
                    width = f"{100 * np.median((hi - lo) / pred):.2f}"
                wt = "" if lab.startswith("auto") else f"{law.law_weights_[lab]:.3f}"
                print(f"{name:<10} {fold.name:<13} {len(obs):>3} {lab:<12} {wt:>7} "
                      f"{100 * np.abs(e).mean():>10.2f} {100 * np.abs(e).max():>9.2f} "
                      f"{100 * e.mean():>+7.2f} {cover:>8} {width:>7}")
            print(f"{'':<10} {'':<13} fit + backtests + scoring {dt:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
