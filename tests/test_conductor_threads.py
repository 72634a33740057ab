"""The conductor's job threads: kept from one job to the next, named after the job they run, ended by
``close`` or when idle too long."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from conductor.threads import JobThreads
from tests.support.wait import wait_until


def _job(uuid: str) -> Any:
    return SimpleNamespace(uuid=uuid)


def test_a_thread_is_kept_for_the_next_job_and_named_after_it() -> None:
    ran: list[tuple[str, int, str]] = []
    slots = threading.Semaphore(0)

    def run(job: Any) -> None:
        ran.append((job.uuid, threading.get_ident(), threading.current_thread().name))

    threads = JobThreads("c", run, slots.release)
    for uuid in ("aaaaaaaa-1", "bbbbbbbb-2", "cccccccc-3"):
        threads.start(_job(uuid))
        assert slots.acquire(timeout=5)  # as the claim loop: the next job once the slot is back
    threads.close()
    assert threads.join(time.monotonic() + 5) == []
    assert [uuid for uuid, _, _ in ran] == ["aaaaaaaa-1", "bbbbbbbb-2", "cccccccc-3"]
    assert len({ident for _, ident, _ in ran}) == 1, "one thread ran the three jobs in turn"
    assert [name for _, _, name in ran] == ["c:aaaaaaaa", "c:bbbbbbbb", "c:cccccccc"]


def test_close_ends_idle_threads_and_join_names_the_jobs_still_running() -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def run(job: Any) -> None:
        started.release()
        if job.uuid.startswith("slow"):
            release.wait(10)

    threads = JobThreads("c", run, lambda: None)
    threads.start(_job("quick-01"))
    threads.start(_job("slow-0002"))  # the first may still be busy: then this one gets a thread too
    assert started.acquire(timeout=5) and started.acquire(timeout=5)
    threads.close()
    assert threads.join(time.monotonic() + 0.3) == ["c:slow-000"]
    release.set()
    assert threads.join(time.monotonic() + 5) == []


def test_a_thread_idle_too_long_ends_and_the_next_job_gets_a_new_one() -> None:
    idents: list[int] = []
    threads = JobThreads("c", lambda job: idents.append(threading.get_ident()), lambda: None, idle=0.05)
    threads.start(_job("first-000"))
    wait_until(lambda: threads.join(time.monotonic()) == [], 5, "the idle thread to end")
    threads.start(_job("second-00"))
    wait_until(lambda: len(idents) == 2, 5, "the second job to run")
    threads.close()
    assert threads.join(time.monotonic() + 5) == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_job_that_raises_ends_its_thread_and_still_gives_its_slot_back() -> None:
    given_back = threading.Semaphore(0)

    def run(job: Any) -> None:
        raise SystemExit("boom")  # the loop catches Exception; this is what would get past it

    threads = JobThreads("c", run, given_back.release)
    threads.start(_job("raises-01"))
    assert given_back.acquire(timeout=5)
    wait_until(lambda: threads.join(time.monotonic()) == [], 5, "the thread to end")
    ran = threading.Event()
    threads._run = lambda job: ran.set()  # type: ignore[method-assign]
    threads.start(_job("next-0001"))  # not handed to the dead thread: a new one runs it
    assert ran.wait(5)
    threads.close()
