"""Posterior commands and options of the CLI (kept apart from ``cli.py``; never prints).

``mixlaws sample FIT.json --params N --tokens D [--bootstrap B] [--seed S]`` samples the
posterior at a target, writes the draws to ``FIT.posterior.npz`` and names that sidecar in
the artifact under ``"posterior"``; ``predict --level`` and ``optimize --objective`` reuse it.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import numpy as np

from ..errors import ArtifactError, MixlawsError
from ._files import write_text

__all__ = ["add_sample_parser", "cmd_sample", "load_posterior", "interval_rows"]


def add_sample_parser(sub: Any, add_target: Any) -> None:
    """Register ``mixlaws sample``."""
    p = sub.add_parser("sample", help="sample the posterior of the nested laws at a target")
    p.add_argument("fit", help="fit artifact written by `mixlaws fit` (updated in place)")
    add_target(p)
    p.add_argument("--runs", help="runs table (default: the artifact's source path)")
    p.add_argument("--renormalize", action="store_true", default=None,
                   help="rescale mixtures (default: as the fit read the table)")
    from ..runs import NAN_POLICIES

    p.add_argument("--nan-policy", choices=NAN_POLICIES, default=None,
                   help="missing loss cells (default: as the fit read the table)")
    p.add_argument("--draws", type=int, default=2000, help="posterior draws (default 2000)")
    p.add_argument("--max-steps", type=int, default=20000, help="MCMC step budget per chain")
    p.add_argument("--bootstrap", type=int, default=0, metavar="B",
                   help="bootstrap over runs with B replicates instead of MCMC")
    p.add_argument("--step-posterior", choices=("mcmc", "laplace"), default="mcmc",
                   help="step laws: emcee (default) or the point fit's Gauss-Newton covariance "
                        "(faster; misses bimodal exponents of short runs)")
    p.add_argument("--mixing-posterior", choices=("mcmc", "gn"), default="mcmc",
                   help="mixing laws: emcee (default) or a refit to every upstream draw "
                        "(multiple imputation, a cross-check)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    """Sample, write the sidecar and name it in the artifact; returns 0."""
    from ..fit import load_model
    from ..posterior import bootstrap_posterior, sample_posterior, save_draws
    from ._fitted import fitted_runs

    if args.draws < 1 or args.max_steps < 1 or args.bootstrap < 0:
        raise MixlawsError(f"--draws and --max-steps must be ≥ 1 and --bootstrap ≥ 0 (got "
                           f"{args.draws}, {args.max_steps}, {args.bootstrap})")
    from ._main import _check_progress

    model = load_model(args.fit)
    from ._law import require_nested

    require_nested(model, "mixlaws sample")
    _check_progress(args, model)
    runs = fitted_runs(model, args.fit, args.runs, renormalize=args.renormalize,
                       nan_policy=args.nan_policy)
    if runs.data[runs.loss_columns].isna().to_numpy().any():  # the bootstrap too
        raise MixlawsError(f"{runs.path}: posterior sampling does not handle missing loss cells "
                           "yet (--nan-policy omit); fill or drop the gaps to sample")
    if args.bootstrap:
        draws = bootstrap_posterior(model, runs, args.params, args.tokens, n_boot=args.bootstrap,
                                    seed=args.seed)
    else:
        draws = sample_posterior(model, runs, args.params, args.tokens, n_draws=args.draws,
                                 seed=args.seed, max_steps=args.max_steps,
                                 step=args.step_posterior, mixing=args.mixing_posterior)
    side = os.path.splitext(args.fit)[0] + ".posterior.npz"
    save_draws(draws, side)
    with open(args.fit, encoding="utf-8") as f:
        d = json.load(f)
    d["posterior"] = {"file": os.path.basename(side), "params": draws.params,
                      "tokens": draws.tokens, "method": draws.method, "seed": draws.seed,
                      "n_draws": draws.n_draws}
    write_text(args.fit, json.dumps(d, indent=1, allow_nan=False) + "\n")  # atomic, in place
    print(json.dumps({"posterior": d["posterior"], "diagnostics": list(draws.diagnostics)},
                     indent=2))  # noqa: T201  (the command's output)
    return 0


def load_posterior(fit_path: str, params: float, tokens: float):
    """The draws the artifact names, checked to be for ``(params, tokens)``."""
    from ..posterior import load_draws

    with open(fit_path, encoding="utf-8") as f:
        info = json.load(f).get("posterior")
    if not info:
        raise ArtifactError(f"{fit_path} has no posterior: run `mixlaws sample {fit_path} "
                            f"--params {params:g} --tokens {tokens:g}` first", path=fit_path)
    same = lambda a, b: abs(a - b) <= 1e-6 * max(abs(a), abs(b))  # noqa: E731
    if not (same(info["params"], params) and same(info["tokens"], tokens)):
        raise ArtifactError(f"{fit_path}: its posterior is for params={info['params']:g}, "
                            f"tokens={info['tokens']:g}; run `mixlaws sample` at params="
                            f"{params:g}, tokens={tokens:g}", path=fit_path)
    return load_draws(os.path.join(os.path.dirname(os.path.abspath(fit_path)), info["file"]))


def interval_rows(draws, mixtures: np.ndarray, level: float, per_domain: bool,
                  domains: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per-mixture interval fields for ``predict --level``: ``lower``/``upper`` bound the loss of
    a newly trained run (what a trained model is compared with), ``mean_interval`` the law's."""
    from ..posterior import predict_intervals

    iv = predict_intervals(draws, mixtures, level, seed=draws.seed)
    rows = []
    for i in range(iv.loss.size):
        row: dict[str, Any] = {"loss": float(iv.loss[i]), "lower": float(iv.new_lower[i]),
                               "upper": float(iv.new_upper[i]), "level": level,
                               "mean_interval": [float(iv.lower[i]), float(iv.upper[i])],
                               "new_run_interval": [float(iv.new_lower[i]), float(iv.new_upper[i])],
                               "posterior": draws.method}
        if per_domain:
            row["domains"] = {d: {"loss": float(iv.domain_loss[i, j]),
                                  "lower": float(iv.domain_new_lower[i, j]),
                                  "upper": float(iv.domain_new_upper[i, j]),
                                  "mean_interval": [float(iv.domain_lower[i, j]),
                                                    float(iv.domain_upper[i, j])],
                                  "new_run_interval": [float(iv.domain_new_lower[i, j]),
                                                       float(iv.domain_new_upper[i, j])]}
                              for j, d in enumerate(domains)}
        rows.append(row)
    return rows
