"""Command-line interface: thin commands over the library.

The only module that prints or exits.  Results go to stdout as JSON (or to
``-o FILE``); notes and warnings go to stderr; a user error is one line on
stderr and exit code 2 (``--debug`` shows the traceback).

    mixlaws fit RUNS.csv [--law nested|nested-tied|joint|joint-mix] [--val-weights W.json | --implicit K] -o FIT.json
    mixlaws predict FIT.json --params N --tokens D (--mixture 'a=0.3,b=0.7' | --mixtures MIX.csv) [--per-domain]
    mixlaws optimize FIT.json --params N --tokens D [--constraints C.yaml] [--baseline MIX] -o MIX.json
    mixlaws export MIX.json --format json|yaml|megatron|hf|... [-o FILE]
    mixlaws run RUNS.csv --params N --tokens D [options] -o OUTDIR
    mixlaws report FIT.json [--mixture MIX.json | --params N --tokens D] [--posterior FILE] [-o report.html]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
import warnings
from typing import Any, Sequence

import numpy as np

from .._version import __version__
from ..errors import (ChainWarning, ConvergenceWarning, DataNote,
                      ExtrapolationWarning, MixlawsError)
from ..runs._warmup import WARMUP
from ._law import add_law_option, estimator_from_args, fit_summary, is_nested, require_nested
from ._files import Staging, check_outputs, input_paths, write_text
from ._fitted import fitted_runs

__all__ = ["main", "parse_quantity"]

_SUFFIX = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


def parse_quantity(text: str) -> float:
    """Parse ``1e9``, ``805.7M``, ``100B`` or ``2T`` into a positive float."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKMBGT]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number (use e.g. 1e9, 805.7M, 100B)")
    value = float(m.group(1)) * _SUFFIX.get(m.group(2), 1.0)
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


_INPUTS: list[str] = []  # the input files of the command being run (set by main)


def _emit(obj: Any, out: str | None) -> None:
    _write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", out)


def _write_text(text: str, out: str | None) -> None:
    if out:
        write_text(out, text, _INPUTS)  # atomic; never onto an input
    else:
        sys.stdout.write(text)


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


# -- building blocks shared by the commands ------------------------------------------------------

def _fit_model(args: argparse.Namespace, target: tuple[float, float] | None = None):
    """Read the table and fit the estimator the flags name; ``target`` lets ``auto`` leave out
    (before backtesting them) the families that cannot predict there."""
    from ..runs import read_runs, read_val_weights

    runs = read_runs(args.runs, renormalize=args.renormalize,
                     nan_policy=getattr(args, "nan_policy", None) or "raise")
    weights = None
    if args.val_weights:
        w = read_val_weights(args.val_weights, runs.domains)
        weights = {d: float(v) for d, v in zip(runs.domains, w) if v > 0}
    est = estimator_from_args(args, weights)
    if target is not None and getattr(est, "family", None) == "auto":
        return est.fit(runs, target=target), runs
    return est.fit(runs), runs


def _mixture_dict(sources: Sequence[str], r: np.ndarray) -> dict[str, float]:
    return {s: float(v) for s, v in zip(sources, r)}


def _predictions(model, mixtures: np.ndarray, labels: Sequence[str], N: float, D: float,
                 per_domain: bool) -> list[dict[str, Any]]:
    pred = model.predict(mixtures, N, D)
    ext = model.target(N, D).extrapolation(np.atleast_2d(mixtures))
    out = []
    for i, r in enumerate(np.atleast_2d(mixtures)):
        row: dict[str, Any] = {"mixture": _mixture_dict(model.sources_, r), "label": labels[i],
                               "loss": float(pred["loss"][i]), "estimate": "fit",
                               "params": N, "tokens": D, "extrapolation": ext[i].to_dict()}
        if per_domain:
            row["domains"] = _mixture_dict(model.domains_, pred["domains"][i])
        out.append(row)
    return out


