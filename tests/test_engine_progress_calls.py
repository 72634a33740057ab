"""The engine calls ``update_progress(0.0)``/``(1.0)`` on its copy of a task as it records RUNNING and
SUCCESS (REVERTING/REVERTED for a revert), as TaskFlow's engine does: only for tasks that can observe
it (an overriding class, or listeners on ``task.notifier``)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.engines.task_progress import progress_nodes
from flowkit.notifier import EVENT_UPDATE_PROGRESS


class Loud(Task):
    """Overrides ``update_progress`` to keep what it was told, and in which thread."""

    def __init__(self, name: str, fail: bool = False) -> None:
        super().__init__(name)
        self.told: list[tuple[float, str]] = []
        self.fail = fail

    def update_progress(self, progress: float) -> None:
        self.told.append((progress, threading.current_thread().name))
        super().update_progress(progress)

    def execute(self) -> None:
        if self.fail:
            raise RuntimeError("boom")


class Quiet(Task):
    def execute(self) -> None:
        return None


@pytest.mark.parametrize("kind", ["serial", "parallel"])
def test_an_overriding_task_is_told_start_and_end_in_the_engine_thread(kind: str) -> None:
    loud = Loud("loud")
    engines.load(LinearFlow("f").add(loud), engine=kind).run()
    assert [p for p, _ in loud.told] == [0.0, 1.0]
    assert {t for _, t in loud.told} == {threading.current_thread().name}


def test_a_failed_then_reverted_task_hears_its_revert_start_and_end() -> None:
    loud = Loud("loud", fail=True)
    with pytest.raises(RuntimeError):
        engines.load(LinearFlow("f").add(loud)).run()
    assert [p for p, _ in loud.told] == [0.0, 0.0, 1.0]  # RUNNING, REVERTING, REVERTED


def test_notifier_listeners_hear_the_engine_progress_once() -> None:
    task = Quiet("q")
    heard: list[Any] = []
    task.notifier.register(EVENT_UPDATE_PROGRESS, lambda _e, details: heard.append(details["progress"]))
    engines.load(LinearFlow("f").add(task)).run()
    assert heard == [0.0, 1.0]


def test_only_tasks_that_can_observe_it_are_told() -> None:
    flow = LinearFlow("f").add(Quiet("a"), Loud("b"), Quiet("c"))
    engine = engines.load(flow)
    compiled = engine.compile()
    assert {compiled.names[i] for i in progress_nodes(compiled)} == {"b"}


def test_the_engine_progress_call_does_not_reach_an_enclosing_task() -> None:
    """An engine run inside a task: the inner task's 0.0/1.0 are not the outer task's progress."""
    outer_heard: list[float] = []

    class Outer(Task):
        def execute(self) -> None:
            engines.load(LinearFlow("inner").add(Loud("in"))).run()

    outer = Outer("outer")
    engine = engines.load(LinearFlow("f").add(outer))
    engine.atom_notifier.register(
        EVENT_UPDATE_PROGRESS, lambda _e, details: outer_heard.append(details["progress"])
    )
    engine.run()
    assert outer_heard == []


def test_tasks_whose_results_are_saved_together_are_each_told_the_end(tmp_path: Any) -> None:
    """With SQL persistence the parallel engine saves completions that arrive together in one
    transaction (group commit); each of those tasks still hears 1.0, as one saved alone does."""
    from flowkit import UnorderedFlow
    from flowkit.persistence import backends

    gate = threading.Barrier(6)

    class LoudTogether(Loud):
        def execute(self) -> None:
            gate.wait(10)  # every one ends at the same moment: their completions queue together

    tasks = [LoudTogether(f"t{i}") for i in range(6)]
    backend = backends.fetch(f"sqlite:///{tmp_path}/flows.db")
    with backend.get_connection() as conn:
        conn.upgrade()
    engines.load(UnorderedFlow("f").add(*tasks), engine="parallel", max_workers=6, backend=backend).run()
    assert [[p for p, _ in t.told] for t in tasks] == [[0.0, 1.0]] * 6
