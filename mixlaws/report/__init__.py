"""Reports: the text fit report, figures and the self-contained HTML report.
"""
from __future__ import annotations
from ._text import fit_report, stage_report
from ._joint_text import joint_fit_report
from ._html import Figure, Report, build_report, write_report, leave_one_mixture_out

__all__ = [
    "fit_report",
    "stage_report",
    "joint_fit_report",
    "Figure",
    "Report",
    "build_report",
    "write_report",
    "leave_one_mixture_out",
]
