"""Numerical and compilation configuration of JAX for mixlaws.

Mixture effects of 1e-3 nats in a loss of 3 need float64: JAX computes in
float32 unless ``jax_enable_x64`` is set, so it is set here, once, when mixlaws
is imported, before any array is created.

:func:`use_compile_cache` turns on JAX's persistent compilation cache (the
``mixlaws`` command calls it; library users may). A fit compiles ~20-130 small
XLA programs, 0.1-2 s each on a 2-core machine; with the cache a second
``mixlaws`` command on a table of the same shape loads them from disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

__all__ = ["x64_enabled", "use_compile_cache", "default_cache_dir", "CACHE_ENV", "CACHE_MAX_BYTES"]

CACHE_ENV = "MIXLAWS_COMPILE_CACHE"
"""Environment variable: the cache directory; ``off`` (also ``0``, ``no``, ``false``, empty) for
none; ``on`` (also ``1``, ``yes``, ``true``) for :func:`default_cache_dir`."""

CACHE_MAX_BYTES = 2 * 1024**3
"""Size bound of the default cache: least recently used programs are evicted beyond 2 GiB."""


def x64_enabled() -> bool:
    """Return True when JAX computes in float64 (it must, for mixlaws)."""
    return bool(jax.config.read("jax_enable_x64"))


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mixlaws/jax`` (``~/.cache/mixlaws/jax`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mixlaws" / "jax"


def use_compile_cache(path: str | os.PathLike | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache; return its directory (None: not used).

    The directory is, in order: ``path``; a cache JAX was already given
    (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``), which is left as it is;
    ``$MIXLAWS_COMPILE_CACHE`` (``off`` disables, ``on`` means the default);
    :func:`default_cache_dir`.
    Programs are cached whatever their compile time (mixlaws compiles many small
    ones). A directory that cannot be created means no cache, not an error.
    The cache holds executable code: JAX's documentation warns not to share
    it with users you do not trust (the default lives in your home directory).

    Examples
    --------
    >>> from mixlaws._config import default_cache_dir
    >>> default_cache_dir().parts[-2:]
    ('mixlaws', 'jax')
    """
    configured = jax.config.jax_compilation_cache_dir
    if path is None and configured:
        return Path(configured)
    if path is None:
        env = os.environ.get(CACHE_ENV)
        if env is not None and env.strip().lower() in ("", "0", "off", "no", "false"):
            return None
        if env is not None and env.strip().lower() in ("1", "on", "yes", "true"):
            env = None                 # a switch, not a directory named "on" in the cwd
        path = env or default_cache_dir()
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if jax.config.jax_compilation_cache_max_size == -1:
        jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
    return path
