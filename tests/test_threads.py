"""mixlaws._threads: results in order, each job's own warnings, whatever the threads."""

from __future__ import annotations

import time
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mixlaws._threads import THREADS_ENV, thread_map, workers


def _job(spec: tuple[int, int, float]) -> int:
    """Emit ``n`` warnings naming the job, sleeping in between so that threads interleave."""
    i, n, pause = spec
    for j in range(n):
        warnings.warn(f"job {i} warning {j}", UserWarning)
        time.sleep(pause)
    return i * i


@given(st.lists(st.integers(0, 4), min_size=1, max_size=12), st.integers(1, 4))
def test_every_job_gets_its_own_warnings_in_order(counts, n_threads):
    specs = [(i, n, 0.0005 * (i % 3)) for i, n in enumerate(counts)]
    out = thread_map(_job, specs, n_threads=n_threads, record=True)
    assert [r for r, _ in out] == [i * i for i in range(len(counts))]
    assert [[str(w.message) for w in log] for _, log in out] == \
        [[f"job {i} warning {j}" for j in range(n)] for i, n in enumerate(counts)]
    assert all(w.category is UserWarning for _, log in out for w in log)


def test_threads_a_job_starts_report_to_that_job():
    def outer(i: int) -> int:
        return sum(thread_map(lambda j: _job((10 * i + j, 1, 0.001)), range(3), n_threads=3))

    out = thread_map(outer, range(3), n_threads=3, record=True)
    for i, (_, log) in enumerate(out):
        assert sorted(str(w.message) for w in log) == [f"job {10 * i + j} warning 0"
                                                       for j in range(3)]


def test_recording_is_shown_always_and_leaves_the_filters_as_they_were():
    before = (list(warnings.filters), warnings.showwarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # would raise outside a recording map
        out = thread_map(_job, [(0, 2, 0.0), (1, 2, 0.0)], n_threads=2, record=True)
        assert [len(log) for _, log in out] == [2, 2]
        with pytest.raises(UserWarning):
            warnings.warn("after the map", UserWarning)
    assert (list(warnings.filters), warnings.showwarning) == before


def test_the_first_exception_in_item_order_propagates_and_the_hook_is_removed():
    def fail(i: int) -> int:
        if i in (1, 3):
            raise ValueError(f"item {i}")
        return i

    shown = warnings.showwarning
    with pytest.raises(ValueError, match="item 1"):
        thread_map(fail, range(5), n_threads=2, record=True)
    assert warnings.showwarning is shown


def test_after_an_error_the_jobs_not_started_are_cancelled():
    started = []

    def job(i: int) -> int:
        started.append(i)
        if i == 0:
            raise RuntimeError("first")
        time.sleep(0.05)
        return i

    with pytest.raises(RuntimeError, match="first"):
        thread_map(job, range(40), n_threads=2)
    assert len(started) < 10


def test_workers_respects_the_environment_and_the_number_of_jobs(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "1")
    assert workers(10) == 1
    monkeypatch.delenv(THREADS_ENV)
    assert 1 <= workers(2) <= 2 and workers(0) == 1
    monkeypatch.setenv(THREADS_ENV, "two")
    with pytest.raises(ValueError, match=THREADS_ENV):
        workers()


def test_jax_jobs_get_one_thread_off_the_cpu(monkeypatch):
    import jax

    monkeypatch.delenv(THREADS_ENV, raising=False)
    cpu = workers(8)
    assert workers(8, xla=True) == cpu          # JAX computes on the CPU here
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert workers(8, xla=True) == 1 and workers(8) == cpu
