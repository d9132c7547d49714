"""Command-line interface: thin commands over the library.

The only module that prints or exits.  Results go to stdout as JSON (or to
``-o FILE``); notes and warnings go to stderr; a user error is one line on
stderr and exit code 2 (``--debug`` shows the traceback).

    mixlaws fit RUNS.csv [--val-weights W.json | --implicit K] -o FIT.json
    mixlaws predict FIT.json --params N --tokens D (--mixture 'a=0.3,b=0.7' | --mixtures MIX.csv) [--per-domain]
    mixlaws optimize FIT.json --params N --tokens D [--constraints C.yaml] [--baseline MIX] -o MIX.json
    mixlaws export MIX.json --format json|yaml|megatron|hf|... [-o FILE]
    mixlaws run RUNS.csv --params N --tokens D [options] -o OUTDIR
    mixlaws report FIT.json [--mixture MIX.json | --params N --tokens D] [-o report.html]
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
from ..errors import ConvergenceWarning, DataNote, MixlawsError
from ..runs._warmup import WARMUP

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


def _emit(obj: Any, out: str | None) -> None:
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def _write_text(text: str, out: str | None) -> None:
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


# -- building blocks shared by the commands ------------------------------------------------------

def _fit_model(args: argparse.Namespace):
    from ..fit import NestedMixingLaw
    from ..runs import read_runs, read_val_weights

    runs = read_runs(args.runs, renormalize=args.renormalize)
    weights = None
    if args.val_weights:
        w = read_val_weights(args.val_weights, runs.domains)
        weights = {d: float(v) for d, v in zip(runs.domains, w) if v > 0}
    model = NestedMixingLaw(val_weights=weights, implicit=args.implicit, tie_beta=args.tie_beta,
                            tie_alpha=args.tie_alpha, warmup=args.warmup, seed=args.seed)
    return model.fit(runs), runs


def _mixture_dict(sources: Sequence[str], r: np.ndarray) -> dict[str, float]:
    return {s: float(v) for s, v in zip(sources, r)}


def _baseline(model, text: str | None) -> np.ndarray | None:
    """A baseline given as 'a=0.3,b=0.7' or as the id of a run in the fitted table."""
    from ..runs import parse_mixture

    if not text:
        return None
    runs = model.runs_["run"]
    if "=" not in text:
        if text not in runs:
            raise MixlawsError(f"--baseline {text!r} is neither a mixture 'source=share,...' nor a "
                               f"run of the table (e.g. {', '.join(runs[:3])})")
        return model.mixtures_[model.runs_["mixture"][runs.index(text)]]
    return parse_mixture(text, model.sources_)


def _predictions(model, mixtures: np.ndarray, labels: Sequence[str], N: float, D: float,
                 per_domain: bool) -> list[dict[str, Any]]:
    pred = model.predict(mixtures, N, D)
    out = []
    for i, r in enumerate(np.atleast_2d(mixtures)):
        row: dict[str, Any] = {"mixture": _mixture_dict(model.sources_, r), "label": labels[i],
                               "loss": float(pred["loss"][i]), "params": N, "tokens": D}
        if per_domain:
            row["domains"] = _mixture_dict(model.domains_, pred["domains"][i])
        out.append(row)
    return out


def _optimize(model, args: argparse.Namespace) -> dict[str, Any]:
    from ..optimize import load_constraints
    from ..optimize import optimize_mixture

    target = model.target(args.params, args.tokens)
    constraints = load_constraints(args.constraints, model.sources_) if args.constraints else None
    baseline = _baseline(model, args.baseline)
    objective, dlosses, rep = target.loss, target.domain_losses, None
    if args.repetition_aware:
        from ..optimize import repetition_aware

        rep = repetition_aware(model, args.params, args.tokens, constraints, r_star=args.r_star)
        objective, dlosses = rep.loss, rep.domain_losses
    draws = None
    if getattr(args, "objective", None):  # posterior objectives (issue 3)
        from ._uncertainty import load_posterior
        from ..optimize import risk_objective

        draws = load_posterior(args.fit, args.params, args.tokens)
        objective = risk_objective(draws, args.objective, baseline)
    result = optimize_mixture(objective, model.sources_, constraints=constraints,
                              total_tokens=args.tokens if model.progress_ == "tokens" else None,
                              baseline=baseline, domain_losses=dlosses,
                              domains=model.domains_, n_starts=args.n_starts, seed=args.seed)
    d = {"kind": "mixlaws.mixture", "mixlaws_version": __version__,
         "target": {"params": args.params, "tokens": args.tokens, "progress": model.progress_}}
    d.update(result.to_dict())
    d["repetition_aware"] = None if rep is None else rep.summary(result.mixture)
    if draws is not None:
        from ._uncertainty import risk_report

        d["uncertainty"] = risk_report(draws, result.mixture, baseline, args.objective)
    return d


# -- commands -------------------------------------------------------------------------------------

def cmd_fit(args: argparse.Namespace) -> int:
    from ..fit import model_to_dict
    from ..report import fit_report

    model, _ = _fit_model(args)
    _say(args, fit_report(model))
    _emit(model_to_dict(model), args.output)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..fit import load_model
    from ..runs import parse_mixture, read_mixtures

    model = load_model(args.fit)
    if args.mixture:
        mixtures, labels = parse_mixture(args.mixture, model.sources_)[None], ["mixture"]
    else:
        mixtures, labels = read_mixtures(args.mixtures, model.sources_)
    rows = _predictions(model, mixtures, labels, args.params, args.tokens, args.per_domain)
    if args.level is not None:  # posterior intervals (issue 3)
        from ._uncertainty import interval_rows, load_posterior

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
    _write_text(_export_text(args.mixture_file, args.format, args), args.output)
    return 0


_EXT = {"json": "json", "yaml": "yaml", "megatron": "txt", "megatron-json": "json", "hf": "json",
        "mosaicml": "yaml", "olmo-core": "yaml", "levanter": "yaml", "nanotron": "yaml"}


def cmd_run(args: argparse.Namespace) -> int:
    from ..fit import model_to_dict
    from ..report import fit_report

    os.makedirs(args.output, exist_ok=True)
    out = lambda name: os.path.join(args.output, name)  # noqa: E731
    from ..progress import progress

    with progress("fitting step laws"):
        model, runs = _fit_model(args)
    with open(out("fit.json"), "w", encoding="utf-8") as f:
        json.dump(model_to_dict(model), f, indent=1, allow_nan=False)
    with progress("fitting size and mixing laws at the target"):
        target = model.target(args.params, args.tokens)
    report = fit_report(model, target)
    with open(out("fit_report.txt"), "w", encoding="utf-8") as f:
        f.write(report + "\n")
    with progress("optimising the mixture"):
        mix = _optimize(model, args)
    _emit(mix, out("mixture.json"))
    fitted = _predictions(model, model.mixtures_, list(model.mixture_labels_), args.params,
                          args.tokens, True)
    _emit(fitted, out("predictions.json"))
    written = []
    for fmt in args.formats.split(","):
        fmt = fmt.strip()
        if not fmt:
            continue
        ext = _EXT.get(fmt, "txt")
        name = f"export.{fmt}" if fmt == ext else f"export.{fmt}.{ext}"
        with open(out(name), "w", encoding="utf-8") as f:
            f.write(_export_text(out("mixture.json"), fmt, args))
        written.append(name)
    written += _write_html_report(model, target, runs, mix, out("report.html"), out("figures"),
                                  args.output)
    summary = {
        "target": mix["target"], "predicted_loss": mix["predicted_loss"],
        "mixture": mix["mixture"], "baseline": mix["baseline"], "gain": mix["gain"],
        "active_constraints": mix["active_constraints"],
        "fit": {"step_rmse": None if model.step_ is None else model.step_.rmse,
                "size_rmse": None if target.size is None else target.size.rmse,
                "mixing_rmse": target.mixing.rmse,
                "converged": bool(all(s.converged.all() for s in
                                      (model.step_, target.size, target.mixing) if s is not None))},
        "files": ["fit.json", "fit_report.txt", "mixture.json", "predictions.json"] + written,
    }
    _emit(summary, out("summary.json"))
    _say(args, report)
    _emit(summary, None)
    return 0


def _write_html_report(model, target, runs, mix, path: str, png_dir: str, root: str) -> list[str]:
    from ..progress import progress
    from ..report import build_report, write_report

    with progress("writing the HTML report"):
        files = write_report(build_report(model, target, runs=runs, mixture=mix), path, png_dir)
    return [os.path.relpath(f, root) for f in files]


def cmd_report(args: argparse.Namespace) -> int:
    from ..fit import load_model
    from ..export import load_mixture
    from ..runs import read_runs

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
    table = args.runs or model.source_path_
    runs = None
    if table and os.path.exists(table):
        try:
            runs = read_runs(table, renormalize=True)
        except MixlawsError:
            runs = None  # data points are optional: the fitted curves are drawn anyway
    draws = None
    if args.draws:
        from ..posterior import load_draws

        draws = load_draws(args.draws)
    target = None if N is None else model.target(N, D)
    from ..report import build_report, write_report

    out = args.output
    png_dir = os.path.splitext(out)[0] + "_figures" if args.png else None
    write_report(build_report(model, target, runs=runs, mixture=mix, draws=draws), out, png_dir)
    _say(args, f"mixlaws: wrote {out}" + (f" and {png_dir}/*.png" if png_dir else ""))
    return 0


# -- parser ---------------------------------------------------------------------------------------

def _add_fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", help="runs table (CSV or Parquet) in the canonical wide layout")
    agg = p.add_mutually_exclusive_group()
    agg.add_argument("--val-weights", metavar="W.json",
                     help="JSON {validation domain: weight} for explicit aggregation")
    agg.add_argument("--implicit", type=int, metavar="K",
                     help="implicit aggregation of the mean validation loss over K latent domains")
    p.add_argument("--renormalize", action="store_true",
                   help="rescale mixtures whose proportions do not sum to 1 (instead of an error)")
    p.add_argument("--tie-beta", choices=["run", "all", "none"], default="run",
                   help="share the step exponent across a run's domains (default), across "
                        "all runs, or not at all")
    p.add_argument("--tie-alpha", choices=["all", "domain", "none"], default="all",
                   help="share the size exponent across everything (default), per domain, or not")
    p.add_argument("--warmup", type=float, default=WARMUP,
                   help="drop checkpoints below this fraction of a run's last tokens (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of random starts (default 0)")


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", type=parse_quantity, required=True,
                   help="target model size N* (e.g. 1e9 or 805.7M)")
    p.add_argument("--tokens", type=parse_quantity, required=True,
                   help="target training tokens D* (in the table's progress unit; e.g. 1e11, 100B)")


def _add_optimize_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--constraints", metavar="C.yaml", help="constraint file (YAML or JSON)")
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


def build_parser() -> argparse.ArgumentParser:
    from ..export import FORMATS

    parser = argparse.ArgumentParser(prog="mixlaws", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"mixlaws {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--quiet", action="store_true", help="no report or progress on stderr")
    parser.add_argument("--verbose", action="store_true", help="log each step (INFO) on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="fit the step laws of a runs table")
    _add_fit_options(p)
    p.add_argument("-o", "--output", help="fit artifact (default: stdout)")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("predict", help="predict losses of mixtures at a target scale")
    p.add_argument("fit", help="fit artifact written by `mixlaws fit`")
    _add_target(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--mixture", help="one mixture 'a=0.3,b=0.7'")
    src.add_argument("--mixtures", metavar="MIX.csv", help="CSV/Parquet with mix:<source> columns")
    p.add_argument("--per-domain", action="store_true", help="add per-domain losses")
    p.add_argument("--level", type=float, metavar="P",
                   help="add posterior intervals at this level (needs `mixlaws sample` first)")
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
    from ._uncertainty import add_sample_parser

    add_sample_parser(sub, _add_target)
    from ._suggest import add_suggest_parser; add_suggest_parser(sub)  # noqa: E702

    p = sub.add_parser("export", help="write a mixture for a data loader")
    p.add_argument("mixture_file", metavar="MIX.json", help="mixture artifact from `optimize`")
    p.add_argument("--format", required=True, choices=sorted(FORMATS))
    _add_export_options(p)
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("run", help="fit, predict, optimise and export in one go")
    _add_fit_options(p)
    _add_target(p)
    _add_optimize_options(p)
    _add_export_options(p)
    p.add_argument("--formats", default="json,megatron,hf",
                   help=f"comma-separated export formats (default json,megatron,hf; "
                        f"available: {','.join(sorted(FORMATS))})")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="self-contained HTML report of a fit (figures embedded)")
    p.add_argument("fit", help="fit artifact written by `mixlaws fit`")
    p.add_argument("--params", type=parse_quantity, help="target N* (size and mixing stages)")
    p.add_argument("--tokens", type=parse_quantity, help="target D*")
    p.add_argument("--mixture", metavar="MIX.json", help="mixture artifact (also sets the target)")
    p.add_argument("--runs", help="runs table for the data points (default: the fitted table)")
    p.add_argument("--draws", metavar="DRAWS", help="posterior draws for intervals/diagnostics")
    p.add_argument("--png", action="store_true", help="also save the figures as PNG files")
    p.add_argument("-o", "--output", default="report.html", help="HTML file (default report.html)")
    p.set_defaults(func=cmd_report)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    kind = {DataNote: "note", ConvergenceWarning: "warning"}.get(category, "warning")
    print(f"mixlaws: {kind}: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mixlaws`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    from ..progress import configure_logging

    configure_logging(verbose=args.verbose, quiet=args.quiet)
    try:
        return int(args.func(args))
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
