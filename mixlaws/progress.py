"""Progress display and logging for long steps (multi-start fits, sampling, bootstrap).

Progress goes to ``sys.stderr`` and only when it is a terminal
(``sys.stderr.isatty()``): in pipes, files and CI the library stays silent.
The CLI's ``--quiet`` silences it everywhere (:func:`set_enabled`), and
``--verbose`` turns on INFO messages of the ``mixlaws`` logger
(:func:`configure_logging`).  Besides the terminal line, every step is also
logged at INFO level, so ``--verbose`` in a pipe still shows what happened; a counted
step that runs longer also logs ``done/total`` every :data:`LOG_EVERY` seconds (pipes,
files and CI logs see a long step advance, not only start and end).

Example
-------
>>> with progress("bootstrap", total=200) as bar:   # doctest: +SKIP
...     for b in range(200):
...         bar.advance()
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Iterator

__all__ = ["Progress", "progress", "set_enabled", "is_enabled", "configure_logging", "logger"]

logger = logging.getLogger("mixlaws")
LOG_EVERY = 30.0
"""Seconds between INFO lines of a counted step's progress (the terminal line redraws at 10 Hz)."""
_STATE = {"enabled": True}


def set_enabled(enabled: bool) -> None:
    """Allow (default) or forbid progress output (``--quiet`` forbids it)."""
    _STATE["enabled"] = bool(enabled)


def is_enabled(stream: IO[str] | None = None) -> bool:
    """Whether progress is shown on ``stream`` (default stderr): enabled and a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(_STATE["enabled"] and isatty is not None and isatty())


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Configure the ``mixlaws`` logger: INFO with ``verbose``, ERROR with ``quiet``, else WARNING.

    Adds one stderr handler (idempotent) formatted as ``mixlaws: <message>``.
    """
    level = logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING
    logger.setLevel(level)
    if not any(getattr(h, "_mixlaws", False) for h in logger.handlers):
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter("mixlaws: %(message)s"))
        h._mixlaws = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    set_enabled(not quiet)


@dataclass
class Progress:
    """A one-line progress indicator ``desc [done/total] elapsed``.

    Attributes
    ----------
    desc : what is running.
    total : number of units, or None when unknown.
    stream : where to draw (None: stderr); drawing happens only if :func:`is_enabled`.
    done : units completed so far.
    """

    desc: str
    total: int | None = None
    stream: IO[str] | None = None
    done: int = 0
    _t0: float = field(default_factory=time.perf_counter)
    _last: float = 0.0
    _logged: float = field(default_factory=time.perf_counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def active(self) -> bool:
        """True when the line is drawn."""
        return is_enabled(self.stream)

    def _draw(self, final: bool = False) -> None:
        if not self.active:
            return
        now = time.perf_counter()
        if not final and now - self._last < 0.1:
            return
        self._last = now
        count = f" [{self.done}/{self.total}]" if self.total else ""
        end = "\n" if final else ""
        s = self.stream or sys.stderr
        s.write(f"\r\x1b[Kmixlaws: {self.desc}{count} {now - self._t0:.1f}s{end}")
        s.flush()

    def advance(self, n: int = 1) -> None:
        """Mark ``n`` more units done and redraw (at most every 0.1 s); thread-safe."""
        with self._lock:
            self.done += n
            self._draw()
            now = time.perf_counter()
            if self.total and now - self._logged >= LOG_EVERY:
                self._logged = now
                logger.info("%s: %d/%d after %.0f s", self.desc, self.done, self.total,
                            now - self._t0)

    def close(self) -> float:
        """Finish the line, log the step at INFO level; return the elapsed seconds."""
        elapsed = time.perf_counter() - self._t0
        self._draw(final=True)
        logger.info("%s done in %.1f s", self.desc, elapsed)
        return elapsed


@contextmanager
def progress(desc: str, total: int | None = None, *,
             stream: IO[str] | None = None) -> Iterator[Progress]:
    """Context manager yielding a :class:`Progress`; the line is finished on exit."""
    logger.info("%s ...", desc)
    bar = Progress(desc, total, stream)
    bar._draw()
    try:
        yield bar
    finally:
        bar.close()
