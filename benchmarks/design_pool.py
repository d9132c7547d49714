"""Replay on real runs: Ye et al. (2024)'s RedPajama sweep as a finite pool of purchasable runs.

The 302.3M runs (20 mixtures, 3.1e10 tokens) are the *target*: never purchasable, their
observed aggregate Pile loss (Pile validation weights) is the truth.  Every other run (18.9M,
85.1M, 201.5M) is in the pool at cost ``6 N D`` (its full length; its checkpoints come with
it).  Each replicate starts every strategy from the same table: ``N_START`` of the 20 full
mixtures at 18.9M and 85.1M (enough for the nested law to predict), drawn by the seed.  Each
round adds the same compute to each strategy (unspent compute carries over):

``suggest``  :func:`mixlaws.design.suggest_runs` with ``pool=`` the runs not bought yet
             (``nested``, 8 members, batch 24: with batch 8 it buys 8 cheap 18.9M runs and
             spends a fifth of the round, not equal compute);
``random``   random pool runs, bought in random order until the next one does not fit;
``grid``     the starting mixtures at 201.5M, then fresh full mixtures at every size
             (smallest first), in random order.

After every round each table is refitted with the same law (``nested``, Pile weights) and the
mixture recommended is the one of the 20 target mixtures with the lowest predicted loss at
the target (the pool is finite, so is the choice: only their losses are known).  Reported:
the regret ``L_obs(r_hat) - min_r L_obs(r)`` at 302.3M, averaged over replicates.  The
observed losses carry run noise, so regrets below ~0.003 nats are not distinguishable.

Run:  python benchmarks/design_pool.py [--seeds 0,1,2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from _data import load_redpajama
from mixlaws.design import run_flops, suggest_runs
from mixlaws.errors import MixlawsError
from mixlaws.fit import NestedMixingLaw
from mixlaws.runs import validate_runs

TARGET_N = 302_300_000
N_START = 10
ROUND_FLOPS = 1.5e20    # ~ 3 runs at 201.5M + 1 at 85.1M: ~12 % of the pool per round (the start is 1.8e20)
STRATEGIES = ("suggest", "random", "grid")


def _setup():
    loaded = load_redpajama()
    if loaded is None:
        return None
    runs, w = loaded
    data = runs.data
    mix = [f"mix:{s}" for s in runs.sources]
    last = data.sort_values("tokens").groupby("run", sort=False).tail(1).set_index("run")
    key = last[mix].round(4).astype(str).agg(",".join, axis=1)
    last["key"] = key
    cols = runs.loss_columns
    ww = np.array([w.get(c.removeprefix("loss:"), 0.0) for c in cols])
    ww = ww / ww.sum()
    tgt = last[last["params"] == TARGET_N]
    truth = pd.Series(tgt[cols].to_numpy(float) @ ww, index=tgt["key"].to_numpy())
    D_target = float(tgt["tokens"].max())
    return runs, w, data, last, truth, D_target, mix


def _recommend(df, runs, w, truth, last, D_target, mix) -> float:
    table = validate_runs(df)
    try:
        model = NestedMixingLaw(val_weights=w).fit(table)
        R = last.drop_duplicates("key").set_index("key").loc[truth.index, mix].to_numpy(float)
        pred = model.predict(R, TARGET_N, D_target)["loss"]
    except MixlawsError:
        return float("nan")
    return float(truth.iloc[int(np.argmin(pred))] - truth.min())


def replay(seed: int, rounds: int, members: int, batch: int, setup) -> dict[str, list]:
    runs, w, data, last, truth, D_target, mix = setup
    rng = np.random.default_rng([seed, 11])
    full = list(truth.index)
    start_keys = [full[i] for i in rng.choice(len(full), N_START, replace=False)]
    cand = last[last["params"] != TARGET_N]
    start_ids = cand.index[cand["key"].isin(start_keys) & cand["params"].isin([18_900_000, 85_100_000])]
    cost = {r: run_flops(cand.at[r, "params"], cand.at[r, "tokens"]) for r in cand.index}
    fresh = [k for k in full if k not in start_keys]
    rng.shuffle(fresh)
    grid_order = list(cand.index[cand["key"].isin(start_keys) & (cand["params"] == 201_500_000)])
    for k in fresh:
        grid_order += list(cand[cand["key"] == k].sort_values("params").index)
    out = {}
    for strat in STRATEGIES:
        bought = list(start_ids)
        spent = sum(cost[r] for r in bought)
        bank = 0.0
        df = data[data["run"].isin(bought)]
        hist = [(spent, _recommend(df, runs, w, truth, last, D_target, mix))]
        srng = np.random.default_rng([seed, 12])
        queue = list(grid_order)
        for rnd in range(rounds):
            bank += ROUND_FLOPS
            left = [r for r in cand.index if r not in bought]
            new: list[str] = []
            if strat == "suggest":
                pool = cand.loc[left, ["params", "tokens", *mix]].reset_index()
                try:
                    s = suggest_runs(validate_runs(df), TARGET_N, D_target, bank, batch=batch,
                                     laws=("nested",), settings={"val_weights": w},
                                     n_members=members, pool=pool, seed=seed * 100 + rnd)
                    new = list(s.proposals["mixture"])
                except MixlawsError as exc:
                    print(f"  seed {seed} round {rnd}: suggest failed: {exc}")
            elif strat == "random":
                order = list(srng.permutation(left))    # random runs until one does not fit
                while order and cost[order[0]] <= bank - sum(cost[x] for x in new):
                    new.append(order.pop(0))
            else:
                while queue and cost[queue[0]] <= bank - sum(cost[x] for x in new):
                    new.append(queue.pop(0))
                queue = [q for q in queue if q not in new]
            for r in new:
                bank -= cost[r]
                spent += cost[r]
            bought += new
            df = data[data["run"].isin(bought)]
            hist.append((spent, _recommend(df, runs, w, truth, last, D_target, mix)))
        out[strat] = hist
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--batch", type=int, default=24)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    setup = _setup()
    if setup is None:
        return
    truth = setup[4]
    print(f"target 302.3M: {len(truth)} mixtures, observed loss range "
          f"{truth.min():.4f}-{truth.max():.4f} (spread {truth.max() - truth.min():.4f} nats)")
    seeds = [int(s) for s in args.seeds.split(",")]
    t0, res = time.time(), {}
    for s in seeds:
        t = time.time()
        res[s] = replay(s, args.rounds, args.members, args.batch, setup)
        print(f"seed {s}: final regret " + ", ".join(f"{k} {v[-1][1]:.4g}" for k, v in
                                                   res[s].items()) + f" ({time.time() - t:.0f} s)",
              flush=True)
    print(f"\nregret at 302.3M of the recommended target mixture, mean over seeds {seeds}:")
    print(f"{'round':>5} " + " ".join(f"{st:>20}" for st in STRATEGIES))
    for i in range(args.rounds + 1):
        print(f"{i:>5} " + " ".join(
            f"{np.nanmean([res[s][st][i][1] for s in seeds]):>9.4g} @{np.mean([res[s][st][i][0] for s in seeds]):>8.3g}"
            for st in STRATEGIES))
    fin = {st: np.nanmean([res[s][st][-1][1] for s in seeds]) for st in STRATEGIES}
    print("final: " + ", ".join(f"{k} {v:.4g}" for k, v in fin.items())
          + f"; ratio suggest/random {fin['suggest'] / max(fin['random'], 1e-12):.3f}, "
            f"suggest/grid {fin['suggest'] / max(fin['grid'], 1e-12):.3f}; "
            f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