def _structural_intervals(model, rows: list[dict[str, Any]], mixtures: np.ndarray, N: float,
                          D: float, level: float, per_law: bool) -> None:
    """Add an ``auto`` fit's intervals (new run: ``lower``/``upper``; law: ``mean_interval``)."""
    at = model.target(N, D)
    lo, hi = at.interval(mixtures, level)
    mlo, mhi = at.interval(mixtures, level, kind="mean")
    per = at.per_law(mixtures) if per_law else {}
    for i, row in enumerate(rows):
        row["estimate"] = "stacked"
        row.update({"level": level, "lower": float(lo[i]), "upper": float(hi[i]),
                    "mean_interval": [float(mlo[i]), float(mhi[i])]})
        if per_law:
            row["per_law"] = {f: {"loss": float(v[i]), "weight": model.law_weights_[f]}
                              for f, v in per.items()}


def _optimize(model, args: argparse.Namespace) -> dict[str, Any]:
    """MIX.json of the optimum at the target (the library builds it; the CLI writes it)."""
    from ..optimize import load_constraints

    _check_progress(args, model)
    if args.n_starts < 1:
        raise MixlawsError(f"--n-starts must be ≥ 1, not {args.n_starts}")
    constraints = load_constraints(args.constraints, model.sources_) if args.constraints else None
    if args.repetition_aware:
        require_nested(model, "--repetition-aware")
    draws = None
    if getattr(args, "objective", None):  # posterior objectives need `mixlaws sample` first
        require_nested(model, "--objective")
        from ._uncertainty import load_posterior

        draws = load_posterior(args.fit, args.params, args.tokens)
    choice = model.target(args.params, args.tokens).optimize(
        constraints=constraints, baseline=args.baseline,
        objective=getattr(args, "objective", None), draws=draws,
        repetition_aware=args.repetition_aware, r_star=args.r_star, n_starts=args.n_starts,
        seed=args.seed, max_extrapolation=args.max_extrapolation)
    return choice.to_dict()


# -- commands -------------------------------------------------------------------------------------

def cmd_fit(args: argparse.Namespace) -> int:
    model, _ = _fit_model(args)
    _say(args, model.fit_report())
    _emit(model.to_dict(), args.output)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..fit import load_model
    from ..runs import parse_mixture, read_mixtures

    model = load_model(args.fit)
    _check_progress(args, model)
    if args.mixture is not None and "=" not in args.mixture and args.mixture.strip():
        from ..optimize._choice import run_mixture   # a run id, as --baseline takes

        mixtures, labels = run_mixture(model, args.mixture, "--mixture")[None], [args.mixture]
    elif args.mixture is not None:
        mixtures, labels = parse_mixture(args.mixture, model.sources_)[None], ["mixture"]
    else:
        mixtures, labels = read_mixtures(args.mixtures, model.sources_)
    rows = _predictions(model, mixtures, labels, args.params, args.tokens, args.per_domain)
    if getattr(model, "family", None) == "auto":    # structural intervals need no sampling
        _structural_intervals(model, rows, mixtures, args.params, args.tokens,
                              0.9 if args.level is None else args.level, args.per_law)
    elif args.level is not None:  # posterior intervals of the nested law (`mixlaws sample`)
        from ._uncertainty import interval_rows, load_posterior

        require_nested(model, "--level")
        draws = load_posterior(args.fit, args.params, args.tokens)
        for row, extra in zip(rows, interval_rows(draws, mixtures, args.level, args.per_domain,
                                                  model.domains_)):
            row.update(extra)
    _emit(rows, args.output)
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    from ..fit import load_model

    model = load_model(args.fit)
    _emit(_optimize(model, args), args.output)
    return 0


def _export_text(mix_path: str, fmt: str, args: argparse.Namespace) -> str:
    from ..export import export
    from ..export import load_doc_lengths, load_mixture, load_paths

    manifest = load_mixture(mix_path)
    paths = load_paths(args.paths) if args.paths else None
    doc_lengths = load_doc_lengths(args.doc_lengths) if args.doc_lengths else None
    return export(manifest, fmt, paths=paths, doc_lengths=doc_lengths)


