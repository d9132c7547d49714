"""Numerical configuration applied when mixlaws is imported.

Mixture effects of 1e-3 nats in a loss of 3 need float64: JAX computes in
float32 unless ``jax_enable_x64`` is set, so it is set here, once, before any
array is created.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

__all__ = ["x64_enabled"]


def x64_enabled() -> bool:
    """Return True when JAX computes in float64 (it must, for mixlaws)."""
    return bool(jax.config.read("jax_enable_x64"))
