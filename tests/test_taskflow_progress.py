"""Task progress as TaskFlow reports it: the engine's 0.0/1.0 around each call on the task's own
notifier, and ``storage.get_task_progress`` / ``get_task_progress_details``."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.notifier import EVENT_UPDATE_PROGRESS


class Steps(Task):
    def execute(self, steps: int) -> None:
        for n in range(1, steps):
            self.update_progress(n / steps)


class WithDetails(Task):
    def execute(self) -> None:
        self.notifier.notify(EVENT_UPDATE_PROGRESS, {"progress": 0.5, "test": "data"})


class Boom(Task):
    def execute(self) -> None:
        raise RuntimeError("boom")

    def revert(self, **kwargs: Any) -> None:
        pass


def _listen(task: Task) -> list[float]:
    seen: list[float] = []
    task.notifier.register(EVENT_UPDATE_PROGRESS, lambda event, details: seen.append(details["progress"]))
    return seen


@pytest.mark.parametrize("engine", ["serial", "parallel"])
@pytest.mark.parametrize(("steps", "expected"), [(0, [0.0, 1.0]), (4, [0.0, 0.25, 0.5, 0.75, 1.0])])
def test_a_listened_task_hears_0_before_and_1_after_its_execute(
    engine: str, steps: int, expected: list[float]
) -> None:
    task = Steps("t")
    seen = _listen(task)
    engines.load(LinearFlow("f").add(task), store={"steps": steps}, engine=engine).run()
    assert seen == expected


def test_a_failed_execute_ends_without_1_and_its_revert_is_bracketed() -> None:
    task = Boom("b")
    seen = _listen(task)
    with pytest.raises(RuntimeError):
        engines.load(LinearFlow("f").add(task)).run()
    assert seen == [0.0, 0.0, 1.0]  # execute started; revert started and finished


def test_storage_progress_follows_the_task() -> None:
    engine = engines.load(LinearFlow("f").add(Steps("t")), store={"steps": 3})
    assert engine.storage.get_task_progress("t") == 0.0
    engine.run()
    assert engine.storage.get_task_progress("t") == 1.0
    assert engine.storage.get_task_progress_details("t") is None


def test_progress_sent_with_details_keeps_them_in_storage() -> None:
    engine = engines.load(LinearFlow("f").add(WithDetails("w")))
    engine.run()
    assert engine.storage.get_task_progress("w") == 1.0
    assert engine.storage.get_task_progress_details("w") == {"at_progress": 0.5, "details": {"test": "data"}}


def test_progress_while_running_is_the_last_report() -> None:
    seen: list[float] = []

    class Peek(Task):
        def execute(self) -> None:
            self.update_progress(0.4)
            seen.append(engine.storage.get_task_progress("p"))

    engine = engines.load(LinearFlow("f").add(Peek("p")))
    engine.run()
    assert seen == [0.4]
