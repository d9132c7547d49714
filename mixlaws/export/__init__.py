"""Exporting a mixture: the canonical manifest (MIX.json), one writer per data loader, and
readers back.
"""

from __future__ import annotations

from ._manifest import *  # noqa: F401,F403
from ._writers import *  # noqa: F401,F403
from ._readers import *  # noqa: F401,F403
from . import _manifest, _writers, _readers

__all__ = [*_manifest.__all__, *_writers.__all__, *_readers.__all__]