def cmd_export(args: argparse.Namespace) -> int:
    fmts = _format_list(args.formats)
    if len(fmts) == 1:
        _write_text(_export_text(args.mixture_file, fmts[0], args), args.output)
        return 0
    if not args.output:
        raise MixlawsError(f"--format {args.formats} names {len(fmts)} formats: give -o DIR, "
                           "the directory to write one file per format into")
    texts = {_export_name(f): _export_text(args.mixture_file, f, args) for f in fmts}
    os.makedirs(args.output, exist_ok=True)
    for name, text in texts.items():     # every format rendered before anything is written
        _write_text(text, os.path.join(args.output, name))
    return 0


_EXT = {"json": "json", "yaml": "yaml", "megatron": "txt", "megatron-json": "json", "hf": "json",
        "mosaicml": "yaml", "olmo-core": "yaml", "levanter": "yaml", "nanotron": "yaml"}


def _format_list(value: str) -> list[str]:
    """``--format a,b``: the loader formats named, each known (one-line error otherwise)."""
    from ..export import FORMATS

    fmts = list(dict.fromkeys(f.strip() for f in value.split(",") if f.strip()))
    bad = [f for f in fmts if f not in FORMATS]
    if not fmts or bad:
        raise MixlawsError(f"--format {value!r}: {'unknown format ' + ', '.join(bad) if bad else 'no format given'}; "
                           f"available: {','.join(sorted(FORMATS))}")
    return fmts


def _export_name(fmt: str) -> str:
    """File name of format ``fmt`` in an output directory (``export.<fmt>[.<ext>]``)."""
    ext = _EXT.get(fmt, "txt")
    return f"export.{fmt}" if fmt == ext else f"export.{fmt}.{ext}"


def cmd_run(args: argparse.Namespace) -> int:
    """Fit, optimise, export and report into OUTDIR: all or nothing (see :class:`Staging`)."""
    with Staging(args.output, _INPUTS) as stage:
        summary, report = _run_into(args, stage.path, stage.dir)
        stage.publish(summary["files"] + ["summary.json"])
    _say(args, report)
    _emit(summary, None)
    return 0


def _run_into(args: argparse.Namespace, out, root: str) -> tuple[dict[str, Any], str]:
    from ..progress import progress

    held_out = _held_out(args)          # a bad --held-out-refits fails before the fit, not after

    with progress("fitting step laws"):
        model, runs = _fit_model(args, (args.params, args.tokens))
    model.save(out("fit.json"))
    with progress("fitting size and mixing laws at the target"):
        target = model.target(args.params, args.tokens)
    report = target.fit_report()
    with open(out("fit_report.txt"), "w", encoding="utf-8") as f:
        f.write(report + "\n")
    with progress("optimising the mixture"):
        mix = _optimize(model, args)
    _emit(mix, out("mixture.json"))
    fitted = _predictions(model, model.mixtures_, list(model.mixture_labels_), args.params,
                          args.tokens, True)
    if getattr(model, "family", None) == "auto":
        _structural_intervals(model, fitted, model.mixtures_, args.params, args.tokens, 0.9, True)
    _emit(fitted, out("predictions.json"))
    written = []
    for fmt in _format_list(args.formats):
        name = _export_name(fmt)
        with open(out(name), "w", encoding="utf-8") as f:
            f.write(_export_text(out("mixture.json"), fmt, args))
        written.append(name)
    sections = _suggestion(args, model, runs, out)
    if args.no_report:
        written += ["suggestions.csv"] if sections else []
    else:
        written += _write_html_report(model, target, runs, mix, out("report.html"),
                                      out("figures"), root, sections, **held_out)
    summary = {
        "target": mix["target"], "predicted_loss": mix["predicted_loss"],
        "mixture": mix["mixture"], "baseline": mix["baseline"], "gain": mix["gain"],
        "active_constraints": mix["active_constraints"],
        "fit": fit_summary(model, target),
        "files": ["fit.json", "fit_report.txt", "mixture.json", "predictions.json"] + written,
    }
    _emit(summary, out("summary.json"))
    return summary, report


