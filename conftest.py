"""Loaded by pytest before anything imports JAX: one persistent compilation cache per session.

Programs compiled by one test (or by a notebook kernel, or a ``mixlaws`` subprocess, which
inherit the environment) are loaded from disk by the next instead of being recompiled. The cache
starts empty in a temporary directory and is removed at exit, so every run of the suite pays the
cold cost a fresh machine pays; set ``JAX_COMPILATION_CACHE_DIR`` to keep one across runs.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    _cache = tempfile.mkdtemp(prefix="mixlaws-test-jax-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
