"""Every law family on Ye et al. (2024)'s RedPajama runs: fit 70M-305M, predict 410M.

For each family of ``mixlaws.fit.FAMILIES`` (nested, nested-tied, joint, joint-mix), fit on the
runs below the largest size (70M, 160M, 305M; mixtures renormalised, they are rounded in the
source) and predict every 410M run at its last checkpoint; aggregate Pile loss with the Pile
validation weights. Prints mean and max |relative error| per family, the worst runs, and the
fit time. Data from ``../shared/data/ye2024`` (or ``$MIXLAWS_SHARED_DATA/ye2024``); skipped
when absent.

Run:  python benchmarks/joint_families.py [--families joint,joint-mix]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from mixlaws.fit import FAMILIES, holdout_largest_size, make_estimator, summarise_errors
from _data import load_redpajama  # benchmarks/ is on sys.path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default=",".join(FAMILIES))
    args = ap.parse_args()
    loaded = load_redpajama()
    if loaded is None:
        return 0
    runs, w = loaded
    for name in args.families.split(","):
        t0 = time.perf_counter()
        model, pred = holdout_largest_size(runs, lambda: make_estimator(name, val_weights=w))
        dt = time.perf_counter() - t0
        s = summarise_errors(pred)
        conv = (bool(model.fit_.converged.all()) if hasattr(model, "fit_") else
                bool(model.step_.converged.all()))
        e = pred["rel_error"].to_numpy()
        worst = pred.iloc[np.argsort(-np.abs(e))[:3]]
        extra = ""
        if hasattr(model, "fit_"):
            f = model.fit_
            extra = f"; {int(f.at_bound.sum())}/{f.at_bound.size} domains with a parameter on a bound"
            if "p" in f.params:
                extra += (f"; max |p| {np.abs(f.params['p']).max():.3g}, "
                          f"max |q| {np.abs(f.params['q']).max():.3g}")
        print(f"[410M hold-out] {name:<12} {s['n']} runs: mean |rel err| "
              f"{100 * s['mean_abs_rel_error']:.3f} %, max {100 * s['max_abs_rel_error']:.3f} %, "
              f"mean signed {100 * e.mean():+.3f} %  ({dt:.1f} s; converged {conv})  worst: "
              + ", ".join(f"{r} {100 * x:+.2f} %" for r, x in zip(worst["run"], worst["rel_error"])) + extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
