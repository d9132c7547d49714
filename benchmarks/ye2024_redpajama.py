"""Benchmark on Ye et al. (2024) RedPajama runs (../shared/data/ye2024).

1. Fit on 70M-305M, predict the 410M model of every mixture at its last checkpoint
   (30k steps), aggregate Pile loss with the Pile validation weights: mean and max
   relative error (the paper's target: < 1 %).
2. Fit on 70M-410M and print the predicted 1B (805.7M non-embedding parameters),
   100k-step loss of every fitting mixture.
3. Time `mixlaws run` on the full table (fit + target stages + optimisation + exports).

Run:  python benchmarks/ye2024_redpajama.py [--tie-beta run|all|none]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import numpy as np

from mixlaws.fit import holdout_largest_size, summarise_errors
from mixlaws.fit import JointMixingLaw
from mixlaws.fit import NestedMixingLaw
from _data import TABLE, WEIGHTS, load_redpajama  # benchmarks/ is on sys.path

STEP_TOKENS = 2**20  # tokens per step in these runs (tokens / step)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tie-beta", default="run")
    ap.add_argument("--tie-alpha", default="all")
    args = ap.parse_args()
    loaded = load_redpajama()
    if loaded is None:
        return 0
    runs, w = loaded
    make = lambda: NestedMixingLaw(val_weights=w, tie_beta=args.tie_beta,  # noqa: E731
                                   tie_alpha=args.tie_alpha)

    t0 = time.perf_counter()
    model, pred = holdout_largest_size(runs, make)
    t_hold = time.perf_counter() - t0
    s = summarise_errors(pred)
    print(f"[410M hold-out] tie_beta={args.tie_beta} tie_alpha={args.tie_alpha}: "
          f"{s['n']} runs, mean |rel err| {100 * s['mean_abs_rel_error']:.3f} %, "
          f"max {100 * s['max_abs_rel_error']:.3f} %  ({t_hold:.1f} s)")
    print(pred[["run", "observed", "predicted", "rel_error"]].to_string(index=False))
    per_dom = {c.split(":", 1)[1]: float(np.mean(np.abs(pred[f"predicted:{c.split(':', 1)[1]}"]
                                                        / pred[c] - 1)))
               for c in pred.columns if c.startswith("observed:")}
    worst = sorted(per_dom.items(), key=lambda kv: -kv[1])[:5]
    print("worst domains (mean |rel err|):",
          ", ".join(f"{d} {100 * e:.2f} %" for d, e in worst))

    t0 = time.perf_counter()
    _, jpred = holdout_largest_size(runs, lambda: JointMixingLaw(val_weights=w))
    js = summarise_errors(jpred)
    print(f"[410M hold-out, joint law L(r,N,D) as a cross-check]: mean |rel err| "
          f"{100 * js['mean_abs_rel_error']:.3f} %, max {100 * js['max_abs_rel_error']:.3f} %  "
          f"({time.perf_counter() - t0:.1f} s)")

    t0 = time.perf_counter()
    full = make().fit(runs)
    target = full.target(805.7e6, 100_000 * STEP_TOKENS)
    pred1b = full.predict(target.mixtures, 805.7e6, 100_000 * STEP_TOKENS)
    print(f"\n[1B, 100k steps] fitted on 70M-410M in {time.perf_counter() - t0:.1f} s; "
          f"alpha = {target.size.params['alpha'][0]:.4f}")
    for lab, L in zip(target.mixture_labels, pred1b["loss"]):
        print(f"  {lab:>10}  {L:.4f}")

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "mixlaws.cli", "--quiet", "run", TABLE, "--renormalize",
               "--val-weights", WEIGHTS, "--params", "805.7M", "--tokens", str(100_000 * STEP_TOKENS),
               "--tie-beta", args.tie_beta, "-o", tmp]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        status = "ok" if res.returncode == 0 else f"exit {res.returncode}: {res.stderr[-300:]}"
        print(f"\n[mixlaws run] full RedPajama table -> 1B/100k-step optimum: {dt:.1f} s ({status})")
        if res.returncode == 0:
            summ = json.loads(res.stdout)
            print("  optimum:", {k: round(v, 4) for k, v in summ["mixture"].items()},
                  f"predicted loss {summ['predicted_loss']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
