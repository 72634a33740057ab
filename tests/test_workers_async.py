"""Async tasks and timeouts on real ``flowkit-worker`` processes over the shared RabbitMQ.

A worker awaits ``async def`` actions on its own event loop and cancels them there at their timeout; a
sync call past its timeout is abandoned (its thread cannot be killed) and the engine fails the request at
the deadline whatever the worker does. The tasks write what happened to a journal file, which the worker
processes and the test share.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from flowkit import LinearFlow, UnorderedFlow
from flowkit.exceptions import AtomTimeout, NoWorkerAvailable
from flowkit.states import AtomState, FlowState
from tests.support.journal import Journal
from tests.support.tasks import AsyncStep, DiskFull, Sleepy, Step
from tests.support.wait import wait_until
from tests.support.worker_processes import worker_exchange, worker_spawner
from tests.test_workers_rabbitmq import load

pytestmark = pytest.mark.rabbitmq

exchange = pytest.fixture(worker_exchange, name="exchange")
spawn = pytest.fixture(worker_spawner, name="spawn")

WORKER_LOOP = "flowkit-worker-async"


def async_step(name: str, timeout: float | None = None, **args: Any) -> AsyncStep:
    return AsyncStep(name=name, provides=name, inject={"value": name, **args}, timeout=timeout)


def test_async_tasks_run_on_the_workers_event_loop(
    rabbitmq_url: str, exchange: str, spawn: Any, journal: Journal
) -> None:
    spawn(threads=2).wait_ready()
    flow = UnorderedFlow("async").add(*(async_step(f"a{i}", pause=0.2) for i in range(4)))
    engine = load(flow, rabbitmq_url, exchange, store={"journal": str(journal)})
    engine.run()
    for i in range(4):
        value, thread = engine.storage.fetch(f"a{i}")
        assert value == f"a{i}:a{i}" and thread == WORKER_LOOP


def test_a_one_thread_worker_runs_many_async_tasks_at_once(
    rabbitmq_url: str, exchange: str, spawn: Any, journal: Journal
) -> None:
    """150 tasks awaiting 1 s each on a worker with ONE thread and 100 async slots (the default): one
    after the other they would take 150 s; on the worker's loop they take two rounds of about 1 s."""
    spawn(threads=1).wait_ready()
    n = 150
    flow = UnorderedFlow("many").add(*(async_step(f"a{i}", pause=1.0) for i in range(n)))
    engine = load(flow, rabbitmq_url, exchange, store={"journal": str(journal)})
    started = time.monotonic()
    engine.run()
    assert time.monotonic() - started < 20
    assert {engine.storage.fetch(f"a{i}")[1] for i in range(n)} == {WORKER_LOOP}
    assert len(journal.names("execute")) == n


def test_an_async_failure_is_reverted_by_the_async_revert_on_the_worker(
    rabbitmq_url: str, exchange: str, spawn: Any, journal: Journal
) -> None:
    spawn(threads=2).wait_ready()
    flow = LinearFlow("f").add(async_step("a"), async_step("b", fail="async disk full"))
    engine = load(flow, rabbitmq_url, exchange, store={"journal": str(journal)})
    with pytest.raises(DiskFull, match="async disk full"):
        engine.run()
    assert journal.names("revert") == ["b", "a"]
    assert engine.storage.get_flow_state() is FlowState.REVERTED


def test_a_hung_async_task_is_cancelled_on_the_worker_which_keeps_serving(
    rabbitmq_url: str, exchange: str, spawn: Any, journal: Journal
) -> None:
    worker = spawn(threads=1).wait_ready()
    flow = LinearFlow("hang").add(async_step("hang", timeout=1.0, pause=60))
    engine = load(flow, rabbitmq_url, exchange, store={"journal": str(journal)})
    started = time.monotonic()
    with pytest.raises(AtomTimeout, match="execute of atom 'hang'"):
        engine.run()
    assert time.monotonic() - started < 8
    wait_until(lambda: journal.names("cancelled") == ["hang"], 5, "the worker to cancel the coroutine")
    assert engine.storage.get_atom_state("hang") is AtomState.REVERTED
    assert journal.names("revert") == ["hang"]  # on the same single-threaded worker: nothing was stuck
    # The worker's one request slot is free again: a second flow runs on it at once.
    again = load(
        LinearFlow("again").add(async_step("ok")), rabbitmq_url, exchange, store={"journal": str(journal)}
    )
    again.run()
    assert again.storage.fetch("ok")[0] == "ok:ok"
    assert worker.proc.poll() is None and "abandoned" not in worker.text()


