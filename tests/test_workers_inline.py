"""A worker's loop thread runs a call itself when nothing else runs (no hand-off to a pool thread, see
``flowkit.workers.standby``), and its loop goes on meanwhile: a long call is taken over by the standby,
which keeps serving other requests; a call with a timeout still goes to a pool thread."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowkit import LinearFlow, engines
from flowkit.workers import Worker
from tests import worker_tasks as wt
from tests.support.background import Background
from tests.support.dispatchers import worker_options
from tests.support.workers import TASK_MODULES, memory_worker

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
        store={"marker_dir": str(tmp_path), "seconds": 1.0},
    )
    run = Background(slow.run, name="slow")
    deadline = time.monotonic() + 5
    while not (tmp_path / "started-nap").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    names = _names(exchange, 3)  # served by the standby's rounds, on pool threads, while the nap runs
    assert time.monotonic() - started < 0.8
    assert all(name.startswith("flowkit-worker_") for name in names), names
    assert run.wait(10) and not run.errors
    assert slow.storage.fetch("slept") == 1.0
    assert _names(exchange, 1) == [LOOP_THREAD]  # the loop's thread is back, and idle again
