"""Reverting where it depends on the dispatcher or on a task's signature: simultaneous failures on threads,
a sibling still running, a junction, revert arguments. Revert order, exactly-once, failing reverts and
re-runs on every dispatcher are in ``test_engine_contract.py``."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from flowkit import LinearFlow, Task, UnorderedFlow, engines
from flowkit.exceptions import WrappedFailure
from flowkit.states import AtomState, FlowState
from tests.support.journal import Events


class DiskFull(Exception):
    """A task's own exception type."""


class Journal(Events):
    """Execute/revert calls kept in memory, in order: these tests hand tasks live objects (exceptions,
    barriers), so they run on threads only, where no journal file is needed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._events: list[tuple[str, str, dict[str, Any]]] = []

    @property
    def events(self) -> list[tuple[str, str, dict[str, Any]]]:
        with self.lock:
            return list(self._events)

    def add(self, kind: str, name: str, **data: Any) -> None:
        with self.lock:
            self._events.append((kind, name, data))


class Step(Task):
    """Records execute/revert; fails in execute or revert when asked; waits on a barrier if given."""

    def __init__(
        self,
        journal: Journal,
        fail: BaseException | None = None,
        revert_fail: BaseException | None = None,
        barrier: threading.Barrier | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.journal = journal
        self.fail = fail
        self.revert_fail = revert_fail
        self.barrier = barrier

    def execute(self, value):
        self.journal.add("execute", self.name, value=value)
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        if self.fail is not None:
            raise self.fail
        return f"{self.name}:{value}"

    def revert(self, value, result, flow_failures):
        self.journal.add("revert-start", self.name)
        self.journal.add("revert", self.name, value=value, result=result, flow_failures=flow_failures)
        if self.revert_fail is not None:
            raise self.revert_fail
        self.journal.add("revert-end", self.name)


def step(journal: Journal, name: str, value: Any = None, **kwargs: Any) -> Step:
    return Step(journal, name=name, inject={"value": value if value is not None else name}, **kwargs)


@pytest.fixture
def journal() -> Journal:
    return Journal()


def test_revert_without_special_args_is_called_without_them():
    got: list[dict[str, Any]] = []

    class Plain(Task):
        def execute(self, x):
            return x

        def revert(self, x):
            got.append({"x": x})

    class Boom(Task):
        def execute(self):
            raise DiskFull("boom")

    with pytest.raises(DiskFull):
        engines.run(LinearFlow("f").add(Plain(name="plain"), Boom(name="boom")), store={"x": 3})
    assert got == [{"x": 3}]


def test_parallel_engine_two_simultaneous_failures_wrapped(journal):
    barrier = threading.Barrier(2)
    flow = LinearFlow("f").add(
        step(journal, "before"),
        UnorderedFlow("u").add(
            step(journal, "f1", fail=DiskFull("one"), barrier=barrier),
            step(journal, "f2", fail=KeyError("two"), barrier=barrier),
        ),
        step(journal, "after"),
    )
    engine = engines.load(flow, engine="parallel", max_workers=4)
    with pytest.raises(WrappedFailure) as info:
        engine.run()
    failures = list(info.value)
    assert len(failures) == 2
    assert {f.atom_name for f in failures} == {"f1", "f2"}
    assert [f.atom_name for f in info.value if f.check(DiskFull)] == ["f1"]
    assert [f.atom_name for f in info.value if f.check(KeyError)] == ["f2"]
    assert engine.storage.get_flow_state() is FlowState.REVERTED
    assert sorted(journal.names("revert")) == ["before", "f1", "f2"]
    assert journal.names("revert")[-1] == "before"
    for name in ("f1", "f2"):
        assert set(journal.data("revert", name)["flow_failures"]) == {"f1", "f2"}
    assert engine.storage.get_atom_state("after") is AtomState.PENDING


def test_atom_still_running_when_a_sibling_fails_is_reverted_too(journal):
    class Slow(Step):
        def execute(self, value):
            time.sleep(0.2)
            return super().execute(value)

    flow = LinearFlow("f").add(
        UnorderedFlow("u").add(
            step(journal, "fast", fail=DiskFull("fast")), Slow(journal, name="slow", inject={"value": 1})
        ),
        step(journal, "after"),
    )
    engine = engines.load(flow, engine="parallel", max_workers=2)
    with pytest.raises(DiskFull):
        engine.run()
    assert sorted(journal.names("revert")) == ["fast", "slow"]
    assert journal.data("revert", "slow")["result"] == "slow:1"
    assert engine.storage.get_atom_state("slow") is AtomState.REVERTED
    assert engine.storage.get_atom_state("after") is AtomState.PENDING


def test_parallel_revert_through_a_junction(journal):
    first = [step(journal, f"first-{i}") for i in range(20)]
    second = [step(journal, f"second-{i}") for i in range(20)]
    flow = LinearFlow("f").add(
        UnorderedFlow("g1").add(*first),
        UnorderedFlow("g2").add(*second),
        step(journal, "boom", fail=DiskFull("late")),
    )
    with pytest.raises(DiskFull):
        engines.run(flow, engine="parallel", max_workers=4)
    order = journal.names("revert")
    assert len(order) == 41
    assert order[0] == "boom"
    assert all(n.startswith("second-") for n in order[1:21])
    assert all(n.startswith("first-") for n in order[21:])
