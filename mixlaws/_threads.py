"""Independent jobs in threads, each keeping the warnings it emitted.

mixlaws' independent fits (backtest folds, one linear programme per target) spend their time
in compiled code that releases the GIL -- XLA programs, HiGHS -- so threads run them in
parallel without copying data to other processes.  :func:`thread_map` maps a function over
items in up to :func:`workers` threads and returns the results in the items' order, so the
output does not depend on the number of threads.

``record=True`` also returns, per item, the warnings its call emitted
(:class:`warnings.WarningMessage`, as ``catch_warnings(record=True)`` gives them).
``warnings.catch_warnings`` cannot do that from threads (it swaps process-wide state), so
:func:`thread_map` installs one dispatcher for the duration of the map: a warning goes to the
list of the job whose context emitted it (a :class:`contextvars.ContextVar`; threads a job
starts through :func:`thread_map` inherit its context), elsewhere to the handler that was in
place.  While a recording map runs, every warning is shown (filter ``"always"``), as inside
``catch_warnings(record=True)``.  Code run inside a recording job must not enter
``warnings.catch_warnings`` itself.
"""

from __future__ import annotations

import contextvars
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, TypeVar

__all__ = ["thread_map", "workers"]

T = TypeVar("T")
R = TypeVar("R")

THREADS_ENV = "MIXLAWS_THREADS"
"""Environment variable capping the threads of :func:`workers` (e.g. ``1`` on a shared node)."""

_LOG: contextvars.ContextVar[list[warnings.WarningMessage] | None] = contextvars.ContextVar(
    "mixlaws_warnings", default=None)
_HOOK_LOCK = threading.Lock()
_hook: dict[str, Any] = {"depth": 0, "cm": None, "previous": None}


def workers(n_jobs: int | None = None, *, xla: bool = False) -> int:
    """Threads to use for ``n_jobs`` independent jobs: the cores this process may run on
    (its CPU affinity), at most ``$MIXLAWS_THREADS`` when set, at most ``n_jobs``, at least 1.

    ``xla=True``: the jobs run JAX computations, which get one thread unless JAX computes on
    the CPU -- an accelerator runs them one after the other anyway, and jobs held at once would
    multiply the device memory they take.
    """
    if xla:
        import jax

        if jax.default_backend() != "cpu":
            return 1
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:                       # not on Linux
        n = os.cpu_count() or 1
    cap = os.environ.get(THREADS_ENV, "").strip()
    if cap:
        try:
            n = min(n, int(cap))
        except ValueError:
            raise ValueError(f"{THREADS_ENV} must be a whole number of threads, not {cap!r}")
    if n_jobs is not None:
        n = min(n, int(n_jobs))
    return max(1, n)


def _show(message: Any, category: type, filename: str, lineno: int, file: Any = None,
          line: str | None = None) -> None:
    log = _LOG.get()
    if log is not None:
        log.append(warnings.WarningMessage(message, category, filename, lineno, file, line))
    else:
        _hook["previous"](message, category, filename, lineno, file, line)


def _install() -> None:
    with _HOOK_LOCK:
        if _hook["depth"] == 0:
            cm = warnings.catch_warnings()
            cm.__enter__()
            warnings.simplefilter("always")
            _hook.update(cm=cm, previous=warnings.showwarning)
            warnings.showwarning = _show
        _hook["depth"] += 1


def _uninstall() -> None:
    with _HOOK_LOCK:
        _hook["depth"] -= 1
        if _hook["depth"] == 0:
            _hook["cm"].__exit__(None, None, None)
            _hook.update(cm=None, previous=None)


def thread_map(fn: Callable[[T], R], items: Iterable[T], *, n_threads: int | None = None,
               record: bool = False, xla: bool = False) -> list[Any]:
    """``[fn(item) for item in items]``, in up to ``n_threads`` threads (default
    :func:`workers`), results in the order of ``items``.

    Parameters
    ----------
    fn : the job.  The first exception in item order propagates once the jobs running then
        have ended; jobs not started by then are cancelled (so is everything on Ctrl-C).
    items : the jobs' arguments.
    n_threads : threads; ``1`` runs the jobs one after the other in this thread.
    xla : the jobs run JAX computations (see :func:`workers`; only when ``n_threads`` is None).
    record : return ``(result, caught)`` per item, ``caught`` the warnings that item's call
        emitted (:class:`warnings.WarningMessage`; all of them, whatever the filters), in order.

    Examples
    --------
    >>> thread_map(lambda x: x * x, range(5), n_threads=2)
    [0, 1, 4, 9, 16]
    >>> import warnings
    >>> def job(x):
    ...     warnings.warn(f"odd {x}") if x % 2 else None
    ...     return x
    >>> [(x, [str(w.message) for w in caught])
    ...  for x, caught in thread_map(job, [1, 2], n_threads=2, record=True)]
    [(1, ['odd 1']), (2, [])]
    """
    items = list(items)
    n = (workers(len(items), xla=xla) if n_threads is None
         else max(1, min(int(n_threads), len(items))))

    def call(item: T) -> Any:
        if not record:
            return fn(item)
        log: list[warnings.WarningMessage] = []
        _LOG.set(log)
        return fn(item), log

    if record:
        _install()
    try:                     # each job in its own copy of the calling thread's context
        if n == 1:
            return [contextvars.copy_context().run(call, item) for item in items]
        pool = ThreadPoolExecutor(n)
        futures = [pool.submit(contextvars.copy_context().run, call, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:      # an error or Ctrl-C: the jobs not started yet never start
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
    finally:
        if record:
            _uninstall()
