"""The command-line interface: parses arguments, calls the library, writes outputs.
"""
from __future__ import annotations
from ._main import main, parse_quantity

__all__ = [
    "main",
    "parse_quantity",
]
