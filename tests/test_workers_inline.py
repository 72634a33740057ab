"""A worker's loop thread runs a call itself when nothing else runs (no hand-off to a pool thread, see
``flowkit.workers.standby``), and its loop goes on meanwhile: a long call is taken over by the standby,
which keeps serving other requests; a call with a timeout still goes to a pool thread."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest

from flowkit import LinearFlow, engines
from flowkit.exceptions import FlowkitError
from flowkit.workers import Worker, topology
from flowkit.workers.call import call_task
from tests import worker_tasks as wt
from tests.support.background import Background
from tests.support.dispatchers import worker_options
from tests.support.workers import MEMORY_OPTIONS, MEMORY_TRANSPORT, TASK_MODULES, memory_worker

TOPIC = "inline"
LOOP_THREAD = f"memory-worker-{TOPIC}"


@pytest.fixture
def exchange() -> str:
    return f"fk-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def worker(exchange: str) -> Iterator[Worker]:
    with memory_worker(exchange, TOPIC, TASK_MODULES) as w:
        yield w


def _names(exchange: str, n: int, **atom: Any) -> list[str]:
    flow = LinearFlow("f").add(*(wt.ThreadName(name=f"t{i}", provides=f"name{i}", **atom) for i in range(n)))
    engine = engines.load(flow, **worker_options(exchange, TOPIC, 5.0))
    engine.run()
    return [engine.storage.fetch(f"name{i}") for i in range(n)]


def test_a_call_on_an_idle_worker_runs_on_the_loops_thread(worker: Worker, exchange: str) -> None:
    assert _names(exchange, 5) == [LOOP_THREAD] * 5


def test_a_call_with_a_timeout_runs_on_a_pool_thread(worker: Worker, exchange: str) -> None:
    names = _names(exchange, 3, timeout=5.0)  # it may be abandoned: the loop's thread must not hang in it
    assert all(name.startswith("flowkit-worker_") for name in names), names


def test_the_loop_is_taken_over_while_its_thread_runs_a_long_call(
    worker: Worker, exchange: str, tmp_path: Path
) -> None:
    slow = engines.load(
        LinearFlow("slow").add(wt.Sleepy(name="nap")),
        **worker_options(exchange, TOPIC, 5.0),
        store={"marker_dir": str(tmp_path), "seconds": 2.0},
    )
    run = Background(slow.run, name="slow")
    deadline = time.monotonic() + 5
    while not (tmp_path / "started-nap").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    names = _names(exchange, 3)  # served by the standby's rounds, on pool threads, while the nap runs
    assert not run.done.is_set(), "the other calls waited for the call on the loop's thread"
    assert all(name.startswith("flowkit-worker_") for name in names), names
    assert run.wait(10) and not run.errors
    assert slow.storage.fetch("slept") == 2.0
    assert _names(exchange, 1) == [LOOP_THREAD]  # the loop's thread is back, and idle again


def test_a_keyboard_interrupt_in_a_call_on_the_loops_thread_stops_the_worker(exchange: str) -> None:
    """On the loop's thread (a program's main thread, often) Ctrl-C stops the worker, as it does while
    that thread waits for the broker; on a task thread it is the call's failure, as any exception."""
    worker = Worker(
        MEMORY_TRANSPORT,
        exchange,
        TOPIC,
        list(TASK_MODULES),
        threads=2,
        heartbeat=0.2,
        transport_options=MEMORY_OPTIONS,
    )
    raised: list[BaseException] = []

    def serve() -> None:
        try:
            worker.run()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=serve, name=LOOP_THREAD, daemon=True)
    thread.start()
    assert worker.ready.wait(5)
    flow = LinearFlow("f").add(wt.Interrupted(name="ctrl-c"))
    engine = engines.load(flow, **worker_options(exchange, TOPIC, 1.0))
    with pytest.raises(FlowkitError):  # its worker is gone: the engine fails the call (no worker answers)
        engine.run()
    thread.join(10)
    assert not thread.is_alive() and len(raised) == 1 and isinstance(raised[0], KeyboardInterrupt)


def test_a_keyboard_interrupt_on_a_task_thread_fails_the_call(exchange: str) -> None:
    failure = call_task(
        wt.Interrupted, {"uuid": "u", "atom": "a", "action": "execute", "arguments": {}}, {}, "r", "w", print
    )
    assert b'"ok": false' in failure and b"KeyboardInterrupt" in failure
    with pytest.raises(KeyboardInterrupt):
        call_task(
            wt.Interrupted,
            {"uuid": "u", "atom": "a", "action": "execute", "arguments": {}},
            {},
            "r",
            "w",
            print,
            True,
        )


@pytest.mark.rabbitmq
def test_over_amqp_a_request_that_comes_during_a_call_is_taken_at_once(
    rabbitmq_url: str, exchange: str, tmp_path: Path
) -> None:
    """Over a socket the standby waits on it: a request that comes while the loop's thread runs a call
    is served on a pool thread while that call still runs, and the loop's thread serves again after."""
    worker = Worker(rabbitmq_url, exchange, TOPIC, list(TASK_MODULES), threads=2, heartbeat=0.2)
    thread = threading.Thread(target=worker.run, name=LOOP_THREAD, daemon=True)
    thread.start()
    try:
        assert worker.ready.wait(10)
        options = worker_options(exchange, TOPIC, 10.0, transport=rabbitmq_url)
        slow = engines.load(
            LinearFlow("slow").add(wt.Sleepy(name="nap")),
            **options,
            store={"marker_dir": str(tmp_path), "seconds": 2.0},
        )
        run = Background(slow.run, name="slow")
        deadline = time.monotonic() + 10
        while not (tmp_path / "started-nap").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        flow = LinearFlow("f").add(*(wt.ThreadName(name=f"t{i}", provides=f"name{i}") for i in range(3)))
        quick = engines.load(flow, **options)
        quick.run()
        assert not run.done.is_set(), "the other calls waited for the call on the loop's thread"
        names = [quick.storage.fetch(f"name{i}") for i in range(3)]
        assert all(name.startswith("flowkit-worker_") for name in names), names
        assert run.wait(10) and not run.errors
        again = engines.load(LinearFlow("g").add(wt.ThreadName(name="t", provides="name")), **options)
        again.run()
        assert again.storage.fetch("name") == LOOP_THREAD
    finally:
        worker.stop()
        thread.join(15)
        with kombu.Connection(rabbitmq_url) as conn:
            topology.delete_exchanges(conn.channel(), exchange)
    assert not thread.is_alive()
