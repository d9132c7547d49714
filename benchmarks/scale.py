"""How `mixlaws fit`, `run` and `sample` grow with the size of the sweep (issue #12).

Shapes (sources x domains x runs x checkpoints; simulated ones from :mod:`mixlaws.simulate`):

=============  =========================================================================
``redpajama``  Ye et al. (2024) RedPajama: 7 x 22 x 103 x ~11, 4 sizes (``../shared/data``)
``ye-sim``     7 x 22 x 100 x 11, 4 sizes (25 mixtures), simulated
``mid``        24 x 50 x 300 x 10, 4 sizes (75 mixtures)
``swarm``      64 x 110 x 512, one scale, final losses only (Olmix / RegMix shape)
``xl``         128 x 200 x 1000, one scale, final losses only
=============  =========================================================================

Every command runs in its own process (``python -m mixlaws.cli``; wall time includes the
import and JAX tracing).  ``--cache cold`` (default) turns the persistent compilation cache
off (``MIXLAWS_COMPILE_CACHE=off``): every XLA program is compiled, as on a user's first
command; ``--cache warm`` gives the children a private cache and times each command's second
run, as a user's later commands on a table of that shape.  Peak memory is that process's
maximum resident set (``os.wait4``). ``run`` writes the HTML report. Prints a Markdown table,
the growth of each command's time with the number of loss cells (log-log slope between
consecutive shapes), and saves a log-log figure ``benchmarks/scale.png`` and the figures as
``benchmarks/scale.json``.

Run:  python benchmarks/scale.py [--shapes ye-sim,swarm] [--skip sample] [--device cpu|gpu]
                                 [--cache cold|warm] [--threads N] [--timeout 600] [--profile run]
``--profile CMD`` runs that command under cProfile and prints the top functions.
``--threads N`` caps the children's threads (``MIXLAWS_THREADS``; default one per core): run
once with ``--threads 1`` and once without to see what the threaded fits gain.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


@dataclass(frozen=True)
class Shape:
    name: str
    sources: int
    domains: int
    mixtures: int
    sizes: tuple[float, ...]
    checkpoints: int
    tokens_per_param: float
    n_runs: int = 0          # a real table's run count (else mixtures x sizes)

    @property
    def runs(self) -> int:
        return self.n_runs or self.mixtures * len(self.sizes)

    @property
    def cells(self) -> int:
        return self.runs * self.checkpoints * self.domains

    @property
    def label(self) -> str:
        return f"{self.sources}x{self.domains}x{self.runs}x{self.checkpoints}"


SIZES4 = (2e7, 5e7, 1e8, 2e8)
SHAPES = {
    "redpajama": Shape("redpajama", 7, 22, 26, SIZES4, 11, 20.0),   # overwritten by the real table
    "ye-sim": Shape("ye-sim", 7, 22, 25, SIZES4, 11, 20.0),
    "mid": Shape("mid", 24, 50, 75, SIZES4, 10, 20.0),
    "swarm": Shape("swarm", 64, 110, 512, (1e6,), 1, 1000.0),
    "xl": Shape("xl", 128, 200, 1000, (1e6,), 1, 1000.0),
}
COMMANDS = ("fit", "run", "sample")


def simulate(shape: Shape, path: str) -> tuple[float, float]:
    """Write the shape's simulated table to ``path``; return a target (params, tokens)."""
    from mixlaws.simulate import random_truth, simulate_sweep

    sources = [f"src{j:03d}" for j in range(shape.sources)]
    domains = [f"dom{i:03d}" for i in range(shape.domains)]
    truth = random_truth(sources, domains, seed=1)
    ck = np.linspace(1.0 / shape.checkpoints, 1.0, shape.checkpoints)
    table = simulate_sweep(truth, n_mixtures=shape.mixtures, sizes=shape.sizes,
                           tokens_per_param=shape.tokens_per_param, checkpoints=ck, seed=2)
    table.to_csv(path, index=False)
    if len(shape.sizes) == 1:       # single scale: the target is the sweep's own scale
        return shape.sizes[0], shape.tokens_per_param * shape.sizes[0]
    return 1e9, 2e10


