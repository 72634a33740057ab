"""``Dispatcher.start(on_progress)``: each run begins clean and gets its own progress callback."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from flowkit import FunctorTask, UnorderedFlow, engines, notifier
from flowkit.engines.dispatch import EXECUTE, Dispatcher
from flowkit.states import AtomState, EngineState, FlowState


def test_a_run_aborted_by_an_exception_leaves_no_completions_for_the_next_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first run is abandoned while "slow" runs; its completion must not reach the second run."""
    slow_started = threading.Event()
    calls: dict[str, int] = {"fast": 0, "slow": 0}

    def fast() -> int:
        calls["fast"] += 1
        return 1

    def slow() -> str:
        calls["slow"] += 1
        slow_started.set()
        time.sleep(0.6)
        return f"call {calls['slow']}"

    flow = UnorderedFlow("leftovers").add(
        FunctorTask(fast, name="fast", provides="f"), FunctorTask(slow, name="slow", provides="s")
    )
    eng = engines.load(flow, engine="parallel", executor="threads", max_workers=2)
    steps = eng.run_iter()
    assert next(steps) is EngineState.RESUMING
    while next(steps) in EngineState and eng.storage.get_atom_state("fast") is not AtomState.SUCCESS:
        pass
    assert slow_started.wait(5)
    assert eng.storage.get_atom_state("slow") is AtomState.RUNNING
    steps.close()  # the run ends by an exception (GeneratorExit) while "slow" still runs
    assert eng.storage.flow_state is FlowState.SUSPENDED

    finished: list[str] = []

    def on_atom(state: Any, details: dict[str, Any]) -> None:
        if state is AtomState.SUCCESS:
            finished.append(details["atom_name"])

    eng.atom_notifier.register(notifier.ANY, on_atom)
    with caplog.at_level("WARNING", logger="flowkit.engines.dispatch"):
        eng.run()
    assert finished == ["slow"]  # once: not the first run's completion, then its own
    assert eng.storage.flow_state is FlowState.SUCCESS
    assert eng.storage.fetch_all()["s"] == "call 2"  # the second run's own call, not a stale one
    assert calls == {"fast": 1, "slow": 2}  # at-least-once: the interrupted call runs again
    assert any("left by a previous run" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("kind", ["serial", "worker-based"])
def test_start_drops_completions_left_in_the_inline_queue(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The serial and worker dispatchers keep completions in a deque: a new run starts with it empty."""
    if kind == "serial":
        d: Dispatcher = Dispatcher()
    else:
        from flowkit.workers.dispatcher import WorkerDispatcher

        d = WorkerDispatcher("memory://", f"start-{uuid.uuid4().hex[:8]}", ["t"], transition_timeout=5)
    d._done.append((0, EXECUTE, True, "stale"))
    with caplog.at_level("WARNING", logger="flowkit.engines.dispatch"):
        d.start(lambda _i, _v: None)
    try:
        assert d.wait(0.01) is None
        assert any("node 0 execute" in r.getMessage() for r in caplog.records)
    finally:
        d.stop()


async def _answer() -> int:
    return 42


def test_an_async_completion_left_by_a_cut_short_serial_run_is_not_taken_for_the_next_call() -> None:
    """The serial dispatcher runs async calls on its own thread's loop and queues their outcome like any
    inline call: one left there by an interrupted run must not answer the next run's async call."""
    d = Dispatcher()
    d._done.append((0, EXECUTE, False, "stale: left by the previous run"))
    d.start(lambda _i, _v: None)
    try:
        d.submit(1, FunctorTask(_answer, name="answer"), EXECUTE, {})
        assert d.wait(0) == (1, EXECUTE, True, 42)
    finally:
        d.stop()
