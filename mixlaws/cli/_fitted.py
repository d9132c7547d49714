"""The runs table behind a fit artifact, read the way the fit read it (CLI helper).

``sample`` and ``report`` need the table that ``fit`` used.  The artifact records its
path, the reading options (``renormalize``, ``nan_policy``) and the table's content hash
(:meth:`~mixlaws.runs.RunsTable.content_hash`); :func:`fitted_runs` reuses the options
(a flag given on the command line wins), says where a path that no longer resolves came
from, and refuses a table whose content changed since the fit.
"""

from __future__ import annotations

import os

from ..errors import ArtifactError

__all__ = ["fitted_runs"]


def fitted_runs(model, fit_path: str, runs: str | None = None, *, renormalize: bool | None = None,
                nan_policy: str | None = None):
    """Read the runs table of ``model`` (fitted from ``fit_path``); ``runs`` overrides the path."""
    from ..runs import read_runs

    reading = getattr(model, "reading_", {}) or {}
    path = runs or model.source_path_
    if runs is None:
        here = os.path.join(os.path.dirname(os.path.abspath(fit_path)), path)
        if not os.path.isfile(path) and not os.path.isabs(path) and os.path.isfile(here):
            path = here  # a relative path recorded at fit time, next to the artifact
        if not os.path.isfile(path):
            raise ArtifactError(
                f"{fit_path}: the runs table path {model.source_path_!r} comes from the artifact "
                f"(where `mixlaws fit` read it) and does not resolve from here; pass the table "
                f"with --runs RUNS.csv", path=fit_path)
    table = read_runs(path, renormalize=reading.get("renormalize", False)
                      if renormalize is None else renormalize,
                      nan_policy=reading.get("nan_policy", "raise")
                      if nan_policy is None else nan_policy)
    expected = reading.get("table_sha256")
    if expected and table.content_hash() != expected:
        raise ArtifactError(
            f"{path}: this runs table differs from the one {fit_path} was fitted to (content "
            f"hash); pass the fitted table with --runs, or refit with `mixlaws fit {path}`",
            path=str(path))
    return table
