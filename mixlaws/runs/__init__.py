"""Reading and validating runs tables: the only place that sees raw user data.

:func:`read_runs` reads a CSV or Parquet file (or takes a DataFrame through
:func:`validate_runs`) into a :class:`RunsTable`; mixtures and validation
weights given by the user are parsed here too.
"""

from __future__ import annotations

from ._table import *  # noqa: F401,F403
from ._warmup import *  # noqa: F401,F403
from ._io import *  # noqa: F401,F403
from ._importers import *  # noqa: F401,F403
from . import _table, _warmup, _io, _importers

__all__ = [*_table.__all__, *_warmup.__all__, *_io.__all__, *_importers.__all__]
