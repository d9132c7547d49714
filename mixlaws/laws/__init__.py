"""The laws: pure JAX functions whose signatures name their parameters, and their registry.
"""
from __future__ import annotations
from ._functions import (Array, step_law, size_law, mixing_law, implicit_mixing_law, joint_law, joint_mix_law, explicit_aggregate, sum_zero_basis, Law, LAWS)

__all__ = [
    "Array",
    "step_law",
    "size_law",
    "mixing_law",
    "implicit_mixing_law",
    "joint_law",
    "joint_mix_law",
    "explicit_aggregate",
    "sum_zero_basis",
    "Law",
    "LAWS",
]
