"""Progress lines appear on terminals only, and --quiet/--verbose control them."""

from __future__ import annotations

import io
import logging

import pytest

from mixlaws import progress as pg


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore():
    # before, too: a CLI test run earlier in this worker (main(["--quiet", ...])) leaves
    # progress disabled, which made the first test here fail under xdist now and then
    pg.set_enabled(True)
    pg.logger.setLevel(logging.NOTSET)
    yield
    pg.set_enabled(True)
    pg.logger.setLevel(logging.NOTSET)


def test_terminal_shows_progress():
    s = _Tty()
    with pg.progress("bootstrap", total=3, stream=s) as bar:
        for _ in range(3):
            bar.advance()
    out = s.getvalue()
    assert "mixlaws: bootstrap" in out and "[3/3]" in out and out.endswith("\n")
    assert bar.done == 3


def test_pipe_and_quiet_stay_silent():
    s = io.StringIO()  # not a terminal
    with pg.progress("fit", total=2, stream=s) as bar:
        bar.advance(2)
    assert s.getvalue() == ""
    t = _Tty()
    pg.set_enabled(False)
    with pg.progress("fit", stream=t):
        pass
    assert t.getvalue() == "" and not pg.is_enabled(t)


def test_verbose_logs_steps(caplog):
    pg.configure_logging(verbose=True)
    with caplog.at_level(logging.INFO, logger="mixlaws"):
        with pg.progress("sampling", stream=io.StringIO()):
            pass
    msgs = [r.getMessage() for r in caplog.records]
    assert "sampling ..." in msgs and any(m.startswith("sampling done in") for m in msgs)
    pg.configure_logging(quiet=True)
    assert pg.logger.level == logging.ERROR and not pg.is_enabled(_Tty())
    pg.configure_logging()
    assert pg.logger.level == logging.WARNING and pg.is_enabled(_Tty())
    assert sum(getattr(h, "_mixlaws", False) for h in pg.logger.handlers) == 1


def test_long_counted_steps_log_their_progress(caplog, monkeypatch):
    """A log (pipe, CI) sees a long step advance: done/total every LOG_EVERY seconds."""
    pg.configure_logging(verbose=True)

    def ticks(every: float) -> list[str]:
        monkeypatch.setattr(pg, "LOG_EVERY", every)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="mixlaws"):
            with pg.progress("refits", total=3, stream=io.StringIO()) as bar:
                for _ in range(3):
                    bar.advance()
        return [r.getMessage() for r in caplog.records if "/3 after" in r.getMessage()]

    assert [m.split(" after")[0] for m in ticks(0.0)] == ["refits: 1/3", "refits: 2/3",
                                                          "refits: 3/3"]
    assert ticks(1e9) == []                       # a quick step: start and end lines only
    pg.configure_logging()
