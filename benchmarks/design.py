"""Sequential replay: does ``suggest`` find the target optimum with less compute than random runs
or a fixed grid?

Each replicate draws a truth whose best mixture moves with model size
(:func:`mixlaws.simulate.size_dependent_truth`: L1 shift of the optimum ≥ 0.3 between 20M and
the 1B target) and starts every strategy from the same handful of runs: 8 mixtures at the
smallest size.  Each round adds the same compute to each strategy (unspent compute carries
over to the next round):

``suggest``  :func:`mixlaws.design.suggest_runs` with the families the refit rule below uses
             (``joint-mix``; ``nested,joint`` with ``--refit auto``; 8 members each) and
             batch 16 (so that it can spend the round's compute on cheap runs: equal
             compute, not equal run counts);
``random``   random mixtures (``sample_mixtures``) at sizes drawn uniformly from the sizes;
``grid``     Ye-style: the same mixtures at every size (first the initial mixtures at the
             next size up, then fresh mixtures at every size, smallest first).

After every round each strategy's table is refitted and the mixture is optimised at the target
by the same rule (``--refit``, default ``joint-mix``): one law family (``joint-mix``, ``joint``,
``nested``), else — while that family cannot predict the target yet — the mixture with the
lowest observed loss at the largest size trained; ``auto`` = ``nested`` if it can predict the
target, else ``joint``, else best observed.  The recommendation is the law optimiser's mixture,
not the best trained one: a law is there to extrapolate to mixtures and scales nobody trained.

Why ``joint-mix``: these truths let the mixture change the size slope,
``A_d e^{s u_d . r} N^-alpha``.  The ``joint`` law's optimum does not depend on ``N`` at all
(``argmin c + k e^{t . r}`` is scale-free), and the ``nested`` law's target mixing law
``c + k e^{t . r}`` cannot represent the sum of two exponentials in ``r`` the truth has at
``N*``; both recommend off the target optimum however well the runs are chosen (that was the
"refit law is the bottleneck" of the last round: ``--compare joint`` prints it).  ``joint-mix``
is the family whose size amplitude depends on the mixture, and the data choose it: ``--law
auto`` (stacking on the table's own backtests over nested, joint, joint-mix; folds truncate +
mixtures) gives it weight 0.92-1.0 on 16-mixture x 3-size tables of seeds 0, 1.  At 25-35 s per
refit ``auto`` is too slow for the replay, hence the family directly, the same for every
strategy.  It is the simulator's own form (with ``q = 0``), so this replay measures the design
under a well-specified law; ``benchmarks/design_pool.py`` replays real runs, where no law is.

Reported: the TRUE regret ``L_true(r_hat) - min_r L_true(r)`` at the target, averaged over
replicates, against cumulative compute, and the true regret of the best trained mixture.
Seeds 0-2 were used while developing ``suggest`` (``--tune``); 100-102 gave the first held-out
run (``--refit auto``), 103-105 and 106-111 the ``--refit joint`` runs; 112-117 the
``--refit joint-mix`` run (the default seeds now).

Run:  python benchmarks/design.py [--quick] [--seeds 112,113,...] [--png design_replay.png]
      python benchmarks/design.py --speed      (time one suggest call, 7 sources, 102 runs)
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd

from mixlaws.design import run_flops, suggest_runs
from mixlaws.errors import MixlawsError
from mixlaws.fit import make_estimator
from mixlaws.optimize import optimize_mixture
from mixlaws.runs import validate_runs
from mixlaws.simulate import sample_mixtures, simulate_sweep, size_dependent_truth, true_optimum

SOURCES = ("web", "code", "books", "papers", "wiki")
DOMAINS = ("web", "code", "prose", "science")
SIZES = (2e7, 5e7, 1e8)
RATIO = 20.0
CHECKPOINTS = (0.2, 0.4, 0.6, 0.8, 1.0)
TARGET = (1e9, 2e10)
N_START = 8
ROUND_FLOPS = 2.4e18   # = the 8 starting mixtures at 50M
STRATEGIES = ("suggest", "random", "grid")


def _run(truth, r, n, seed, name) -> pd.DataFrame:
    df = simulate_sweep(truth, mixtures=np.asarray(r)[None], sizes=[n], tokens_per_param=RATIO,
                        checkpoints=CHECKPOINTS, seed=seed)
    df["run"] = name
    return df


def recommend(df: pd.DataFrame, refit: str = "auto") -> tuple[np.ndarray, str]:
    """The mixture each strategy would train at the target (the same rule for all).

    ``refit="auto"``: the nested law if it can predict the target, else joint; a family name
    (``joint``, ``joint-mix``...): that family only; then, when no law can predict the target,
    the best observed mixture at the largest size.  The law's mixture is its optimiser's
    (``target(N*, D*).loss`` minimised over the simplex), not the best trained mixture: the
    point of a law is to extrapolate to mixtures and scales nobody trained.
    """
    runs = validate_runs(df)
    for law in (("nested", "joint") if refit == "auto" else (refit,)):
        try:
            model = make_estimator(law).fit(runs)
            model.predict(runs.mixtures()[0][:1], *TARGET)
        except MixlawsError:
            continue
        res = optimize_mixture(model.target(*TARGET).loss, runs.sources, n_starts=8)
        return res.mixture, law
    last = df.sort_values("tokens").groupby("run").tail(1)
    top = last[last["params"] == last["params"].max()]
    agg = top[[f"loss:{d}" for d in DOMAINS]].mean(1).to_numpy()
    row = top.iloc[int(np.argmin(agg))]
    return row[[f"mix:{s}" for s in SOURCES]].to_numpy(float), "best observed"


def _oracle(df: pd.DataFrame, truth, l_opt: float) -> float:
    """True target regret of the best mixture trained so far (what a perfect law could pick)."""
    mix = np.unique(df[[f"mix:{s}" for s in SOURCES]].to_numpy(float), axis=0)
    return float(truth.aggregate(mix, *TARGET).min() - l_opt)


def _state(df, truth, l_opt, spent, refit, compare) -> tuple:
    r_hat, rule = recommend(df, refit)
    other = {c: float(truth.aggregate(recommend(df, c)[0], *TARGET) - l_opt) for c in compare}
    return (spent, float(truth.aggregate(r_hat, *TARGET) - l_opt), rule, _oracle(df, truth, l_opt),
            other)


def replay(seed: int, rounds: int, laws=("nested", "joint"), members: int = 8,
           batch: int = 16, refit: str = "auto", compare: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    """Per strategy, ``(cumulative FLOPs, true regret, rule, best-trained regret, {rule: true
    regret} for the ``compare`` rules)`` after the start and each round."""
    truth = size_dependent_truth(SOURCES, DOMAINS, seed=seed)
    r_opt, l_opt = true_optimum(truth, *TARGET)
    start_mix = sample_mixtures(N_START, len(SOURCES), seed=seed)
    start = pd.concat([_run(truth, r, SIZES[0], seed * 100_000 + i, f"start-{i}")
                       for i, r in enumerate(start_mix)], ignore_index=True)
    start_flops = N_START * run_flops(SIZES[0], RATIO * SIZES[0])
    rng = np.random.default_rng([seed, 7])
    fresh = sample_mixtures(200, len(SOURCES), seed=seed + 10_000, include_uniform=False)
    grid_queue = [(r, n) for n in SIZES[1:] for r in start_mix]
    grid_queue += [(r, n) for r in fresh for n in SIZES]
    out: dict[str, list[tuple[float, float, str]]] = {}
    for strat in STRATEGIES:
        df, spent, bank, k = start.copy(), start_flops, 0.0, 0
        hist = [_state(df, truth, l_opt, spent, refit, compare)]
        queue = list(grid_queue)
        for rnd in range(rounds):
            bank += ROUND_FLOPS
            new: list[tuple[np.ndarray, float]] = []
            if strat == "suggest":
                s = suggest_runs(validate_runs(df), *TARGET, bank, sizes=SIZES,
                                 tokens_per_param=RATIO, batch=batch, laws=laws,
                                 n_members=members, seed=seed * 100 + rnd)
                new = [(row[[f"mix:{x}" for x in SOURCES]].to_numpy(float), row["params"])
                       for _, row in s.proposals.iterrows()]
            elif strat == "random":
                while True:
                    n = SIZES[int(rng.integers(len(SIZES)))]
                    c = run_flops(n, RATIO * n)
                    if c > bank - sum(run_flops(m, RATIO * m) for _, m in new):
                        break
                    new.append((sample_mixtures(1, len(SOURCES), seed=int(rng.integers(2**31)),
                                                include_uniform=False)[0], n))
            else:
                while queue and run_flops(queue[0][1], RATIO * queue[0][1]) <= \
                        bank - sum(run_flops(m, RATIO * m) for _, m in new):
                    new.append(queue.pop(0))
            runs_new = []
            for r, n in new:
                k += 1
                runs_new.append(_run(truth, r, n, seed * 100_000 + 1000 + k, f"{strat}-{k}"))
                cost = run_flops(n, RATIO * n)
                bank -= cost
                spent += cost
            if runs_new:
                df = pd.concat([df, *runs_new], ignore_index=True)
            hist.append(_state(df, truth, l_opt, spent, refit, compare))
        out[strat] = hist
    return out


def speed() -> None:
    """Time ``suggest_runs`` (batch 8, defaults) on a 7-source table of 102 runs (34 mixtures x 3 sizes)."""
    src = tuple(f"src{j}" for j in range(7))
    truth = size_dependent_truth(src, DOMAINS, seed=0)
    df = simulate_sweep(truth, n_mixtures=34, sizes=SIZES, tokens_per_param=RATIO,
                        checkpoints=CHECKPOINTS, seed=0)
    runs = validate_runs(df)
    for label in ("first call (includes JAX compilation)", "second call"):
        t, c = time.perf_counter(), time.process_time()
        s = suggest_runs(runs, *TARGET, 5e18, batch=8, seed=0)
        print(f"speed: {label}: {time.perf_counter() - t:.1f} s wall, "
              f"{time.process_time() - c:.1f} s CPU for {len(s.proposals)} runs from a "
              f"{len(src)}-source table of {df['run'].nunique()} runs "
              f"(load average {os.getloadavg()[0]:.1f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 report seeds, 3 rounds (a few minutes)")
    ap.add_argument("--tune", action="store_true", help="the development seeds 0,1,2 instead")
    ap.add_argument("--seeds", help="comma-separated replicate seeds (default 112-117)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 4; 3 with --quick)")
    ap.add_argument("--png", default=None, help="write the regret-vs-compute figure here")
    ap.add_argument("--refit", default="joint-mix", help="refit rule for every strategy: one "
                    "family (default joint-mix) or auto (nested, else joint)")
    ap.add_argument("--laws", default=None, help="families suggest plans with (default: "
                    "nested,joint with --refit auto, else the --refit family)")
    ap.add_argument("--compare", default="", help="also print the final true regret of these "
                    "refit rules on the same tables (comma-separated; diagnostic)")
    ap.add_argument("--members", type=int, default=8, help="ensemble members per family")
    ap.add_argument("--batch", type=int, default=16, help="suggest's runs per round at most")
    ap.add_argument("--speed", action="store_true", help="only time suggest on a 7-source, "
                    "102-run table")
    args = ap.parse_args()
    args.laws = args.laws or ("nested,joint" if args.refit == "auto" else args.refit)
    warnings.simplefilter("ignore")
    if args.speed:
        speed()
        return
    seeds = ([0, 1, 2] if args.tune else [int(s) for s in args.seeds.split(",")] if args.seeds
             else [112, 113, 114] if args.quick else list(range(112, 118)))
    rounds = args.rounds or (3 if args.quick else 4)
    compare = tuple(c for c in args.compare.split(",") if c)
    t0 = time.time()
    res = {}
    for s in seeds:
        t = time.time()
        res[s] = replay(s, rounds, tuple(args.laws.split(",")), args.members, args.batch,
                        args.refit, compare)
        fin = {k: v[-1][1] for k, v in res[s].items()}
        print(f"seed {s}: final true regret " + ", ".join(f"{k} {v:.4g}" for k, v in fin.items())
              + f"  ({time.time() - t:.0f} s)", flush=True)
    print(f"suggest: laws {args.laws}, {args.members} members per law, batch {args.batch}; "
          f"refit rule {args.refit}")
    print(f"\nTRUE regret at the target (N*={TARGET[0]:.3g}, D*={TARGET[1]:.3g}), mean over seeds "
          f"{seeds} (median in brackets), against cumulative compute:")
    print(f"{'round':>5} {'FLOPs':>9} " + " ".join(f"{s:>18}" for s in STRATEGIES))
    mean = {}
    for st in STRATEGIES:
        mean[st] = np.array([[h[1] for h in res[s][st]] for s in seeds])
    flops = np.array([[h[0] for h in res[s]["grid"]] for s in seeds]).mean(0)
    for i in range(rounds + 1):
        print(f"{i:>5} {flops[i]:>9.3g} " + " ".join(
            f"{mean[st][:, i].mean():>9.4g} [{np.median(mean[st][:, i]):>6.3g}]" for st in STRATEGIES))
    print("true target regret of the BEST TRAINED mixture (design quality, free of the refit law):")
    for i in range(rounds + 1):
        print(f"{i:>5} {flops[i]:>9.3g} " + " ".join(
            f"{np.mean([res[s][st][i][3] for s in seeds]):>18.4g}" for st in STRATEGIES))
    for c in compare:
        print(f"final true regret with refit rule {c} on the same tables: " + ", ".join(
            f"{st} {np.mean([res[s][st][-1][4][c] for s in seeds]):.4g}" for st in STRATEGIES))
    spent = {st: np.array([[h[0] for h in res[s][st]] for s in seeds]).mean(0)[-1]
             for st in STRATEGIES}
    print("compute spent (mean): " + ", ".join(f"{k} {v:.4g}" for k, v in spent.items()))
    rules = {st: sorted({h[2] for s in seeds for h in res[s][st]}) for st in STRATEGIES}
    print("refit rule used: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in rules.items()))
    fs, fr, fg = (mean[st][:, -1].mean() for st in STRATEGIES)
    print(f"final mean true regret: suggest {fs:.4g}, random {fr:.4g}, grid {fg:.4g}")
    print(f"ratio suggest/random = {fs / fr:.3f} (goal ≤ 0.5), suggest/grid = {fs / fg:.3f} "
          f"(goal ≤ 1)")
    print(f"seeds where suggest ≤ grid: {sum(mean['suggest'][:, -1] <= mean['grid'][:, -1])}"
          f"/{len(seeds)}; ≤ random/2: {sum(mean['suggest'][:, -1] <= 0.5 * mean['random'][:, -1])}"
          f"/{len(seeds)}; total time {time.time() - t0:.0f} s")
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib.figure import Figure
        fig = Figure(figsize=(5.5, 3.6))
        ax = fig.subplots()
        for st in STRATEGIES:
            x = np.array([[h[0] for h in res[s][st]] for s in seeds]).mean(0)
            ax.plot(x, mean[st].mean(0), "o-", label=st)
        ax.set_title(f"sequential replay (refit {args.refit}), mean over {len(seeds)} simulated "
                     f"sweeps", fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("cumulative training compute (FLOPs)")
        ax.set_ylabel("true regret at 1B target (nats)")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
