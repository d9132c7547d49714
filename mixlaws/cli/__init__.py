"""The command-line interface: parses arguments, calls the library, writes outputs.
"""

from __future__ import annotations

from ._main import *  # noqa: F401,F403
from . import _main

__all__ = [*_main.__all__]
