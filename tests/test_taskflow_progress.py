"""Task progress as TaskFlow reports it: the engine's 0.0/1.0 around each call on the task's own
notifier, and ``storage.get_task_progress`` / ``get_task_progress_details``."""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.notifier import EVENT_UPDATE_PROGRESS
from tests.support.persistence import fresh_backend, saved_flow


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


def test_a_task_that_reported_progress_has_it_in_its_saved_metadata(tmp_path: object) -> None:
    backend = fresh_backend(f"sqlite:///{tmp_path}/fk.db")
    engine = engines.load(
        LinearFlow("f").add(Steps("t"), WithDetails("w")), store={"steps": 3}, backend=backend
    )
    engine.run()
    saved = saved_flow(backend, engine.storage.flow_uuid)
    meta = {name: saved.find(engine.storage.get_atom_uuid(name)).meta for name in ("t", "w")}  # type: ignore[union-attr]
    assert meta["t"] == {"progress": 1.0, "progress_details": None}
    assert meta["w"] == {
        "progress": 1.0,
        "progress_details": {"at_progress": 0.5, "details": {"test": "data"}},
    }


def test_a_task_that_never_reports_gets_no_metadata_write(tmp_path: object) -> None:
    class Quiet(Task):
        def execute(self) -> None:
            pass

    backend = fresh_backend(f"sqlite:///{tmp_path}/fk.db")
    engine = engines.load(LinearFlow("f").add(Quiet("q")), backend=backend)
    engine.run()
    assert engine.storage.get_task_progress("q") == 1.0
    saved = saved_flow(backend, engine.storage.flow_uuid)
    assert saved.find(engine.storage.get_atom_uuid("q")).meta == {}  # type: ignore[union-attr]