def _suggestion(args: argparse.Namespace, model: Any, runs: Any, out: Any) -> list[Any]:
    """``--suggest-budget``: the report section (and suggestions.csv in ``run``'s OUTDIR)."""
    if not getattr(args, "suggest_budget", None):
        return []
    from ._suggest import report_suggestion
    from ..design import suggestion_section
    from ..progress import progress

    with progress("planning the next runs (--suggest-budget)"):
        s = report_suggestion(args, model, runs, args.params, args.tokens)

    if out is not None:
        s.proposals.to_csv(out("suggestions.csv"), index=False, lineterminator="\n",
                           float_format="%.17g")
    return [suggestion_section(s)]


def _held_out(args: argparse.Namespace) -> dict[str, Any]:
    """``--held-out-refits K``: build_report's held-out check (0: none; 1 is refused)."""
    k = args.held_out_refits
    if k == 1 or k < 0:
        raise MixlawsError(f"--held-out-refits must be 0 (no held-out check) or ≥ 2, not {k}")
    return {"leave_one_out": False} if k == 0 else {"held_out_refits": k}


def _write_html_report(model, target, runs, mix, path: str, png_dir: str, root: str,
                       sections: Any = (), **held_out: Any) -> list[str]:
    from ..progress import progress
    from ..report import build_report, write_report

    with progress("writing the HTML report"):
        files = write_report(build_report(model, target, runs=runs, mixture=mix,
                                          sections=sections, **held_out), path, png_dir)
    extra = [os.path.join(root, "suggestions.csv")] if sections else []
    return [os.path.relpath(f, root) for f in files + extra]


def cmd_report(args: argparse.Namespace) -> int:
    from ..fit import load_model
    from ..export import load_mixture

    held_out = _held_out(args)
    model = load_model(args.fit)
    mix = None
    if args.mixture:
        load_mixture(args.mixture)  # validates the artifact
        with open(args.mixture, encoding="utf-8") as f:
            mix = json.load(f)
    N = args.params or (mix["target"]["params"] if mix else None)
    D = args.tokens or (mix["target"]["tokens"] if mix else None)
    if (N is None) != (D is None):
        raise MixlawsError("give both --params and --tokens (or --mixture MIX.json), or neither")
    runs = None
    try:  # read as the fit read it (recorded in the artifact)
        runs = fitted_runs(model, args.fit, args.runs, renormalize=args.renormalize,
                           nan_policy=args.nan_policy)
    except MixlawsError as exc:
        if args.runs:
            raise
        warnings.warn(f"no data points in the report: {exc}", DataNote, stacklevel=1)
    draws = _report_posterior(args, model, N, D)
    target = None if N is None else model.target(N, D)
    from ..report import build_report

    out = args.output
    png_dir = os.path.splitext(out)[0] + "_figures" if args.png else None
    sections = []
    if getattr(args, "suggest_budget", None):
        args.params, args.tokens = N, D
        sections = _suggestion(args, model, runs, None)
    report = build_report(model, target, runs=runs, mixture=mix, draws=draws, sections=sections,
                          **held_out)
    for fig in report.figures if png_dir else ():
        os.makedirs(png_dir, exist_ok=True)
        write_text(os.path.join(png_dir, f"{fig.name}.png"), fig.png, _INPUTS)
    write_text(out, report.html, _INPUTS)  # atomic, never onto an input
    _say(args, f"mixlaws: wrote {out}" + (f" and {png_dir}/*.png" if png_dir else ""))
    return 0


