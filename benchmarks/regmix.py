"""Benchmark on RegMix 1M-parameter proxy runs (../shared/data/regmix).

Single scale (one size, one checkpoint per run): only the mixing law is fitted, at that scale.
Fit on the 512 train mixtures, predict the 256 test mixtures; report Spearman's rho and MAE
per validation domain (Pile-CC first, the reference figures in DESIGN §9: linear regression
.902, LightGBM .988, one exponential law .963, implicit K=5 .986), and the implicit-aggregation
law on the mean loss for K in {1, 3, 5}; the two-term mixing law per domain (``nested-sum``);
then ``--law auto`` (the CLI's default: on a one-scale table, nested and nested-sum stacked on
their leave-mixtures-out backtests) on Pile-CC.

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


def scipy_check(train, test, domain: str = "pile_cc") -> None:
    """Is mixlaws' Huber fit of one domain's mixing law scipy's optimum too? Restart scipy's
    ``least_squares(loss="huber", f_scale=1e-3)`` from it (same log-residuals, bounds), and fit
    plain least squares on log-loss, for the objective and the test Spearman of each."""
    from scipy.optimize import least_squares

    from mixlaws.fit import fit_mixing_stage

    a, b = train.data.drop_duplicates("run"), test.data.drop_duplicates("run")
    cols = [f"mix:{s}" for s in train.sources]
    Xa, Xb = a[cols].to_numpy(float), b[cols].to_numpy(float)
    ya, yb = a[f"loss:{domain}"].to_numpy(float), b[f"loss:{domain}"].to_numpy(float)
    p = fit_mixing_stage([domain], Xa, ya[:, None]).params
    x0 = np.concatenate([[p["c"][0], np.log(p["k"][0])], p["t"][0]])
    M = Xa.shape[1]
    bounds = ([0.0, -30.0] + [-50.0] * M, [ya.min(), np.log(10 * ya.max())] + [50.0] * M)
    res = lambda th: np.log(th[0] + np.exp(th[1] + Xa @ th[2:])) - np.log(ya)  # noqa: E731
    rho = lambda th: spearmanr(th[0] + np.exp(th[1] + Xb @ th[2:]), yb).statistic  # noqa: E731

    def huber(th: np.ndarray, d: float = 1e-3) -> float:
        r = np.abs(res(th))
        return float(np.where(r <= d, 0.5 * r * r, d * (r - 0.5 * d)).sum())

    hub = least_squares(res, x0, bounds=bounds, loss="huber", f_scale=1e-3, max_nfev=20000).x
    ls = least_squares(res, x0, bounds=bounds, max_nfev=20000).x
    print(f"  {domain}, Huber objective / test Spearman: mixlaws {huber(x0):.7g} / {rho(x0):.4f}; "
          f"scipy Huber from it {huber(hub):.7g} / {rho(hub):.4f}; scipy least squares "
          f"{huber(ls):.7g} / {rho(ls):.4f}")


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
    scipy_check(train, test)
    # the two-term mixing law per domain (the nested-sum family)
    t0 = time.perf_counter()
    two = make_estimator("nested-sum").fit(train).predict(mixtures, N, D)
    rhos = [spearmanr(two["domains"][:, j], obs[:, j]).statistic for j in range(obs.shape[1])]
    print(f"  nested-sum (2 terms per domain): {test.domains[order[0]]} Spearman "
          f"{rhos[order[0]]:.3f}, median over the {len(rhos)} domains {np.median(rhos):.3f}, "
          f"mean (explicit) {spearmanr(two['loss'], mean_obs).statistic:.3f}   "
          f"({time.perf_counter() - t0:.1f} s)")
    # the CLI's default, --law auto: every family that can be fitted to this table, stacked
    t0 = time.perf_counter()
    auto = make_estimator("auto").fit(train)
    pa = auto.predict(mixtures, N, D)
    i = order[0]                                # Pile-CC (first in the order above)
    fams = ", ".join(f"{f} {w:.2f}" for f, w in auto.law_weights_.items())
    print(f"  --law auto: {test.domains[i]} Spearman {spearmanr(pa['domains'][:, i], obs[:, i]).statistic:.3f}"
          f"   families fitted and weights: {fams}   ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
