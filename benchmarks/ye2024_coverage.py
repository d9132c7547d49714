"""Interval coverage on Ye et al. (2024) RedPajama runs: the 410M hold-out.

As in :func:`mixlaws.fit.holdout_largest_size`: fit the nested laws on every model size
but the largest (70M-305M), sample the posterior (``mixlaws.posterior.sample_posterior``) at
the largest size's params and its runs' last tokens (410M, 30k steps), and check for each of the
20 held-out mixtures whether the 90 % and 50 % intervals -- of the mean law (epistemic) and of a
new run (epistemic + run-to-run noise) -- contain the observed Pile-weighted loss.

Run:  python benchmarks/ye2024_coverage.py [--n-draws 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from mixlaws.fit import NestedMixingLaw
from _data import load_redpajama  # benchmarks/ is on sys.path
from mixlaws.posterior import predict_intervals, sample_posterior



def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-draws", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t_start = time.perf_counter()
    loaded = load_redpajama()
    if loaded is None:
        return 0
    runs, w = loaded
    df = runs.data
    sizes = np.unique(df["params"])
    largest = sizes[-1]
    train = dataclasses.replace(runs, data=df[(df["params"] < largest).to_numpy()]
                                .reset_index(drop=True))
    t0 = time.perf_counter()
    model = NestedMixingLaw(val_weights=w).fit(train)
    t_fit = time.perf_counter() - t0

    mix_cols = [f"mix:{s}" for s in runs.sources]
    loss_cols = [f"loss:{d}" for d in runs.domains]
    last = df[df["params"] == largest].groupby("run", sort=False).tail(1)
    rows = []
    t_post = 0.0
    for (N, D), g in last.groupby(["params", "tokens"], sort=False):
        t0 = time.perf_counter()
        draws = sample_posterior(model, train, float(N), float(D), n_draws=args.n_draws,
                                 seed=args.seed)
        t_post += time.perf_counter() - t0
        for dg in draws.diagnostics:
            print(f"[chain] {dg['name']} at N={N:.4g}, D={D:.4g}: {dg['n_walkers']} walkers x "
                  f"{dg['n_steps']} steps, tau = {[round(x, 1) for x in dg['tau']]}, "
                  f"steps/tau {dg['steps_per_tau']:.1f}, ESS {dg['ess']:.0f}, "
                  f"acceptance {dg['acceptance']:.3f}, converged {dg['converged']}")
        r = g[mix_cols].to_numpy(float)
        obs = g[loss_cols].to_numpy(float) @ model.weights_
        point = np.asarray(model.predict(r, float(N), float(D))["loss"])
        i90 = predict_intervals(draws, r, 0.9, seed=args.seed)
        i50 = predict_intervals(draws, r, 0.5, seed=args.seed)
        for j, run in enumerate(g["run"]):
            rows.append((run, obs[j], point[j], i90.loss[j], i90.lower[j], i90.upper[j],
                         i90.new_lower[j], i90.new_upper[j], i50.lower[j], i50.upper[j],
                         i50.new_lower[j], i50.new_upper[j], float(np.median(draws.run_noise))))
    a = np.array([r[1:] for r in rows])
    obs = a[:, 0]

    def cover(lo, hi):
        return float(np.mean((a[:, lo] <= obs) & (obs <= a[:, hi])))

    n = len(rows)
    print(f"\n[410M coverage] fit on {', '.join(f'{s:.4g}' for s in sizes[:-1])} params "
          f"({t_fit:.1f} s), posterior at N={largest:.4g}, {n} held-out runs/mixtures, "
          f"{args.n_draws} draws ({t_post:.1f} s); median run noise tau {a[0, 11]:.4f}")
    print(f"  90 % interval covers: mean law {cover(3, 4):.2f} ({round(n * cover(3, 4))}/{n}), "
          f"new run {cover(5, 6):.2f} ({round(n * cover(5, 6))}/{n})")
    print(f"  50 % interval covers: mean law {cover(7, 8):.2f} ({round(n * cover(7, 8))}/{n}), "
          f"new run {cover(9, 10):.2f} ({round(n * cover(9, 10))}/{n})")
    rel = (a[:, 2] / obs - 1) * 100
    width = (a[:, 4] - a[:, 3]) / obs * 100
    nwidth = (a[:, 6] - a[:, 5]) / obs * 100
    print(f"  mean |rel err| of posterior mean {np.mean(np.abs(rel)):.3f} %, median 90 % width: "
          f"mean law {np.median(width):.3f} %, new run {np.median(nwidth):.3f} % of the loss")
    print(f"\n  {'run':>9} {'observed':>9} {'point':>8} {'mean':>8} {'lo90':>8} {'hi90':>8} "
          f"{'newlo90':>8} {'newhi90':>8} {'lo50':>8} {'hi50':>8} {'newlo50':>8} {'newhi50':>8}"
          f"  in90 new90 in50 new50")
    for r, x in zip(rows, a):
        flags = [x[lo] <= x[0] <= x[hi] for lo, hi in ((3, 4), (5, 6), (7, 8), (9, 10))]
        print(f"  {r[0]:>9} " + " ".join(f"{v:8.4f}" for v in x[:11])
              + "  " + "  ".join(f"{'y' if f_ else '-':>4}" for f_ in flags))
    print(f"\n[total runtime] {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
