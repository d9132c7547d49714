"""joint vs joint-mix on simulated sweeps whose size term does / does not depend on the mixture.

Truth (``mixlaws.simulate.random_truth``): ``L_d = c_d + k_d e^{t_d.r} + A_d e^{s u_d.r} N^-alpha
+ B_d D^-beta`` with mixture-scaling strength ``s`` (0: the plain joint law; > 0: inside the
joint-mix family only). Sweep: 5 sources, 4 domains, 16 mixtures x 4 sizes (20M-200M) x 10
checkpoints, 0.3 % checkpoint and 0.2 % run noise. Held out: 32 other mixtures at the target
1e9 params x 2e10 tokens (5x the largest size, 5x its tokens). Prints mean / max |relative
error| of the aggregate per family and strength over ``--seeds`` truths, and fit times.

Run:  python benchmarks/joint_mix_recovery.py [--seeds 5] [--strengths 0,0.5,1]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

from mixlaws.fit import make_estimator
from mixlaws.runs import validate_runs
from mixlaws.simulate import random_truth, sample_mixtures, simulate_sweep

SOURCES = ("web", "code", "books", "papers", "wiki")
DOMAINS = ("web", "code", "prose", "science")
TARGET = (1e9, 2e10)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--strengths", default="0,0.5,1")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    test = sample_mixtures(32, len(SOURCES), seed=12345)
    for s in (float(x) for x in args.strengths.split(",")):
        errs = {"joint": [], "joint-mix": []}
        times = {"joint": [], "joint-mix": []}
        for seed in range(args.seeds):
            truth = random_truth(SOURCES, DOMAINS, seed=seed, mixture_scaling=s)
            runs = validate_runs(simulate_sweep(truth, seed=seed))
            want = truth.aggregate(test, *TARGET)
            for name in errs:
                t0 = time.perf_counter()
                model = make_estimator(name).fit(runs)
                times[name].append(time.perf_counter() - t0)
                errs[name].append(np.abs(model.predict(test, *TARGET)["loss"] / want - 1))
        for name, e in errs.items():
            e = np.concatenate(e)
            print(f"strength s={s:g}  {name:<10} {args.seeds} truths x 32 held-out mixtures at "
                  f"1e9/2e10: mean |rel err| {100 * e.mean():.3f} %, max {100 * e.max():.3f} %  "
                  f"(fit median {np.median(times[name]):.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
