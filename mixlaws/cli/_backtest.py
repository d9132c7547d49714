"""``mixlaws backtest``: score law families on the user's own sweep (thin over mixlaws.backtest).

    mixlaws backtest RUNS.csv [--law nested,nested-tied,joint]
        [--folds largest-size,truncate,both,mixtures] [--truncate 0.3] [--mixture-folds 5]
        [fit options] [--params N --tokens D] [-o BACKTEST.json] [--figure F.png]

Prints the family x fold table (n, mean/max |rel err|, bias, distances, leave-one-fold-out
coverage of the discrepancy interval) to stdout; the full result as JSON to ``-o``.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import MixlawsError

__all__ = ["add_backtest_parser", "cmd_backtest"]


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_backtest_parser(sub: Any) -> None:
    """Register ``mixlaws backtest``."""
    from ..backtest import DEFAULT_FAMILIES, DEFAULT_FOLDS, FOLDS
    from ._main import _add_fit_options, parse_quantity

    p = sub.add_parser("backtest", help="backtest law families on the sweep (largest size out, "
                                        "late checkpoints out, mixtures out)")
    _add_fit_options(p, law=False)            # --law here is a list of families
    p.add_argument("--law", default=",".join(DEFAULT_FAMILIES),
                   help=f"comma-separated law families (default {','.join(DEFAULT_FAMILIES)})")
    p.add_argument("--folds", default=",".join(DEFAULT_FOLDS),
                   help=f"comma-separated folds among {','.join(FOLDS)} "
                        f"(default {','.join(DEFAULT_FOLDS)})")
    p.add_argument("--truncate", type=float, default=0.3, metavar="F",
                   help="truncate/both folds keep checkpoints up to F x each run's last tokens "
                        "(default 0.3)")
    p.add_argument("--mixture-folds", type=int, default=5, metavar="K",
                   help="k of the leave-mixtures-out folds (default 5)")
    p.add_argument("--level", type=float, default=0.9,
                   help="level of the discrepancy intervals whose coverage is shown (default 0.9)")
    p.add_argument("--refit-step", action="store_true",
                   help="refit the step laws on every mixture fold (slower; default reuses them "
                        "where the family allows)")
    p.add_argument("--params", type=parse_quantity, help="also show each family's discrepancy at "
                   "this target N* (with --tokens)")
    p.add_argument("--tokens", type=parse_quantity, help="target D* (the table's progress unit)")
    p.add_argument("-o", "--output", metavar="BACKTEST.json", help="write the full result as JSON")
    p.add_argument("--figure", metavar="F.png", help="write rel. error vs distance per family")
    p.set_defaults(func=cmd_backtest)


def cmd_backtest(args: argparse.Namespace) -> int:
    """Run the backtest; print the table; write JSON and the figure when asked."""
    from ..backtest import backtest
    from ..runs import read_runs, read_val_weights
    from ._main import _emit

    families, folds = _names(args.law), _names(args.folds)
    if (args.params is None) != (args.tokens is None):
        raise MixlawsError("give both --params and --tokens for the target, or neither")
    if not families or not folds:
        raise MixlawsError("--law and --folds need at least one name each")
    if args.tie_beta not in (None, "run"):
        raise MixlawsError("backtest: the step exponent's tying is part of the law family; "
                           "choose it with --law (nested: per run, nested-tied: shared)")
    runs = read_runs(args.runs, renormalize=args.renormalize)
    settings: dict[str, Any] = {"warmup": args.warmup, "seed": args.seed}
    if args.val_weights:
        w = read_val_weights(args.val_weights, runs.domains)
        settings["val_weights"] = {d: float(v) for d, v in zip(runs.domains, w) if v > 0}
    if args.implicit is not None or args.tie_alpha not in (None, "all"):
        bad = [f for f in families if not f.startswith("nested")]
        if bad:
            raise MixlawsError(f"--implicit/--tie-alpha apply to the nested families only; "
                               f"drop them or remove {', '.join(bad)} from --law")
        settings.update({"implicit": args.implicit, "tie_alpha": args.tie_alpha or "all"})
    result = backtest(runs, families, folds, truncate=args.truncate,
                      n_mixture_folds=args.mixture_folds, seed=args.seed, settings=settings,
                      reuse_step=not args.refit_step, level=args.level)
    print(result.summary())  # noqa: T201  (the command's output)
    if args.params is not None:
        t = result.at_target(runs, args.params, args.tokens)
        lines = [f"at the target params={args.params:.6g}, tokens={args.tokens:.6g}: "
                 f"dN = {t['dN'].iloc[0]:.2f}, dD = {t['dD'].iloc[0]:.2f}"]
        lines += [f"  {r.family:<12} bias {100 * r.bias:+.2f} %, sd {100 * r.sd:.2f} % of "
                  f"log(obs/pred); {round(100 * result.level)} % interval = prediction x "
                  f"[{r.lower:.4f}, {r.upper:.4f}]" for r in t.itertuples()]
        print("\n".join(lines))  # noqa: T201
    if args.output:
        _emit(result.to_dict(), args.output)
    if args.figure:
        result.figure().savefig(args.figure, dpi=110)
    return 0
