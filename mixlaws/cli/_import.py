"""``mixlaws import olmix|regmix|long FILES... [--params N --tokens D] -o RUNS.csv``.

Turns another tool's sweep files into the canonical runs table (see
:mod:`mixlaws.runs` importers); the output is checked like any runs table and is
never written over one of the inputs.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_import_parser", "cmd_import"]


def add_import_parser(sub: Any) -> None:
    """Register ``mixlaws import``."""
    from ..runs import IMPORTERS, NAN_POLICIES
    from ._main import parse_quantity

    files = "; ".join(f"{k}: {' '.join(v[1])}" for k, v in IMPORTERS.items())
    p = sub.add_parser("import", help="convert Olmix / RegMix / long tracker exports to a runs table",
                       description=f"Files per format — {files}.")
    p.add_argument("format", choices=sorted(IMPORTERS))
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--params", type=parse_quantity,
                   help="model size N of every run (single-scale swarms: olmix, regmix; long "
                        "without a params column)")
    p.add_argument("--tokens", type=parse_quantity,
                   help="training tokens D of every run (single-scale swarms)")
    p.add_argument("--run-prefix", help="regmix: runs are named PREFIX-<index> (default: the "
                                        "mixture file's name)")
    p.add_argument("--nan-policy", choices=NAN_POLICIES, default="raise",
                   help="missing losses: an error (default) or allowed (omitted when fitting)")
    p.add_argument("-o", "--output", required=True, metavar="RUNS.csv", help="output runs table")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    """Import, validate, write atomically; returns 0."""
    from ..errors import MixlawsError
    from ..runs import import_runs
    from ._main import _say, _write_text

    if args.run_prefix is not None and args.format != "regmix":
        raise MixlawsError(f"--run-prefix applies to regmix files, not {args.format}")
    frame = import_runs(args.format, args.files, params=args.params, tokens=args.tokens,
                        run_prefix=args.run_prefix, nan_policy=args.nan_policy)
    _write_text(frame.to_csv(index=False), args.output)
    n_runs = frame["run"].nunique()
    _say(args, f"mixlaws: wrote {args.output}: {n_runs} run(s), {len(frame)} row(s), "
               f"{sum(c.startswith('mix:') for c in frame.columns)} source(s), "
               f"{sum(c.startswith('loss:') for c in frame.columns)} domain(s)")
    return 0
