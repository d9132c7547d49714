"""Replay on real runs: RegMix's 1M-parameter swarm as a finite pool of purchasable runs.

RegMix (Liu et al. 2024) trained 512 + 256 random mixtures of 17 Pile sources at one scale
(1M parameters, 1B tokens, one final loss per run on 13 validation domains; shared copy in
``../shared/data/regmix``, never copied here).  Single scale, equal cost per run: this replay
tests only the criterion's choice of *mixtures* (the size/length part of ``suggest`` has
nothing to do here, and a Ye-style grid has no meaning at one scale).

* the 256 *test* runs are the target: never purchasable, their observed loss (``--target``:
  the plain mean of the 13 domains, or one domain such as ``pile_cc``, RegMix's target) is the
  truth;
* the 512 *train* runs are the pool, each at cost ``6 N D``;
* each replicate starts both strategies from the same ``--start`` train runs drawn by the
  seed, and each round buys ``--per-round`` more:

``suggest``  :func:`mixlaws.design.suggest_runs` with ``pool=`` the train runs not bought yet
             (``nested``, ``--members`` ensemble members, batch ``--per-round``);
``random``   train runs in random order (RegMix's own design is a random swarm).

After every round both tables are refitted with the same law (``nested``: per-domain mixing
laws at the one scale) and the recommendation is the test mixture with the lowest predicted
loss (the pool is finite, so is the choice: only the test runs' losses are known).  Reported:
the regret ``L_obs(r_hat) - min_r L_obs(r)`` over the 256 test mixtures, averaged over seeds.
Observed losses carry run noise, so regrets of a few thousandths are not distinguishable.

Run:  python benchmarks/design_pool_regmix.py [--seeds 0,1,2] [--rounds 3] [--target mean]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from _data import SHARED
from mixlaws.design import run_flops, suggest_runs
from mixlaws.errors import MixlawsError
from mixlaws.fit import NestedMixingLaw
from mixlaws.runs import read_runs, validate_runs

DATA = os.path.join(SHARED, "regmix")
STRATEGIES = ("suggest", "random")


def _setup(target: str):
    train_path = os.path.join(DATA, "train_1m_runs.csv")
    test_path = os.path.join(DATA, "test_1m_runs.csv")
    if not (os.path.exists(train_path) and os.path.exists(test_path)):
        print(f"skipped: {train_path} or {test_path} not found")
        return None
    warnings.simplefilter("ignore")
    train, test = read_runs(train_path), read_runs(test_path)
    domains = list(test.domains)
    if target != "mean" and target not in domains:
        raise SystemExit(f"--target {target!r}: not a validation domain ({', '.join(domains)})")
    weights = None if target == "mean" else {target: 1.0}
    mix = [f"mix:{s}" for s in train.sources]
    last = test.data.drop_duplicates("run")
    R_test = last[mix].to_numpy(float)
    obs = last[[f"loss:{d}" for d in domains]].to_numpy(float)
    truth = obs.mean(1) if weights is None else obs[:, domains.index(target)]
    return train, R_test, truth, weights, mix


def _regret(df, R_test, truth, weights) -> float:
    try:
        model = NestedMixingLaw(val_weights=weights).fit(validate_runs(df))
        N, D = float(df["params"].iloc[0]), float(df["tokens"].iloc[0])
        pred = model.predict(R_test, N, D)["loss"]
    except MixlawsError:
        return float("nan")
    return float(truth[int(np.argmin(pred))] - truth.min())


def replay(seed: int, args, setup) -> dict[str, list[tuple[float, float, float]]]:
    """``{strategy: [(flops spent, regret, seconds spent choosing), ...]}`` per round."""
    train, R_test, truth, weights, mix = setup
    data = train.data.set_index("run", drop=False)
    ids = list(dict.fromkeys(data["run"]))
    N, D = float(data["params"].iloc[0]), float(data["tokens"].iloc[0])
    cost = run_flops(N, D)
    table = lambda runs: data.loc[runs].reset_index(drop=True)  # noqa: E731
    rng = np.random.default_rng([seed, 21])
    start = [ids[i] for i in rng.choice(len(ids), args.start, replace=False)]
    out = {}
    for strat in STRATEGIES:
        bought = list(start)
        hist = [(cost * len(bought), _regret(table(bought), R_test, truth, weights), 0.0)]
        srng = np.random.default_rng([seed, 22])
        for rnd in range(args.rounds):
            have = set(bought)
            left = [r for r in ids if r not in have]
            t0 = time.perf_counter()
            if strat == "suggest":
                pool = data.loc[left, ["run", "params", "tokens", *mix]].reset_index(drop=True)
                try:
                    s = suggest_runs(validate_runs(table(bought)), N, D,
                                     cost * args.per_round, batch=args.per_round,
                                     laws=("nested",), settings={"val_weights": weights},
                                     n_members=args.members, pool=pool, seed=seed * 100 + rnd)
                    new = list(s.proposals["mixture"])
                except MixlawsError as exc:
                    print(f"  seed {seed} round {rnd}: suggest failed: {exc}")
                    new = []
            else:
                new = list(srng.permutation(left)[:args.per_round])
            dt = time.perf_counter() - t0
            bought += new
            hist.append((cost * len(bought),
                         _regret(table(bought), R_test, truth, weights), dt))
        out[strat] = hist
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--start", type=int, default=32, help="train runs every strategy starts from")
    ap.add_argument("--per-round", type=int, default=16, help="runs bought per round")
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--target", default="mean", help="'mean' of the 13 domains, or one domain")
    args = ap.parse_args()
    setup = _setup(args.target)
    if setup is None:
        return
    truth = setup[2]
    print(f"RegMix 1M: target {args.target!r} over {len(truth)} test mixtures, observed range "
          f"{truth.min():.4f}-{truth.max():.4f}; start {args.start} runs, +{args.per_round} per "
          f"round, {args.rounds} rounds")
    seeds = [int(s) for s in args.seeds.split(",")]
    t0, res = time.time(), {}
    for s in seeds:
        t = time.time()
        res[s] = replay(s, args, setup)
        print(f"seed {s}: final regret " + ", ".join(f"{k} {v[-1][1]:.4g}" for k, v in
                                                   res[s].items()) + f" ({time.time() - t:.0f} s)",
              flush=True)
    print(f"\nregret over the test mixtures of the recommended one, mean over seeds {seeds}:")
    print(f"{'round':>5} {'runs':>5} " + " ".join(f"{st:>10}" for st in STRATEGIES))
    for i in range(args.rounds + 1):
        print(f"{i:>5} {args.start + i * args.per_round:>5} " + " ".join(
            f"{np.nanmean([res[s][st][i][1] for s in seeds]):>10.4g}" for st in STRATEGIES))
    fin = {st: np.nanmean([res[s][st][-1][1] for s in seeds]) for st in STRATEGIES}
    wins = sum(res[s]["suggest"][-1][1] <= res[s]["random"][-1][1] for s in seeds)
    pick = np.mean([h[2] for s in seeds for h in res[s]["suggest"][1:]])
    print("final: " + ", ".join(f"{k} {v:.4g}" for k, v in fin.items())
          + "; ratio suggest/random " + (f"{fin['suggest'] / fin['random']:.3f}" if fin["random"] > 0
                                          else "undefined (random's regret is 0)")
          + "; "
            f"suggest <= random on {wins}/{len(seeds)} seeds; suggest {pick:.1f} s per round; "
            f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
