"""Benchmark on RegMix 1M-parameter proxy runs (../shared/data/regmix).

Single scale (one size, one checkpoint per run): only the mixing law is fitted, at that scale.
Fit on the 512 train mixtures, predict the 256 test mixtures; report Spearman's rho and MAE
per validation domain (Pile-CC first, the reference figures in DESIGN §9: linear regression
.902, LightGBM .988, one exponential law .963, implicit K=5 .986), and the implicit-aggregation
law on the mean loss for K in {1, 3, 5}; then ``--law auto`` (the CLI's default: the families
that can be fitted to a one-scale table, stacked on its backtests) on Pile-CC.

Run:  python benchmarks/regmix.py
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np
from scipy.stats import spearmanr

import mixlaws.backtest  # noqa: F401  (registers the 'auto' family)
from mixlaws.fit import NestedMixingLaw, make_estimator
from mixlaws.runs import read_runs

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "regmix")


def main() -> int:
    train_path = os.path.join(DATA, "train_1m_runs.csv")
    test_path = os.path.join(DATA, "test_1m_runs.csv")
    if not os.path.exists(train_path):
        print(f"skipped: {train_path} not found")
        return 0
    warnings.simplefilter("ignore")
    train = read_runs(train_path)
    test = read_runs(test_path)
    N = float(train.data["params"].iloc[0])
    D = float(train.data["tokens"].iloc[0])
    last = test.data.drop_duplicates("run")
    mixtures = last[[f"mix:{s}" for s in train.sources]].to_numpy(float)
    obs = last[[f"loss:{d}" for d in test.domains]].to_numpy(float)
    t0 = time.perf_counter()
    model = NestedMixingLaw().fit(train)
    pred = model.predict(mixtures, N, D)
    dt = time.perf_counter() - t0
    print(f"[RegMix 1M] per-domain mixing laws on 512 train mixtures, 256 test mixtures ({dt:.1f} s)")
    order = sorted(range(len(test.domains)), key=lambda i: test.domains[i] != "pile_cc")
    for i in order:
        rho = spearmanr(pred["domains"][:, i], obs[:, i]).statistic
        mae = np.mean(np.abs(pred["domains"][:, i] - obs[:, i]))
        print(f"  {test.domains[i]:<18} Spearman {rho:.3f}   MAE {mae:.4f}")
    mean_obs = obs.mean(1)
    rho = spearmanr(pred["loss"], mean_obs).statistic
    print(f"  {'mean (explicit)':<18} Spearman {rho:.3f}   MAE {np.mean(np.abs(pred['loss'] - mean_obs)):.4f}")
    for K in (1, 3, 5):
        t0 = time.perf_counter()
        m = NestedMixingLaw(implicit=K).fit(train)
        p = m.predict(mixtures, N, D)["loss"]
        print(f"  {'mean (implicit K=%d)' % K:<18} Spearman {spearmanr(p, mean_obs).statistic:.3f}   "
              f"MAE {np.mean(np.abs(p - mean_obs)):.4f}   ({time.perf_counter() - t0:.1f} s)")
    # the CLI's default, --law auto: every family that can be fitted to this table, stacked
    t0 = time.perf_counter()
    auto = make_estimator("auto").fit(train)
    pa = auto.predict(mixtures, N, D)
    i = list(test.domains).index("pile_cc") if "pile_cc" in test.domains else order[0]
    fams = ", ".join(f"{f} {w:.2f}" for f, w in auto.law_weights_.items())
    print(f"  --law auto: {test.domains[i]} Spearman {spearmanr(pa['domains'][:, i], obs[:, i]).statistic:.3f}"
          f"   families fitted and weights: {fams}   ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
