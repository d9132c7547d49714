"""Backtests of every law family on Ye et al. (2024)'s public sweeps (../shared/data/ye2024).

Tables: ``redpajama_runs.csv`` (7 sources; 70M/160M/305M/410M = 18.9M-302.3M non-embedding
parameters; most runs end at 30k steps, two reach 100k; run 70M-999's mixture sums to 1.0199,
hence ``renormalize``) and ``5mix_runs.csv`` (5 source groups; eight 70M/160M runs reach
90k-100k steps; the 5 checkpoint rows of run 70M-3 that lack a loss are dropped, and said so).
Aggregate: Pile validation weights (``pile_valid_weights.json``).  Folds:

(a) ``largest-size``: fit 70M-305M, predict every 410M run at its last checkpoint (30k);
(b) ``long-runs``: the runs reaching 90-100k steps are cut at their size's median end (30k)
    and, with every other run whole, fitted; predicted at their end;
and 5 leave-mixtures-out folds (interpolation; evidence for the discrepancy at u = 0).

Per family and fold: mean/max |rel err|, bias, the mean distances, and the coverage of the
90 % discrepancy interval fitted on every *other* fold (leave-one-fold-out).  Last, each
family's discrepancy prediction at the real target (1B = 805.7M params, 100k steps).

Run:  python benchmarks/backtest_real.py [--data DIR] [--tables redpajama,5mix]
          [--families nested,nested-tied,joint] [--folds largest-size,long-runs,mixtures]
          [--save DIR | --load DIR]   (--load re-summarises saved fits; "seconds" are the fits')
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import pandas as pd

from mixlaws.backtest import BacktestResult, backtest
from mixlaws.runs import validate_runs
from _data import DATA  # benchmarks/ is on sys.path

TABLES = {"redpajama": "redpajama_runs.csv", "5mix": "5mix_runs.csv"}
TARGET = (805.7e6, 100_000 * 2**20)  # 1B non-embedding params, 100k steps of 2^20 tokens


def load(data: str, name: str):
    frame = pd.read_csv(os.path.join(data, TABLES[name]))
    losses = [c for c in frame.columns if c.startswith("loss:")]
    gaps = frame[losses].isna().any(axis=1)
    if gaps.any():
        print(f"  note: {name}: dropped {int(gaps.sum())} checkpoint row(s) lacking a loss "
              f"(runs {', '.join(sorted(set(frame.loc[gaps, 'run'])))})")
    return validate_runs(frame[~gaps].reset_index(drop=True), path=TABLES[name], renormalize=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=DATA, help="directory of the ye2024 tables")
    ap.add_argument("--tables", default="redpajama,5mix")
    ap.add_argument("--families", default="nested,nested-tied,joint")
    ap.add_argument("--folds", default="largest-size,long-runs,mixtures")
    ap.add_argument("--save", metavar="DIR", help="also write each table's BacktestResult JSON")
    ap.add_argument("--load", metavar="DIR", help="re-summarise saved results instead of fitting")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when piped to a file
    weights_path = os.path.join(args.data, "pile_valid_weights.json")
    if not os.path.exists(weights_path):
        print(f"skipped: {weights_path} not found (pass --data DIR)")
        return 0
    warnings.simplefilter("ignore")
    with open(weights_path) as f:
        weights = json.load(f)
    families = [x for x in args.families.split(",") if x]
    folds = [x for x in args.folds.split(",") if x]
    for name in [x for x in args.tables.split(",") if x]:
        if not os.path.exists(os.path.join(args.data, TABLES[name])):
            print(f"skipped {name}: not found in {args.data}")
            continue
        runs = load(args.data, name)
        t0 = time.perf_counter()
        if args.load:
            with open(os.path.join(args.load, f"backtest_{name}.json")) as f:
                res = BacktestResult.from_dict(json.load(f))
            families, folds = list(res.settings["families"]), list(res.settings["folds"])
        else:
            res = backtest(runs, families, folds, settings={"val_weights": weights})
        if args.save:
            os.makedirs(args.save, exist_ok=True)
            with open(os.path.join(args.save, f"backtest_{name}.json"), "w") as f:
                json.dump(res.to_dict(), f)
        dt = time.perf_counter() - t0
        print(f"\n[{name}] {len(runs.runs())} runs; folds {', '.join(folds)}; "
              + (f"loaded in {dt:.0f} s" if args.load else f"{dt:.0f} s"))
        print(res.summary())
        t = res.at_target(runs, *TARGET)
        print(f"  real target 1B / 100k steps: dN = {t['dN'].iloc[0]:.2f}, "
              f"dD = {t['dD'].iloc[0]:.2f}, u = {t['u'].iloc[0]:.2f}")
        for r in t.itertuples():
            print(f"  {r.family:<12} discrepancy at the target: bias {100 * r.bias:+.2f} % "
                  f"(log obs/pred), sd {100 * r.sd:.2f} %  -> 90 % interval "
                  f"x[{r.lower:.4f}, {r.upper:.4f}] of the prediction")
        seconds = res.status.groupby("family", sort=False)["seconds"].sum()
        print("  seconds per family:", ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
