"""``mixlaws suggest``: which small runs to train next (thin over :func:`mixlaws.design.suggest_runs`).

    mixlaws suggest RUNS.csv --params N* --tokens D* --budget FLOPS
        [--sizes 20M,50M,100M] [--tokens-per-param R] [--batch K]
        [--constraints C.yaml] [--law nested[,joint...]] [--pool POOL.csv] [--seed S]
        [-o NEXT.csv]

Writes one row per proposed run to ``-o`` (CSV: ``params, tokens, mix:<source>..., flops,
value, reason, kind, mixture, start_tokens``) and prints the same proposals as JSON with the
expected regret at the target before and after.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import MixlawsError, ScaleError
from ._main import _add_fit_options, _add_target, _emit, parse_quantity

__all__ = ["add_suggest_parser", "cmd_suggest", "parse_sizes", "add_report_suggest_options",
           "report_suggestion"]


def parse_sizes(text: str) -> list[float]:
    """``"20M,50M,100M"`` -> ``[2e7, 5e7, 1e8]``; a one-line :class:`ScaleError` otherwise."""
    out = []
    for item in text.split(","):
        try:
            out.append(parse_quantity(item))
        except argparse.ArgumentTypeError as exc:
            raise ScaleError(f"--sizes {text!r}: {exc}; give positive model sizes such as "
                             "20M,50M,100M") from None
    return out


def add_suggest_parser(sub: Any) -> None:
    """Register ``mixlaws suggest``."""
    p = sub.add_parser("suggest", help="which small runs to train next, within a compute budget")
    _add_fit_options(p, law=False)            # --law here may list several families
    _add_target(p)
    p.add_argument("--budget", required=True, metavar="FLOPS",
                   help="total training compute of the proposals, sum of 6 N D (e.g. 5e18)")
    p.add_argument("--sizes", metavar="N1,N2,...",
                   help="model sizes the team can train (default: the table's)")
    p.add_argument("--tokens-per-param", type=float, metavar="R",
                   help="proxy training length in tokens per parameter (default: the table's median)")
    p.add_argument("--batch", type=int, default=8, metavar="K", help="at most K runs (default 8)")
    p.add_argument("--constraints", metavar="C.yaml", help="proposed mixtures satisfy these")
    p.add_argument("--law", default="nested",
                   help="law family, or comma-separated families for a structural ensemble "
                        "(default nested)")
    p.add_argument("--members", type=int, default=16, help="ensemble members per family (default 16)")
    p.add_argument("--pool", metavar="POOL.csv",
                   help="propose only runs of this finite pool (CSV: params, tokens, "
                        "mix:<source>..., optional run); rows whose run is in the table are skipped")
    p.add_argument("-o", "--output", metavar="NEXT.csv", help="proposals CSV (default: none)")
    p.set_defaults(func=cmd_suggest)


def cmd_suggest(args: argparse.Namespace) -> int:
    """Read, plan, write the CSV and print the JSON; returns 0."""
    from ..design import suggest_runs
    from ..optimize import load_constraints
    from ..runs import read_runs, read_val_weights

    try:
        budget = parse_quantity(args.budget)
    except argparse.ArgumentTypeError as exc:
        raise ScaleError(f"--budget: {exc}") from None
    if args.output and os.path.exists(args.output) and os.path.samefile(args.output, args.runs):
        raise MixlawsError(f"-o {args.output} is the runs table itself; choose another file")
    if args.tie_beta not in (None, "run"):
        raise MixlawsError("--tie-beta is fixed by the law family; use --law nested-tied for one "
                           "step exponent for every run")
    runs = read_runs(args.runs, renormalize=args.renormalize, nan_policy=args.nan_policy or "raise")
    settings: dict[str, Any] = {"implicit": args.implicit, "tie_alpha": args.tie_alpha or "all",
                                "warmup": args.warmup}
    if args.val_weights:
        w = read_val_weights(args.val_weights, runs.domains)
        settings["val_weights"] = {d: float(v) for d, v in zip(runs.domains, w) if v > 0}
    constraints = load_constraints(args.constraints, runs.sources) if args.constraints else None
    laws = [x.strip() for x in args.law.split(",") if x.strip()]
    if args.members < 2:
        raise MixlawsError(f"--members must be ≥ 2, got {args.members}")
    sizes = parse_sizes(args.sizes) if args.sizes else None
    pool = None
    if args.pool:
        import pandas as pd

        try:
            pool = pd.read_csv(args.pool)
        except (OSError, ValueError) as exc:
            raise MixlawsError(f"--pool {args.pool}: cannot read it as CSV ({exc})") from None
    result = suggest_runs(runs, args.params, args.tokens, budget, sizes=sizes,
                          tokens_per_param=args.tokens_per_param, batch=args.batch,
                          constraints=constraints, laws=laws, settings=settings,
                          n_members=args.members, pool=pool, seed=args.seed)
    if args.output:
        result.proposals.to_csv(args.output, index=False, lineterminator="\n", float_format="%.17g")
    _emit(result.to_dict(), None)
    return 0


def add_report_suggest_options(p: Any) -> None:
    """``--suggest-budget/--suggest-batch/--suggest-sizes`` for ``report`` and ``run``."""
    g = p.add_argument_group("what to train next (off by default: the ensemble of refits takes "
                             "from seconds to a minute)")
    g.add_argument("--suggest-budget", metavar="FLOPS",
                   help="append a 'What to train next' section: runs within this compute "
                        "(sum of 6 N D, e.g. 5e18), as `mixlaws suggest` proposes them")
    g.add_argument("--suggest-batch", type=int, default=8, metavar="K",
                   help="at most K proposed runs (default 8)")
    g.add_argument("--suggest-sizes", metavar="N1,N2,...",
                   help="model sizes the team can train (default: the table's)")


def report_suggestion(args: argparse.Namespace, model: Any, runs: Any, params: float | None,
                      tokens: float | None) -> Any:
    """The :class:`~mixlaws.design.Suggestion` for the report section, or None when not asked.

    Plans with the fitted model's own family and settings (a nested fit: ``nested``,
    ``nested-tied`` or ``nested-sum``).
    """
    if not getattr(args, "suggest_budget", None):
        return None
    from ..design import suggest_runs

    if runs is None or params is None or tokens is None:
        raise MixlawsError("--suggest-budget needs the runs table and a target (--params and "
                           "--tokens, or --mixture)")
    try:
        budget = parse_quantity(args.suggest_budget)
    except argparse.ArgumentTypeError as exc:
        raise ScaleError(f"--suggest-budget: {exc}") from None
    from ..fit import FAMILIES

    law = model.family          # nested, nested-tied or nested-sum, as fitted
    if law not in FAMILIES:     # settings no family fixes (e.g. --tie-beta none): the nearest
        law = "nested-tied" if model.tie_beta == "all" else "nested"
    settings = {k: v for k, v in model.get_params().items()
                if k in ("val_weights", "implicit", "tie_alpha", "warmup", "delta")}
    sizes = parse_sizes(args.suggest_sizes) if args.suggest_sizes else None
    return suggest_runs(runs, float(params), float(tokens), budget, sizes=sizes,
                        batch=args.suggest_batch, laws=(law,), settings=settings,
                        seed=getattr(args, "seed", 0) or 0)
