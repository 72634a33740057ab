"""Async atoms on the local engines: one event loop thread per engine, many calls at once on it, bounded by
``max_async``, holding none of the parallel engine's threads; and the options' checks.

What every dispatcher shares (an async atom's result, its revert, its timeout cancelling it) is in
``test_engine_contract.py``; this file is about the loop itself.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flowkit import FunctorTask, LinearFlow, Task, UnorderedFlow, engines
from flowkit.context import current_atom_uuid
from flowkit.engines.aio import NOT_STARTED
from flowkit.exceptions import InvalidFlowError
from flowkit.persistence import backends
from flowkit.states import AtomState
from tests.support.wait import wait_until

LOOP_THREAD = "flowkit-async"


class Gauge:
    """Counts the async calls running at once (touched only on the loop's thread)."""

    def __init__(self, expected: int = 0) -> None:
        self.now = 0
        self.most = 0
        self.threads: set[str] = set()
        self.expected = expected
        self.all_in: asyncio.Event | None = None


class Counted(Task):
    """Holds a slot for ``pause`` seconds, counting how many hold one at once."""

    async def execute(self, gauge: Gauge, pause: float = 0.005) -> str:
        gauge.threads.add(threading.current_thread().name)
        gauge.now += 1
        gauge.most = max(gauge.most, gauge.now)
        await asyncio.sleep(pause)
        gauge.now -= 1
        return self.name


class Rendezvous(Task):
    """Returns only once ``gauge.expected`` calls have all started: they must run at the same time."""

    async def execute(self, gauge: Gauge) -> int:
        gauge.threads.add(threading.current_thread().name)
        if gauge.all_in is None:
            gauge.all_in = asyncio.Event()
        gauge.now += 1
        if gauge.now == gauge.expected:
            gauge.all_in.set()
        await asyncio.wait_for(gauge.all_in.wait(), 20)
        return gauge.now


class Threads(Task):
    """The names of the threads alive while it runs."""

    def execute(self) -> list[str]:
        return sorted(t.name for t in threading.enumerate())


class KnowsItself(Task):
    """An async task sees its atom's context (idempotency key) and reports progress."""

    async def execute(self) -> str | None:
        self.update_progress(0.5)
        await asyncio.sleep(0)
        return current_atom_uuid()


def test_two_thousand_async_atoms_run_at_once_on_one_thread_not_on_the_pool() -> None:
    n = 2000
    gauge = Gauge(expected=n)
    flow = UnorderedFlow("many").add(
        *(Rendezvous(name=f"r{i}", provides=f"r{i}", inject={"gauge": gauge}) for i in range(n))
    )
    before = threading.active_count()
    engine = engines.load(flow, engine="parallel", executor="threads", max_workers=2, max_async=n)
    engine.run()
    assert gauge.threads == {LOOP_THREAD}
    assert {engine.storage.fetch(f"r{i}") for i in range(n)} == {n}  # each saw all n started
    assert threading.active_count() <= before + 1  # the loop's thread has stopped (at most winding down)


def test_max_async_bounds_the_calls_running_at_once() -> None:
    gauge = Gauge()
    flow = UnorderedFlow("bounded").add(*(Counted(name=f"c{i}", inject={"gauge": gauge}) for i in range(300)))
    engines.load(flow, engine="parallel", max_async=25).run()
    assert gauge.most == 25
    assert gauge.now == 0


def test_the_serial_engine_runs_async_atoms_one_at_a_time_in_order() -> None:
    gauge = Gauge()
    flow = LinearFlow("serial").add(
        *(Counted(name=f"c{i}", provides=f"c{i}", inject={"gauge": gauge}) for i in range(20))
    )
    order: list[str] = []
    engine = engines.load(flow, engine="serial")
    engine.atom_notifier.register("SUCCESS", lambda _state, details: order.append(details["atom_name"]))
    engine.run()
    assert gauge.most == 1 and gauge.threads == {threading.current_thread().name}  # its loop, its thread
    assert LOOP_THREAD not in {t.name for t in threading.enumerate()}  # no loop thread: no hand-offs
    assert order == [f"c{i}" for i in range(20)]


@pytest.mark.parametrize("engine_kind", ["serial", "parallel"])
def test_a_flow_without_async_atoms_starts_no_loop_thread(engine_kind: str) -> None:
    engine = engines.load(LinearFlow("sync").add(Threads(name="t", provides="threads")), engine=engine_kind)
    engine.run()
    assert LOOP_THREAD not in engine.storage.fetch("threads")


def test_an_async_atom_sees_its_context_and_reports_progress() -> None:
    engine = engines.load(LinearFlow("ctx").add(KnowsItself(name="me", provides="uuid")), engine="parallel")
    progress: list[Any] = []
    engine.atom_notifier.register("update_progress", lambda _state, details: progress.append(details))
    engine.run()
    assert engine.storage.fetch("uuid") == engine.storage.get_atom_uuid("me")
    assert [(d["atom_name"], d["progress"]) for d in progress] == [("me", 0.5)]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", True])
def test_max_async_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(InvalidFlowError, match="max_async must be a positive int"):
        engines.load(LinearFlow("f"), engine="parallel", max_async=bad)


@pytest.mark.parametrize("engine_kind", ["serial", "parallel"])
def test_default_timeout_is_checked(engine_kind: str) -> None:
    with pytest.raises(InvalidFlowError, match="default_timeout: timeout must be a positive number"):
        engines.load(LinearFlow("f"), engine=engine_kind, default_timeout=-1)


async def fetch(url: str) -> str:
    await asyncio.sleep(0)
    return f"got {url}"


async def forget(url: str, **kwargs: Any) -> None:
    await asyncio.sleep(0)
    undone.append(url)


undone: list[str] = []


@pytest.mark.parametrize("engine_kind", ["serial", "parallel"])
def test_a_functor_task_of_an_async_function_is_awaited_and_reverted(engine_kind: str) -> None:
    undone.clear()
    fetching = FunctorTask(fetch, name="fetch", provides="page", revert=forget)
    flow = LinearFlow("f").add(fetching, FunctorTask(explode, name="boom", requires=["page"]))
    engine = engines.load(flow, engine=engine_kind, store={"url": "http://x"})
    with pytest.raises(ValueError, match="boom"):
        engine.run()
    assert engine.storage.get_atom_state("fetch") is AtomState.REVERTED
    assert undone == ["http://x"]
    plain = engines.load(LinearFlow("g").add(FunctorTask(fetch, provides="page")), store={"url": "u"})
    plain.run()
    assert plain.storage.fetch("page") == "got u"


def explode(page: str) -> None:
    raise ValueError(f"boom after {page}")


class Forever(Task):
    async def execute(self) -> None:
        await asyncio.sleep(60)


def test_cancel_all_reports_every_call_running_or_waiting_for_a_slot() -> None:
    """What a cancel of the engine relies on: no cancelled call is left without a completion, even one
    still waiting for a ``max_async`` slot (else the engine would wait for it forever)."""
    import queue

    from flowkit.engines.aio import AsyncRunner

    runner = AsyncRunner(max_async=2)
    done: queue.SimpleQueue[Any] = queue.SimpleQueue()
    try:
        for i in range(5):
            runner.submit(i, Forever(name=f"f{i}"), "execute", {}, None, None, done.put)
        runner.cancel_all()
        got = sorted((done.get(timeout=5) for _ in range(5)), key=lambda c: c[0])
    finally:
        runner.stop()
    assert [c[0] for c in got] == [0, 1, 2, 3, 4]
    assert all(not ok and "was cancelled" in str(value) for _i, _a, ok, value in got)


def test_a_call_waiting_for_a_slot_is_no_asyncio_task_yet() -> None:
    """Calls beyond ``max_async`` wait in the runner's queue, not as tasks parked on a semaphore: an
    unordered flow of 10,000 async atoms made 10,000 tasks at once, and the collector's passes over
    them cost more than the calls."""
    import queue

    from flowkit.engines.aio import AsyncRunner

    runner = AsyncRunner(max_async=2)
    done: queue.SimpleQueue[Any] = queue.SimpleQueue()
    try:
        for i in range(6):
            runner.submit(i, Forever(name=f"f{i}"), "execute", {}, None, None, done.put)
        wait_until(lambda: len(runner._tasks) == 2, 5, "two calls to start")
        loop = runner._loop
        assert loop is not None
        tasks = asyncio.run_coroutine_threadsafe(_tasks_of_the_loop(), loop).result(5)
        assert tasks == 2 and len(runner._pending) == 4
        runner.cancel_all()
        got = sorted(done.get(timeout=5)[:2] for _ in range(6))
    finally:
        runner.stop()
    assert got == [(0, "execute"), (1, "execute"), *((i, NOT_STARTED) for i in range(2, 6))]


async def _tasks_of_the_loop() -> int:
    """How many tasks the running loop has besides the one asking."""
    return len(asyncio.all_tasks()) - 1


def test_the_serial_engine_called_from_async_code_hands_its_async_atoms_to_its_loop_thread() -> None:
    """A caller inside a running loop cannot have the serial engine run a second loop in its thread: the
    calls go to the engine's loop thread instead, and the flow runs as anywhere else."""
    gauge = Gauge()
    flow = LinearFlow("f").add(*(Counted(name=f"c{i}", inject={"gauge": gauge}) for i in range(3)))

    async def caller() -> None:
        engines.load(flow, engine="serial").run()  # blocks this loop: fine for a test, as in a notebook

    asyncio.run(caller())
    assert gauge.most == 1 and gauge.threads == {LOOP_THREAD}


def test_a_fenced_run_counts_async_calls_apart_from_max_workers(tmp_path: Path) -> None:
    """A fenced run (a job board claim's) caps calls in flight so none waits in a queue: async calls
    against ``max_async``, the others against ``max_workers``, never one against the other's."""
    gauge = Gauge(expected=4)
    flow = UnorderedFlow("f").add(
        *(Rendezvous(name=f"r{i}", provides=f"r{i}", inject={"gauge": gauge}) for i in range(4)),
        Threads(name="t1", provides="t1"),
        Threads(name="t2", provides="t2"),
    )
    backend = backends.fetch(f"sqlite:///{tmp_path}/flows.db")
    with backend.get_connection() as conn:
        conn.upgrade()
    engine = engines.load(flow, engine="parallel", max_workers=1, max_async=4, backend=backend, fence=1)
    engine.run()  # the four rendezvous meet only if all four run at once beside the one worker thread
    assert [engine.storage.fetch(f"r{i}") for i in range(4)] == [4, 4, 4, 4]


def test_a_fenced_run_loses_no_atom_held_for_a_slot_when_a_failure_is_retried(tmp_path: Path) -> None:
    """Atoms held for a full ``max_async`` are ready again when the run drains for a failure: the retry's
    second attempt runs every one of them."""
    from flowkit import retry

    attempts: list[str] = []

    class FailsFirst(Task):
        async def execute(self) -> str:
            attempts.append(self.name)
            await asyncio.sleep(0.01)
            if attempts.count(self.name) == 1 and self.name == "a0":
                raise RuntimeError("first attempt fails")
            return self.name

    flow = UnorderedFlow("f", retry=retry.Times(attempts=2)).add(
        *(FailsFirst(name=f"a{i}", provides=f"a{i}") for i in range(5))
    )
    backend = backends.fetch(f"sqlite:///{tmp_path}/flows.db")
    with backend.get_connection() as conn:
        conn.upgrade()
    engine = engines.load(flow, engine="parallel", max_workers=1, max_async=1, backend=backend, fence=1)
    engine.run()
    assert [engine.storage.fetch(f"a{i}") for i in range(5)] == [f"a{i}" for i in range(5)]
    assert engine.storage.get_atom_state("a4") is AtomState.SUCCESS


def test_a_fenced_run_frees_the_slots_of_async_calls_saved_together(tmp_path: Path) -> None:
    """Async executes that end together are saved in one transaction (group commit); each must still
    give its ``max_async`` slot back, or the atoms after them wait for slots that never come free."""

    class Together(Task):
        async def execute(self, due: float) -> str:
            await asyncio.sleep(max(0.0, due - time.time()))  # both of a pair end at the same moment
            return self.name

    due = time.time() + 0.3
    flow = UnorderedFlow("f").add(
        *(Together(name=f"a{i}", provides=f"a{i}", inject={"due": due + 0.1 * (i // 2)}) for i in range(8))
    )
    backend = backends.fetch(f"sqlite:///{tmp_path}/flows.db")
    with backend.get_connection() as conn:
        conn.upgrade()
    engine = engines.load(flow, engine="parallel", max_workers=1, max_async=2, backend=backend, fence=1)
    finished = threading.Event()
    runner = threading.Thread(target=lambda: (engine.run(), finished.set()), daemon=True)
    runner.start()
    assert finished.wait(20), "the run stopped starting atoms: slots were not given back"
    assert [engine.storage.fetch(f"a{i}") for i in range(8)] == [f"a{i}" for i in range(8)]