def test_a_revert_past_its_timeout_on_a_worker_leaves_revert_failure(
    rabbitmq_url: str, exchange: str, spawn: Any, journal: Journal
) -> None:
    spawn(threads=2).wait_ready()
    flow = LinearFlow("f").add(
        Sleepy(name="stuck", inject={"revert_pause": 30.0}, timeout=1.0),
        Step(name="boom", inject={"value": "boom", "fail": "no"}),
    )
    engine = load(flow, rabbitmq_url, exchange, store={"journal": str(journal)})
    with pytest.raises(AtomTimeout, match="revert of atom 'stuck'") as info:
        engine.run()
    assert str(info.value.__context__) == "no"  # what the flow was reverting because of
    assert engine.storage.get_atom_state("stuck") is AtomState.REVERT_FAILURE
    assert engine.storage.get_flow_state() is FlowState.FAILURE
    assert journal.names("revert-start") == ["boom", "stuck"] and "stuck" not in journal.names("revert-end")


def test_an_async_revert_past_its_timeout_is_cancelled_on_the_worker(
    rabbitmq_url: str, exchange: str, spawn: Any, journal: Journal
) -> None:
    spawn(threads=2).wait_ready()
    flow = LinearFlow("f").add(async_step("a", timeout=1.0, revert_pause=60), async_step("b", fail="x"))
    engine = load(flow, rabbitmq_url, exchange, store={"journal": str(journal)})
    with pytest.raises(AtomTimeout, match="revert of atom 'a'") as info:
        engine.run()
    assert str(info.value.__context__) == "x"
    assert engine.storage.get_atom_state("a") is AtomState.REVERT_FAILURE
    wait_until(lambda: journal.names("revert-cancelled") == ["a"], 5, "the worker to cancel the revert")


def test_a_worker_started_with_max_async_0_is_sent_no_async_task(
    rabbitmq_url: str, exchange: str, spawn: Any, journal: Journal
) -> None:
    spawn(threads=2, max_async=0).wait_ready()
    flow = LinearFlow("f").add(Step(name="sync", inject={"value": 1}), async_step("a"))
    engine = load(flow, rabbitmq_url, exchange, timeout=2.0, store={"journal": str(journal)})
    with pytest.raises(NoWorkerAvailable, match="AsyncStep"):
        engine.run()
    assert journal.names("execute") == ["sync"]  # the sync task ran on a thread; the async one nowhere


def test_async_slots_do_not_let_a_worker_run_more_sync_tasks_than_its_threads(
    rabbitmq_url: str, exchange: str, spawn: Any, journal: Journal
) -> None:
    """The async slots are a consumer of their own: a one-thread worker still runs one sync task at a time
    (the broker hands it one sync request at a time), while async tasks run beside it."""
    spawn(threads=1).wait_ready()
    flow = UnorderedFlow("mixed").add(
        *(Sleepy(name=f"s{i}", inject={"pause": 0.3}) for i in range(4)),
        *(async_step(f"a{i}", pause=0.5) for i in range(4)),
    )
    engine = load(flow, rabbitmq_url, exchange, store={"journal": str(journal)})
    engine.run()
    sync_events = [
        (kind, name) for kind, name, _ in journal.events if kind in ("execute-start", "execute-end")
    ]
    for start, end in zip(sync_events[::2], sync_events[1::2], strict=True):
        assert start[0] == "execute-start" and end == ("execute-end", start[1]), sync_events  # no overlap
    assert len(journal.names("execute")) == 4
