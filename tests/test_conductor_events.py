"""TaskFlow's conductor events (``conductor.notifier``): around each run of a job's flow and its outcome."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from flowkit.conductors import backends as conductors
from flowkit.jobboard import JobBoard
from flowkit.notifier import ANY
from tests.support.boards import board_is_empty
from tests.support.wait import wait_until


@pytest.fixture
def board_url(tmp_path: Path) -> str:
    """Conductor events need no service to be seen: a SQLite board alone (``board`` is conftest's)."""
    return f"sqlite:///{tmp_path}/board.db"


def _post(board: JobBoard, tmp_path: Path, name: str, delay: float = 0.0) -> None:
    store = {"job_key": name, "trace_dir": str(tmp_path), "delay": delay}
    board.post_flow("tests.job_flows:steps", store=store, factory_kwargs={"n": 2}, name=name)


def test_a_job_run_sends_running_start_running_end_then_job_consumed(board: JobBoard, tmp_path: Path) -> None:
    _post(board, tmp_path, "j1")
    cond = conductors.fetch("blocking", "ev-conductor", board, wait_timeout=0.1)
    seen: list[tuple[str, Mapping[str, Any]]] = []
    cond.notifier.register(ANY, lambda event, details: seen.append((event, details)))
    thread = threading.Thread(target=cond.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: board_is_empty(board), 20, "the job consumed")
        wait_until(lambda: len(seen) == 3, 5, "three events")
    finally:
        cond.stop()
        assert cond.wait(15)
    assert [event for event, _ in seen] == ["running_start", "running_end", "job_consumed"]
    for _, details in seen:
        assert set(details) == {"conductor", "job", "engine", "persistence"}
        assert details["job"].name == "j1" and details["conductor"] is cond.conductor
    assert seen[0][1]["engine"] is seen[1][1]["engine"] is not None


def test_stop_from_running_end_still_consumes_the_finished_job(board: JobBoard, tmp_path: Path) -> None:
    # TaskFlow's 99_bottles runs a conductor once this way: stop() from its own running_end event.
    _post(board, tmp_path, "once")
    cond = conductors.fetch("blocking", "ev-once", board, wait_timeout=0.1)
    events: list[str] = []

    def on_event(event: str, details: Mapping[str, Any]) -> None:
        events.append(event)
        if event == "running_end":
            cond.stop()

    cond.notifier.register(ANY, on_event)
    cond.run()  # returns by itself once the callback stopped it
    assert events == ["running_start", "running_end", "job_consumed"]
    assert board_is_empty(board)


def test_a_job_given_back_on_stop_sends_job_abandoned(board: JobBoard, tmp_path: Path) -> None:
    _post(board, tmp_path, "slow", delay=0.5)
    cond = conductors.fetch("blocking", "ev-stop", board, wait_timeout=0.1)
    events: list[str] = []
    cond.notifier.register(ANY, lambda event, details: events.append(event))
    thread = threading.Thread(target=cond.run, daemon=True)
    thread.start()
    wait_until(lambda: "running_start" in events, 20, "the job started")
    cond.stop()
    assert cond.wait(15)
    assert events[0] == "running_start" and events[-1] == "job_abandoned", events
    assert "job_consumed" not in events
