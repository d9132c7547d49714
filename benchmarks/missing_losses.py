"""Missing loss cells: what ``--nan-policy omit`` costs against the complete table, and against
dropping every row that has a gap (the only way forward before).

1. Simulated sweeps (always runs): a known truth (``random_truth``, 5 sources, 4 domains), 16
   mixtures x 4 sizes x 10 checkpoints; a fraction of the loss cells is removed at random. Each
   table is fitted (nested, tie_beta="all") and the aggregate (mean over domains) loss is
   predicted at N*=1e9, D*=2e10 for the 16 fitted and 32 new mixtures; the error is against the
   truth (noise-free), relative, mean absolute over mixtures.
2. Ye et al.'s raw 5mix table (``../shared/data``, skipped when absent; 88 missing cells, all in
   run 70M-3): omit vs dropping the 5 rows, largest relative difference of the predicted
   aggregate loss at 1.2e9 params, 31457280000 tokens, over the distinct mixtures
   (tie_beta="run", as in Ye et al.).

Run:  python benchmarks/missing_losses.py [--seeds 2] [--holes 0.1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

from mixlaws.fit import NestedMixingLaw
from mixlaws.runs import validate_runs
from mixlaws.simulate import random_truth, sample_mixtures, simulate_sweep

SOURCES = ("web", "code", "books", "papers", "wiki")
DOMAINS = ("web", "code", "prose", "science")
TARGET = (1e9, 2e10)
YE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                  "ye2024", "5mix_runs.csv")


def _fit(frame, nan_policy="raise", tie_beta="all"):
    return NestedMixingLaw(tie_beta=tie_beta).fit(validate_runs(frame, nan_policy=nan_policy))


def simulated(seed: int, holes: float) -> dict[str, float]:
    truth = random_truth(SOURCES, DOMAINS, seed=seed)
    sweep = simulate_sweep(truth, n_mixtures=16, seed=seed)
    loss_cols = [f"loss:{d}" for d in DOMAINS]
    rng = np.random.default_rng([seed, 11])
    gaps = rng.random((len(sweep), len(DOMAINS))) < holes
    holed = sweep.copy()
    holed[loss_cols] = holed[loss_cols].mask(gaps)
    rows = holed[~gaps.any(axis=1)]
    test = np.vstack([np.unique(sweep[[f"mix:{s}" for s in SOURCES]].to_numpy(), axis=0),
                      sample_mixtures(32, len(SOURCES), seed=seed + 100)])
    truth_loss = truth.aggregate(test, *TARGET)
    out = {"cells_removed": float(gaps.sum()), "rows_dropped": float(gaps.any(axis=1).sum())}
    for name, frame, policy in (("complete", sweep, "raise"), ("omit", holed, "omit"),
                                ("drop_rows", rows, "raise")):
        t0 = time.perf_counter()
        pred = _fit(frame, policy).predict(test, *TARGET)["loss"]
        out[name] = float(np.mean(np.abs(pred / truth_loss - 1)))
        out[f"{name}_s"] = time.perf_counter() - t0
    return out


def ye_5mix() -> None:
    import pandas as pd

    if not os.path.exists(YE):
        print(f"Ye 5mix: skipped ({YE} not found)")
        return
    raw = pd.read_csv(YE)
    t0 = time.perf_counter()
    omit = _fit(raw, "omit", tie_beta="run")  # Ye et al.'s setting (beta shared within a run)
    t_omit = time.perf_counter() - t0
    dropped = _fit(raw.dropna(), tie_beta="run")
    a = omit.predict(omit.mixtures_, 1.2e9, 31457280000.0)["loss"]
    b = dropped.predict(omit.mixtures_, 1.2e9, 31457280000.0)["loss"]
    print(f"Ye 5mix raw ({int(raw.filter(like='loss:').isna().to_numpy().sum())} missing cells): "
          f"omit vs drop the {int(raw.isna().any(axis=1).sum())} rows: max |rel diff| "
          f"{np.max(np.abs(a / b - 1)):.4%} over {len(a)} mixtures; omit fit {t_omit:.1f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--holes", type=float, default=0.1, help="fraction of loss cells removed")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    print(f"simulated sweeps, {args.holes:.0%} of loss cells removed; mean |rel error| of the "
          f"aggregate loss at N*={TARGET[0]:g}, D*={TARGET[1]:g} vs the truth (48 mixtures)")
    print("seed  cells_removed  rows_dropped  complete    omit  drop_rows   (fit+predict s)")
    rows = []
    for seed in range(args.seeds):
        r = simulated(seed, args.holes)
        rows.append(r)
        print(f"{seed:4d}  {r['cells_removed']:13.0f}  {r['rows_dropped']:12.0f}  "
              f"{r['complete']:8.4%}  {r['omit']:6.4%}  {r['drop_rows']:9.4%}   "
              f"({r['complete_s']:.0f}/{r['omit_s']:.0f}/{r['drop_rows_s']:.0f})")
    for k in ("complete", "omit", "drop_rows") if rows else ():
        print(f"mean {k}: {np.mean([r[k] for r in rows]):.4%}")
    ye_5mix()
    return 0


if __name__ == "__main__":
    sys.exit(main())