def _report_posterior(args: argparse.Namespace, model, N: float | None, D: float | None):
    """Draws for ``mixlaws report``: ``--posterior FILE``, else the posterior the fit names when
    it was sampled at this target (nested family), else None."""
    from ..posterior import load_draws

    if getattr(args, "deprecated_draws", False):
        warnings.warn("`mixlaws report --draws FILE` is deprecated: use --posterior FILE "
                      "(--draws is the number of draws in `mixlaws sample`)", DataNote,
                      stacklevel=1)
    if args.draws_file:
        return load_draws(args.draws_file)
    if N is None or not is_nested(model):
        return None
    with open(args.fit, encoding="utf-8") as f:
        info = json.load(f).get("posterior")
    same = lambda a, b: abs(a - b) <= 1e-6 * max(abs(a), abs(b))  # noqa: E731
    if not info or not (same(info["params"], N) and same(info["tokens"], D)):
        return None
    from ._uncertainty import load_posterior

    return load_posterior(args.fit, N, D)


class _DeprecatedDraws(argparse.Action):
    """``report --draws FILE``: the old spelling of ``--posterior`` (``sample --draws`` counts)."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        namespace.draws_file = values
        namespace.deprecated_draws = True     # warned by cmd_report, where warnings are shown


# -- parser ---------------------------------------------------------------------------------------

def _add_fit_options(p: argparse.ArgumentParser, *, law: bool = True) -> None:
    p.add_argument("runs", help="runs table (CSV or Parquet) in the canonical wide layout")
    agg = p.add_mutually_exclusive_group()
    agg.add_argument("--val-weights", metavar="W.json",
                     help="JSON {validation domain: weight} for explicit aggregation")
    agg.add_argument("--implicit", type=int, metavar="K",
                     help="implicit aggregation of the mean validation loss over K latent domains")
    p.add_argument("--renormalize", action="store_true",
                   help="rescale mixtures whose proportions do not sum to 1 (instead of an error)")
    if law:
        add_law_option(p)
    add_nan_policy(p)
    p.add_argument("--tie-beta", choices=["run", "all", "none"], default=None,
                   help="share the step exponent across a run's domains (default), across "
                        "all runs, or not at all")
    p.add_argument("--tie-alpha", choices=["all", "domain", "none"], default=None,
                   help="share the size exponent across everything (default), per domain, or not")
    p.add_argument("--warmup", type=float, default=WARMUP,
                   help="drop checkpoints below this fraction of a run's last tokens (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of random starts (default 0)")


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=parse_quantity, required=True,
                   help="target model size N* (e.g. 1e9 or 805.7M)")
    unit = p.add_mutually_exclusive_group(required=True)
    unit.add_argument("--tokens", type=parse_quantity,
                      help="target training tokens D* (e.g. 1e11, 100B)")
    unit.add_argument("--steps", type=parse_quantity,
                      help="target training steps, for a table with a step but no tokens column")


def _check_progress(args: argparse.Namespace, model) -> None:
    """The target's unit (--tokens or --steps) must be the fitted table's progress unit."""
    unit = "step" if getattr(args, "steps", None) is not None else \
        "tokens" if getattr(args, "tokens", None) is not None else None
    if unit is None or unit == model.progress_:
        return
    table = os.path.basename(model.source_path_)
    if unit == "tokens":
        raise MixlawsError(f"{table} has a step column but no tokens column, so the "
                           "fit counts training steps: give the target as --steps S (or add a "
                           "tokens column to the table and refit)")
    raise MixlawsError(f"{table} has a tokens column: give the target as --tokens D, "
                       "not --steps")


def _add_held_out_option(p: argparse.ArgumentParser) -> None:
    from ..report import MAX_HELD_OUT_REFITS

    p.add_argument("--held-out-refits", type=int, default=MAX_HELD_OUT_REFITS, metavar="K",
                   help=f"the report's held-out check of the mixing law: at most K refits "
                        f"(leave-one-mixture-out up to K mixtures, K-fold above; 0: no check; "
                        f"default {MAX_HELD_OUT_REFITS})")


def _add_optimize_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--constraints", metavar="C.yaml", help="constraint file (YAML or JSON)")
    p.add_argument("--max-extrapolation", type=float, metavar="X",
                   help="trust region: each share stays within X of the range the fitted mixtures "
                        "sampled (overrides the file's max_extrapolation); the optimum without it "
                        "is reported too")
    p.add_argument("--baseline", metavar="MIX",
                   help="baseline mixture 'a=0.3,b=0.7' or a run id of the table")
    p.add_argument("--n-starts", type=int, default=16, help="optimiser starts (default 16)")
    p.add_argument("--repetition-aware", action="store_true",
                   help="value repeated tokens by Muennighoff et al. 2023's effective data (needs "
                        "--constraints with available_tokens)")
    p.add_argument("--r-star", type=float, default=15.4,
                   help="R* of the effective-data law, repetitions at which value decays by 1/e "
                        "(default 15.4)")


def _add_export_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--paths", metavar="P.yaml", help="mapping source -> data path(s)/prefix")
    p.add_argument("--doc-lengths", metavar="L.yaml",
                   help="mapping source -> mean tokens per document (per-document loaders)")


def _add_global_flags(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("--debug", action="store_true", default=default,
                   help="show tracebacks of errors")
    p.add_argument("--quiet", action="store_true", default=default,
                   help="no report or progress on stderr")
    p.add_argument("--verbose", action="store_true", default=default,
                   help="log each step (INFO) on stderr")


class _SubParser(argparse.ArgumentParser):
    """Every subcommand also takes the global flags (``mixlaws fit X --quiet``)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        _add_global_flags(self, argparse.SUPPRESS)  # SUPPRESS: do not reset the global value


