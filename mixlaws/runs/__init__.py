"""Reading and validating runs tables: the only place that sees raw user data.

:func:`read_runs` reads a CSV or Parquet file (or takes a DataFrame through
:func:`validate_runs`) into a :class:`RunsTable`; mixtures and validation
weights given by the user are parsed here too.
"""
from __future__ import annotations
from ._table import LABEL_COLUMNS, NAN_POLICIES, RunsTable, read_runs, validate_runs
from ._warmup import WARMUP, after_warmup, drop_warmup
from ._importers import IMPORTERS, import_long, import_olmix, import_regmix, import_runs, to_long
from ._io import parse_mixture, read_mixtures, mixture_from_mapping, read_val_weights

__all__ = [
    "IMPORTERS",
    "import_olmix",
    "import_regmix",
    "import_long",
    "import_runs",
    "to_long",
    "NAN_POLICIES",
    "LABEL_COLUMNS",
    "WARMUP",
    "after_warmup",
    "drop_warmup",
    "RunsTable",
    "read_runs",
    "validate_runs",
    "parse_mixture",
    "read_mixtures",
    "mixture_from_mapping",
    "read_val_weights",
]
