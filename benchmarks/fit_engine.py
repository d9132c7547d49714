"""The fit engine's two batch savings, measured side by side on Ye et al.'s tables.

Fits ``NestedMixingLaw()`` (the default ``tie_beta="run"``) three ways in one process each,
fresh: the dense normal equations with the whole batch iterated to the end (the engine before
the two changes), the step stage's coloured sparse Jacobian (:class:`mixlaws.fit.JacobianStructure`),
and that plus finished groups leaving the batch (``COMPACT_MIN``). Prints wall time of a first
fit (compilation included) and a second one, and how far the predicted losses of the fitted
mixtures at 1B / 100k steps move (they may differ within the convergence tolerance).

Run:  python benchmarks/fit_engine.py   (reads ../shared/data/ye2024; skips when absent)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ye2024"
TABLES = ("redpajama_runs.csv", "5mix_runs.csv")
VARIANTS = {"dense, whole batch": (False, False), "sparse, whole batch": (True, False),
            "sparse, finished groups leave": (True, True)}

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
import mixlaws.fit._engine as engine
import mixlaws.fit._stages as stages
from mixlaws.fit import NestedMixingLaw
from mixlaws.runs import read_runs
sparse, compact = json.loads(sys.argv[2])
if not sparse:
    stages.step_structure = lambda *a: None
if not compact:
    engine.COMPACT_MIN = 10**12
runs = read_runs(sys.argv[1], renormalize=True, nan_policy="omit")
times = []
for _ in range(2):
    t = time.perf_counter()
    model = NestedMixingLaw().fit(runs)
    times.append(time.perf_counter() - t)
loss = np.asarray(model.target(805.7e6, 1e5 * 2**20).loss(model.mixtures_))
print(json.dumps({"times": times, "loss": loss.tolist()}))
"""


def main() -> int:
    if not DATA.exists():
        print(f"skipped: {DATA} not present")
        return 0
    for table in TABLES:
        ref = None
        for name, flags in VARIANTS.items():
            out = subprocess.run([sys.executable, "-c", CHILD, str(DATA / table), json.dumps(flags)],
                                 capture_output=True, text=True, check=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            if ref is None:
                ref = res
            diff = max(abs(a / b - 1) for a, b in zip(res["loss"], ref["loss"]))
            first, second = res["times"]
            print(f"{table:20s} {name:32s} first fit {first:6.1f} s, second {second:6.1f} s "
                  f"(x{ref['times'][1] / second:4.1f}); max |rel. change| of predicted "
                  f"losses {diff:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