def add_nan_policy(p: argparse.ArgumentParser) -> None:
    """``--nan-policy raise|omit`` for a command that reads a runs table."""
    from ..runs import NAN_POLICIES

    p.add_argument("--nan-policy", choices=NAN_POLICIES, default=None,
                   help="missing loss cells: raise an error (default) or omit those (checkpoint, "
                        "domain) cells from the fits, with a note (default for sample/report: "
                        "what the fit used)")


def build_parser() -> argparse.ArgumentParser:
    from ..export import FORMATS

    parser = argparse.ArgumentParser(prog="mixlaws", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"mixlaws {__version__}")
    _add_global_flags(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_SubParser)

    p = sub.add_parser("fit", help="fit the step laws of a runs table")
    _add_fit_options(p)
    p.add_argument("-o", "--output", help="fit artifact (default: stdout)")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("predict", help="predict losses of mixtures at a target scale")
    p.add_argument("fit", help="fit artifact written by `mixlaws fit`")
    _add_target(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--mixture", help="one mixture 'a=0.3,b=0.7', or the id of a run of the table")
    src.add_argument("--mixtures", metavar="MIX.csv", help="CSV/Parquet with mix:<source> columns")
    p.add_argument("--per-domain", action="store_true", help="add per-domain losses")
    p.add_argument("--level", type=float, metavar="P",
                   help="interval level: with --law auto fits, the structural interval (default "
                        "0.9, always given); else posterior intervals (needs `mixlaws sample`)")
    p.add_argument("--per-law", action="store_true",
                   help="with --law auto fits: each family's prediction and weight")
    p.add_argument("-o", "--output", help="output JSON (default: stdout)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("optimize", help="the predicted-best mixture at a target scale")
    p.add_argument("fit", help="fit artifact written by `mixlaws fit`")
    _add_target(p)
    _add_optimize_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--objective", metavar="OBJ",
                   help="posterior objective mean|quantile:Q|p-better (needs `mixlaws sample`)")
    p.add_argument("-o", "--output", help="mixture artifact (default: stdout)")
    p.set_defaults(func=cmd_optimize)
    from ._import import add_import_parser
    from ._uncertainty import add_sample_parser

    add_sample_parser(sub, _add_target)
    add_import_parser(sub)
    from ._suggest import add_suggest_parser; add_suggest_parser(sub)  # noqa: E702

    p = sub.add_parser("export", help="write a mixture for a data loader")
    p.add_argument("mixture_file", metavar="MIX.json", help="mixture artifact from `optimize`")
    p.add_argument("--format", "--formats", dest="formats", required=True, metavar="FMT[,FMT...]",
                   help=f"loader format, or a comma-separated list (then -o is a directory); "
                        f"available: {','.join(sorted(FORMATS))}")
    _add_export_options(p)
    p.add_argument("-o", "--output", help="output file (default: stdout), or directory for "
                                          "several formats")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("run", help="fit, predict, optimise and export in one go")
    _add_fit_options(p)
    _add_target(p)
    _add_optimize_options(p)
    _add_export_options(p)
    p.add_argument("--formats", "--format", dest="formats", default="json,megatron,hf",
                   help=f"comma-separated export formats (default json,megatron,hf; "
                        f"available: {','.join(sorted(FORMATS))})")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory")
    _add_held_out_option(p)
    p.add_argument("--no-report", action="store_true",
                   help="skip report.html and figures/ (the report's held-out refits are most of "
                        "run's time on large sweeps; `mixlaws report` draws it later)")
    from ._suggest import add_report_suggest_options; add_report_suggest_options(p)  # noqa: E702
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="self-contained HTML report of a fit: the recommended "
                                      "mixture first, then figures and diagnostics")
    p.add_argument("fit", help="fit artifact written by `mixlaws fit`")
    p.add_argument("--params", type=parse_quantity, help="target N* (size and mixing stages)")
    p.add_argument("--tokens", type=parse_quantity, help="target D*")
    p.add_argument("--mixture", metavar="MIX.json", help="mixture artifact (also sets the target)")
    p.add_argument("--runs", help="runs table for the data points (default: the fitted table)")
    p.add_argument("--renormalize", action="store_true", default=None,
                   help="rescale mixtures of --runs (default: as the fit read the table)")
    add_nan_policy(p)
    p.add_argument("--posterior", dest="draws_file", metavar="FILE.posterior.npz",
                   help="posterior draws written by `mixlaws sample` (default: the posterior the "
                        "fit artifact names, when sampled at this target)")
    p.add_argument("--draws", dest="draws_file", action=_DeprecatedDraws, metavar="FILE",
                   help=argparse.SUPPRESS)
    p.add_argument("--png", action="store_true", help="also save the figures as PNG files")
    _add_held_out_option(p)
    p.add_argument("-o", "--output", default="report.html", help="HTML file (default report.html)")
    add_report_suggest_options(p)
    p.set_defaults(func=cmd_report)
    from ._backtest import add_backtest_parser; add_backtest_parser(sub)  # noqa: E702
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    kind = {DataNote: "note", ConvergenceWarning: "warning"}.get(category, "warning")
    print(f"mixlaws: {kind}: {message}", file=sys.stderr)


