"""Events a task sends on its own notifier while it runs on a worker reach the engine's copy of the task.

TaskFlow relays them (its ``wbe_event_sender`` example prints them on the engine's side); so does
flowkit, as ``event`` messages (progress keeps its own ``progress`` message, and is handed on too).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from flowkit import LinearFlow, Task, engines
from flowkit.notifier import ANY

pytest.importorskip("kombu")

from tests.support.workers import MEMORY_OPTIONS, MEMORY_TRANSPORT, memory_worker


class Announcer(Task):
    """Sends one event per letter, then one whose details cannot travel, then reports progress."""

    def execute(self, letters: str) -> str:
        for k, letter in enumerate(letters):
            self.notifier.notify(letter, {"left": letters[k:]})
        self.notifier.notify("not-json", {"value": {1, 2}})
        self.update_progress(0.5)
        return letters


def test_events_sent_on_the_worker_reach_the_engine_task_notifier() -> None:
    exchange = f"fk-ev-{uuid.uuid4().hex[:10]}"
    heard: list[tuple[str, dict[str, Any]]] = []
    announcer = Announcer("announce")
    announcer.notifier.register(ANY, lambda event, details: heard.append((event, dict(details))))
    with memory_worker(exchange, "ev", [Announcer]):
        engine = engines.load(
            LinearFlow("f").add(announcer),
            store={"letters": "abc"},
            engine="worker-based",
            transport=MEMORY_TRANSPORT,
            transport_options=MEMORY_OPTIONS,
            exchange=exchange,
            topics=["ev"],
            transition_timeout=10,
        )
        engine.run()
    assert heard == [
        ("update_progress", {"progress": 0.0}),  # the engine's own, as it records RUNNING (TaskFlow's)
        ("a", {"left": "abc"}),
        ("b", {"left": "bc"}),
        ("c", {"left": "c"}),
        ("update_progress", {"progress": 0.5}),
        ("update_progress", {"progress": 1.0}),  # and as it records SUCCESS
    ]  # the event whose details are not JSON stays on the worker (logged there)


def test_a_task_nobody_listens_to_costs_the_engine_nothing(caplog: pytest.LogCaptureFixture) -> None:
    exchange = f"fk-ev-{uuid.uuid4().hex[:10]}"
    silent = Announcer("silent")
    with memory_worker(exchange, "ev", [Announcer]):
        engine = engines.load(
            LinearFlow("f").add(silent),
            store={"letters": "xy"},
            engine="worker-based",
            transport=MEMORY_TRANSPORT,
            transport_options=MEMORY_OPTIONS,
            exchange=exchange,
            topics=["ev"],
            transition_timeout=10,
        )
        engine.run()
    assert engine.storage.fetch_all()["letters"] == "xy"
    assert "_notifier" not in silent.__dict__  # no notifier was made on the engine's side
    assert any("not-json" in r.getMessage() and "not JSON" in r.getMessage() for r in caplog.records)
