"""Events a task sends on its own notifier while it runs on a worker reach the engine's copy of the task.

TaskFlow relays them (its ``wbe_event_sender`` example prints them on the engine's side); so does
flowkit, as ``event`` messages (progress keeps its own ``progress`` message, and is handed on too).
"""

from __future__ import annotations

from typing import Any

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.engines import Engine
from flowkit.notifier import ANY

pytest.importorskip("kombu")

from tests.support.dispatchers import served_exchange, worker_options


class Announcer(Task):
    """Sends one event per letter, then one whose details cannot travel, then reports progress."""

    def execute(self, letters: str) -> str:
        for k, letter in enumerate(letters):
            self.notifier.notify(letter, {"left": letters[k:]})
        self.notifier.notify("not-json", {"value": {1, 2}})
        self.update_progress(0.5)
        return letters


def _run_on_a_worker(announcer: Announcer, letters: str) -> Engine:
    """Run ``announcer`` alone in a flow on a worker of its own over ``memory://`` (stopped before this
    returns, so all it logged is in), and give back the engine, whose copy of the task heard the events."""
    with served_exchange("fk-ev", "ev", [Announcer], threads=2) as exchange:
        engine = engines.load(
            LinearFlow("f").add(announcer), store={"letters": letters}, **worker_options(exchange, "ev")
        )
        engine.run()
    return engine


def test_events_sent_on_the_worker_reach_the_engine_task_notifier() -> None:
    heard: list[tuple[str, dict[str, Any]]] = []
    announcer = Announcer("announce")
    announcer.notifier.register(ANY, lambda event, details: heard.append((event, dict(details))))
    _run_on_a_worker(announcer, "abc")
    assert heard == [
        ("update_progress", {"progress": 0.0}),  # the engine's own, as it records RUNNING (TaskFlow's)
        ("a", {"left": "abc"}),
        ("b", {"left": "bc"}),
        ("c", {"left": "c"}),
        ("update_progress", {"progress": 0.5}),
        ("update_progress", {"progress": 1.0}),  # and as it records SUCCESS
    ]  # the event whose details are not JSON stays on the worker (logged there)


def test_a_task_nobody_listens_to_costs_the_engine_nothing(caplog: pytest.LogCaptureFixture) -> None:
    silent = Announcer("silent")
    engine = _run_on_a_worker(silent, "xy")
    assert engine.storage.fetch_all()["letters"] == "xy"
    assert "_notifier" not in silent.__dict__  # no notifier was made on the engine's side
    assert any("not-json" in r.getMessage() and "not JSON" in r.getMessage() for r in caplog.records)