_REPORTED = (DataNote, ConvergenceWarning, ChainWarning, ExtrapolationWarning)
"""mixlaws' own warning categories: printed as one ``mixlaws: note|warning:`` line each."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mixlaws`` command."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("mixlaws: interrupted", file=sys.stderr)
        return 130
    warnings.showwarning = _show_warning
    from .._config import use_compile_cache
    from ..progress import configure_logging

    use_compile_cache()

    configure_logging(verbose=args.verbose, quiet=args.quiet)
    if getattr(args, "steps", None) is not None:
        args.tokens = args.steps  # the fitted laws' progress axis; checked by _check_progress
    try:
        _INPUTS[:] = input_paths(args)
        if args.command != "run":
            check_outputs([getattr(args, "output", None)], _INPUTS)
        with warnings.catch_warnings():
            # the command line reports its own notes and warnings on stderr, whatever the
            # interpreter's warning filters say (python -W error, pytest's filterwarnings)
            for category in _REPORTED:
                warnings.simplefilter("default", category)
            return int(args.func(args))
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print("mixlaws: interrupted (Ctrl-C); no output was left half-written", file=sys.stderr)
        return 130
    except MixlawsError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"mixlaws: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unreadable/unwritable files named by the user
        if args.debug:
            traceback.print_exc()
        print(f"mixlaws: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
