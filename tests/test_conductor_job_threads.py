"""The conductor's job threads (``conductor.job_threads``): kept between jobs, never more than the
slots allow, a slot given back only once its thread waits again, and a stop that names what still runs.

Unit tests of the pool alone (the conductor's loop around it runs in every conductor test): jobs are
stand-ins with a uuid, and the slots are a semaphore used as the conductor's loop uses it.
"""

from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from conductor.job_threads import JobThreads


def _job() -> Any:
    return SimpleNamespace(uuid=str(uuid.uuid4()))


def _conduct(threads: JobThreads, slots: threading.BoundedSemaphore, jobs: list[Any]) -> None:
    """What the conductor's loop does per job: take a slot, hand the job over."""
    for job in jobs:
        assert slots.acquire(timeout=5)
        threads.start(job)


def test_jobs_one_after_another_run_on_one_thread_named_after_each_job() -> None:
    slots = threading.BoundedSemaphore(1)
    ran: list[tuple[str, str]] = []  # (job uuid, thread name while it ran)

    def run(job: Any) -> None:
        ran.append((job.uuid, threading.current_thread().name))

    threads = JobThreads("c1", run, slots.release)
    jobs = [_job() for _ in range(50)]
    _conduct(threads, slots, jobs)
    assert slots.acquire(timeout=5)  # the last job is done
    assert [u for u, _ in ran] == [job.uuid for job in jobs]
    assert [name for _, name in ran] == [f"c1:{job.uuid[:8]}" for job in jobs]
    assert threads.count == 1
    assert threads.stop(time.monotonic() + 5) == []


def test_never_more_threads_than_slots_and_all_of_them_used() -> None:
    slots = threading.BoundedSemaphore(3)
    lock = threading.Lock()
    running, most, names = 0, 0, set()

    def run(job: Any) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            names.add(threading.get_ident())
        time.sleep(0.002)
        with lock:
            running -= 1

    threads = JobThreads("c", run, slots.release)
    _conduct(threads, slots, [_job() for _ in range(200)])
    for _ in range(3):
        assert slots.acquire(timeout=5)
    assert threads.count == 3 and len(names) == 3 and most == 3
    assert threads.stop(time.monotonic() + 5) == []


def test_a_job_that_escapes_ends_its_thread_and_the_next_job_still_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever ``run`` lets out (the conductor catches every Exception; this is what is left) ends
    that thread; its slot is given back and the next job gets a new thread."""
    escaped: list[type[BaseException] | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_type))
    slots = threading.BoundedSemaphore(1)
    ran: list[str] = []
    first, second = _job(), _job()

    def run(job: Any) -> None:
        ran.append(job.uuid)
        if job is first:
            raise SystemExit("escapes the conductor's handlers")

    threads = JobThreads("c", run, slots.release)
    _conduct(threads, slots, [first, second])
    assert slots.acquire(timeout=5)
    assert ran == [first.uuid, second.uuid] and escaped == [SystemExit]
    assert threads.count == 1  # the first thread is gone, the second waits
    assert threads.stop(time.monotonic() + 5) == []


def test_stop_waits_until_the_deadline_and_names_the_jobs_still_running() -> None:
    slots = threading.BoundedSemaphore(2)
    release = threading.Event()
    quick, stuck = _job(), _job()

    def run(job: Any) -> None:
        if job is stuck:
            release.wait(10)

    threads = JobThreads("c", run, slots.release)
    _conduct(threads, slots, [stuck, quick])
    started = time.monotonic()
    assert threads.stop(time.monotonic() + 0.3) == [f"c:{stuck.uuid[:8]}"]
    assert 0.25 <= time.monotonic() - started < 5
    release.set()
    assert threads.stop(time.monotonic() + 5) == []


@pytest.mark.parametrize("max_jobs", [1, 4])
def test_a_slot_is_given_back_only_once_its_thread_waits_again(max_jobs: int) -> None:
    """Checked at the moment the slot comes back: the thread that gave it back is counted idle, so
    the job claimed on that slot never needs a new thread."""
    slots = threading.BoundedSemaphore(max_jobs)
    seen_idle: list[int] = []
    threads: JobThreads

    def done() -> None:
        seen_idle.append(threads._idle)
        slots.release()

    threads = JobThreads("c", lambda job: None, done)
    _conduct(threads, slots, [_job() for _ in range(100)])
    for _ in range(max_jobs):
        assert slots.acquire(timeout=5)
    assert len(seen_idle) == 100 and min(seen_idle) >= 1
    assert threads.count <= max_jobs
    assert threads.stop(time.monotonic() + 5) == []