def child(argv: list[str], env: dict[str, str], timeout: float,
          profile: str | None = None) -> tuple[float, float, int, str]:
    """Run ``mixlaws ARGV`` in a fresh process: (seconds, peak RSS in GB, exit code, stderr)."""
    pre = [sys.executable] + (["-m", "cProfile", "-o", profile] if profile else []) \
        + ["-m", "mixlaws.cli"]
    t0 = time.perf_counter()
    err = tempfile.TemporaryFile(mode="w+")
    p = subprocess.Popen(pre + argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            p.kill()
            pid, status, usage = os.wait4(p.pid, 0)
            err.seek(0)
            return timeout, usage.ru_maxrss / 2**20, -9, err.read()[-400:]
        time.sleep(0.05)
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    return dt, usage.ru_maxrss / 2**20, p.returncode, err.read()[-400:]


def print_profile(path: str, n: int = 25) -> None:
    st = pstats.Stats(path)
    st.sort_stats("cumulative").print_stats(n)
    st.sort_stats("tottime").print_stats(n)


def measure(shape: Shape, args: argparse.Namespace, tmp: str, env: dict[str, str]) -> dict:
    table = os.path.join(tmp, f"{shape.name}.csv")
    extra: list[str] = []
    if shape.name == "redpajama":
        import _data

        if not os.path.exists(_data.TABLE):
            print(f"  skipped: {_data.TABLE} not found")
            return {}
        table = _data.TABLE
        N, D = 805.7e6, 100_000 * 1_048_576.0
        extra = ["--renormalize", "--val-weights", _data.WEIGHTS]
    else:
        N, D = simulate(shape, table)
    target = ["--params", f"{N:g}", "--tokens", f"{D:g}"]
    extra += ["--law", args.law]
    fit = os.path.join(tmp, f"{shape.name}.fit.json")
    row = {"shape": shape.name, "label": shape.label, "cells": shape.cells, "cache": args.cache}
    plan = {"fit": ["--quiet", "fit", table, *extra, "-o", fit],
            "run": ["--quiet", "run", table, *extra, *target, "-o", os.path.join(tmp, shape.name)],
            "sample": ["--quiet", "sample", fit, *target]}
    for cmd in COMMANDS:
        if cmd in args.skip or (cmd == "sample" and "fit" in args.skip):
            continue
        if args.cache == "warm":              # fill the cache: the timed run is the second
            child(plan[cmd], env, args.timeout)
        prof = os.path.join(tmp, f"{shape.name}.{cmd}.prof") if cmd == args.profile else None
        dt, gb, rc, err = child(plan[cmd], env, args.timeout, prof)
        row[cmd] = {"seconds": dt, "peak_gb": gb, "exit": rc}
        state = "ok" if rc == 0 else ("timeout" if rc == -9 else f"exit {rc}: {err.strip()[-300:]}")
        print(f"  {cmd:<6} {dt:8.1f} s  {gb:6.2f} GB  {state}", flush=True)
        if prof and os.path.exists(prof):
            print_profile(prof)
    return row


def growth(rows: list[dict]) -> list[str]:
    """Log-log slope of each command's time against the number of loss cells."""
    out = []
    for cmd in COMMANDS:
        pts = sorted((r["cells"], r[cmd]["seconds"]) for r in rows
                     if cmd in r and r[cmd]["exit"] == 0 and r["shape"] != "redpajama")
        if len(pts) >= 2:
            c, s = np.log(np.array(pts)).T
            slope = np.polyfit(c, s, 1)[0]
            out.append(f"{cmd}: time ~ cells^{slope:.2f} over {len(pts)} simulated shapes")
    return out


def table(rows: list[dict]) -> str:
    def cell(r: dict, cmd: str) -> str:
        if cmd not in r:
            return "—"
        m = r[cmd]
        t = f">{m['seconds']:.0f}" if m["exit"] == -9 else f"{m['seconds']:.1f}"
        if m["exit"] not in (0, -9):
            t += " (failed)"
        return f"{t} s / {m['peak_gb']:.2f} GB"

    lines = ["| shape | sources×domains×runs×ckpts | loss cells | fit | run (with report) | sample |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['shape']} | {r['label']} | {r['cells']:,} | {cell(r, 'fit')} | "
                     f"{cell(r, 'run')} | {cell(r, 'sample')} |")
    return "\n".join(lines)


def figure(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for cmd, mk in zip(COMMANDS, "osd"):
        pts = sorted((r["cells"], r[cmd]["seconds"], r["shape"]) for r in rows
                     if cmd in r and r[cmd]["exit"] == 0)
        if pts:
            ax.loglog([p[0] for p in pts], [p[1] for p in pts], marker=mk, label=f"mixlaws {cmd}")
    for r in rows:
        ax.annotate(r["shape"], (r["cells"], ax.get_ylim()[0]), fontsize=7, rotation=90,
                    va="bottom", ha="right")
    ax.axhline(60, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("loss cells (runs × checkpoints × domains)")
    ax.set_ylabel("wall time [s] (own process, incl. import)")
    ax.legend()
    ax.grid(True, which="both", lw=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default=",".join(SHAPES), help=f"subset of {','.join(SHAPES)}")
    ap.add_argument("--skip", default="", help="commands to skip, e.g. sample or fit,sample")
    ap.add_argument("--device", default=None, help="JAX platform for the children (cpu, gpu, cuda)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per command")
    ap.add_argument("--law", default="nested", help="law family of fit/run (sample needs a nested "
                    "one; the default of the CLI, auto, adds a backtest: about 10x a nested fit)")
    ap.add_argument("--cache", choices=("cold", "warm"), default="cold",
                    help="compilation cache off (cold, default: a first run) or filled by an "
                         "untimed run of each command first (warm)")
    ap.add_argument("--threads", type=int, default=None,
                    help="MIXLAWS_THREADS for the children (default: one thread per core)")
    ap.add_argument("--profile", choices=COMMANDS, help="profile this command (cProfile)")
    ap.add_argument("--no-figure", action="store_true", help="do not write scale.png/scale.json")
    args = ap.parse_args(argv)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    names = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SHAPES))
    if unknown:
        ap.error(f"unknown shapes {unknown}; known: {list(SHAPES)}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(HERE), env.get("PYTHONPATH", "")])
    if args.device:
        env["JAX_PLATFORMS"] = args.device
    if args.threads is not None:
        env["MIXLAWS_THREADS"] = str(max(1, args.threads))
    import jax

    print(f"jax {jax.__version__}; children on JAX_PLATFORMS={env.get('JAX_PLATFORMS', '(default)')}; "
          f"{os.cpu_count()} cores; compilation cache {args.cache}; threads "
          f"{env.get('MIXLAWS_THREADS', 'one per core')}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env["MIXLAWS_COMPILE_CACHE"] = ("off" if args.cache == "cold"
                                        else os.path.join(tmp, "jax-cache"))
        for name in names:
            shape = SHAPES[name]
            if name == "redpajama":
                import pandas as pd
                import _data

                if os.path.exists(_data.TABLE):
                    d = pd.read_csv(_data.TABLE)
                    shape = Shape(name, sum(c.startswith("mix:") for c in d.columns),
                                  sum(c.startswith("loss:") for c in d.columns),
                                  d["run"].nunique() // d["params"].nunique(),
                                  tuple(sorted(d["params"].unique())),
                                  round(len(d) / d["run"].nunique()), 0.0,
                                  d["run"].nunique())
            print(f"[{name}] {shape.label} ({shape.cells:,} loss cells)", flush=True)
            row = measure(shape, args, tmp, env)
            if row:
                rows.append(row)
    print()
    print(table(rows))
    for line in growth(rows):
        print(line)
    if not args.no_figure and rows:
        figure(rows, os.path.join(HERE, "scale.png"))
        with open(os.path.join(HERE, "scale.json"), "w") as f:
            json.dump(rows, f, indent=1)
        print(f"wrote {os.path.join(HERE, 'scale.png')} and scale.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
