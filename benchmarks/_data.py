"""Where the benchmarks find Ye et al. (2024)'s RedPajama runs in ``../shared/data`` (never copied)."""

from __future__ import annotations

import json
import os
import warnings

from mixlaws.runs import RunsTable, read_runs

SHARED = os.environ.get("MIXLAWS_SHARED_DATA") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
"""``../shared/data`` next to the checkout, or ``$MIXLAWS_SHARED_DATA`` (a worktree elsewhere)."""
DATA = os.path.join(SHARED, "ye2024")
TABLE = os.path.join(DATA, "redpajama_runs.csv")
WEIGHTS = os.path.join(DATA, "pile_valid_weights.json")


def load_redpajama() -> tuple[RunsTable, dict[str, float]] | None:
    """The runs table (mixtures renormalised: they are rounded in the source) and the Pile
    validation weights, or ``None`` after printing why the benchmark is skipped. Silences
    warnings: benchmarks print their own figures."""
    if not (os.path.exists(TABLE) and os.path.exists(WEIGHTS)):
        print(f"skipped: {TABLE} or {WEIGHTS} not found")
        return None
    warnings.simplefilter("ignore")
    with open(WEIGHTS) as f:
        return read_runs(TABLE, renormalize=True), json.load(f)
