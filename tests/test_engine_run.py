"""Running flows where it depends on the serial or threaded engine: laziness, task reuse, suspending from
another thread, bad options. Results, life cycle, storage, re-runs, suspend and resume on every dispatcher
are in ``test_engine_contract.py``."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from flowkit import FunctorTask, LinearFlow, Task, engines
from flowkit.exceptions import InvalidFlowError, NotFound
from flowkit.states import AtomState, FlowState


class Counting:
    """Makes tasks that count their executions."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.order: list[str] = []
        self.lock = threading.Lock()

    def task(self, name: str, provides: Any = None, requires: tuple[str, ...] = (), value: Any = None):
        def execute(**kwargs: Any) -> Any:
            with self.lock:
                self.calls[name] += 1
                self.order.append(name)
            return value if value is not None else f"{name}-result"

        return FunctorTask(execute, name=name, provides=provides, requires=list(requires))


@pytest.fixture
def counting() -> Counting:
    return Counting()


def test_run_iter_is_lazy(counting):
    flow = LinearFlow("f").add(counting.task("a"), counting.task("b"), counting.task("c"))
    it = engines.load(flow).run_iter()
    next(it)
    assert sum(counting.calls.values()) < 3
    for _ in it:
        pass
    assert counting.calls == {"a": 1, "b": 1, "c": 1}


def test_fetch_before_run_sees_only_the_store(counting):
    engine = engines.load(LinearFlow("f").add(counting.task("a", provides="x")), store={"s": 1})
    assert engine.storage.fetch_all() == {"s": 1}
    with pytest.raises(NotFound):
        engine.storage.fetch("x")


def test_task_class_instance_runs_in_its_own_engines(counting):
    class Hello(Task):
        default_provides = "greeting"

        def execute(self, who):
            return f"hello {who}"

    task = Hello(name="hello")
    assert engines.run(LinearFlow("one").add(task), store={"who": "a"})["greeting"] == "hello a"
    assert engines.run(LinearFlow("two").add(task), store={"who": "b"})["greeting"] == "hello b"


def test_suspend_from_another_thread_under_parallel_engine(counting):
    release = threading.Event()
    engine_box: list[engines.Engine] = []

    def blocker():
        # suspend from a worker thread while this atom is running: it finishes, nothing new starts
        engine_box[0].suspend()
        release.set()
        return "blocked"

    flow = LinearFlow("f").add(
        counting.task("a"),
        FunctorTask(blocker, name="blocker"),
        counting.task("c"),
        counting.task("d"),
    )
    engine = engines.load(flow, engine="parallel", max_workers=2)
    engine_box.append(engine)
    engine.run()
    assert release.is_set()
    assert engine.storage.get_flow_state() is FlowState.SUSPENDED
    assert engine.storage.get_atom_state("blocker") is AtomState.SUCCESS
    assert engine.storage.get_atom_state("c") is AtomState.PENDING
    engine.run()
    assert engine.storage.get_flow_state() is FlowState.SUCCESS
    assert counting.calls == {"a": 1, "c": 1, "d": 1}


def test_unknown_engine_and_options_are_rejected():
    flow = LinearFlow("f")
    with pytest.raises(InvalidFlowError, match="bogus"):
        engines.load(flow, engine="bogus")
    with pytest.raises(InvalidFlowError, match="frobnicate"):
        engines.load(flow, frobnicate=True)
    with pytest.raises(InvalidFlowError):
        engines.load(flow, engine="serial", executor="threads")
    with pytest.raises(InvalidFlowError, match="max_workers"):
        engines.load(flow, engine="parallel", max_workers=0)
