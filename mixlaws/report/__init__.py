"""Reports: the text fit report, figures and the self-contained HTML report.
"""

from __future__ import annotations

from ._text import *  # noqa: F401,F403
from ._plots import *  # noqa: F401,F403
from ._html import *  # noqa: F401,F403
from ._plots_decision import *  # noqa: F401,F403
from ._summary import *  # noqa: F401,F403
from ._joint_text import *  # noqa: F401,F403
from . import _text, _plots, _html, _joint_text, _plots_decision, _summary

__all__ = [*_text.__all__, *_plots.__all__, *_html.__all__, *_joint_text.__all__,
           *_plots_decision.__all__, *_summary.__all__]
