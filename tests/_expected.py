"""The warnings a test may expect from mixlaws, ignored by name (never a blanket ignore).

pytest turns every other warning into an error (``filterwarnings = error``), so a new
numpy RuntimeWarning or a leaked third-party warning fails the suite.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

from mixlaws.errors import ChainWarning, ConvergenceWarning, DataNote, ExtrapolationWarning

EXPECTED = (ConvergenceWarning, DataNote, ChainWarning, ExtrapolationWarning)


@contextlib.contextmanager
def expected_warnings(*categories: type[Warning]) -> Iterator[None]:
    """Ignore the named mixlaws warnings (default: convergence, data notes, chains) inside."""
    with warnings.catch_warnings():
        for cat in categories or EXPECTED:
            warnings.simplefilter("ignore", cat)
        yield
