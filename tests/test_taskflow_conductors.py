"""TaskFlow's conductor API (``flowkit.conductors.backends``) over flowkit's conductor, on a SQLite board."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from flowkit.conductors import backends as conductors
from flowkit.exceptions import ConductorError
from flowkit.jobboard import JobBoard, JobState
from flowkit.jobboard import backends as boards
from tests.support.boards import board_is_empty
from tests.support.wait import wait_until


@pytest.fixture
def board_url(tmp_path: Path) -> str:
    """TaskFlow's conductor API needs no service: a SQLite board alone (``board`` is conftest's)."""
    return f"sqlite:///{tmp_path}/board.db"


@pytest.mark.parametrize("kind", ["blocking", "nonblocking"])
def test_run_consumes_posted_jobs_then_stop_and_wait(board: JobBoard, tmp_path: Path, kind: str) -> None:
    jobs = [
        board.post_flow(
            "tests.job_flows:steps",
            store={"job_key": f"j{i}", "trace_dir": str(tmp_path), "delay": 0.0},
            factory_kwargs={"n": 2},
            name=f"j{i}",
        )
        for i in range(3)
    ]
    cond = conductors.fetch(kind, "tf-conductor", board, engine="serial", wait_timeout=0.1)
    assert cond.wait(0) and not cond.dispatching
    thread = threading.Thread(target=cond.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: board_is_empty(board), 20, "every job consumed")
        assert cond.dispatching and not cond.wait(0.05)
    finally:
        cond.stop()
        assert cond.wait(15), "run() did not return after stop()"
        thread.join(5)
    assert [j.state for j in jobs] == [JobState.COMPLETE] * 3
    assert cond.conductor.stats.consumed == 3
    assert cond.conductor.max_jobs == (1 if kind == "blocking" else 4)


def test_bad_kind_and_missing_persistence_are_named(tmp_path: Path) -> None:
    with boards.fetch("b", f"sqlite:///{tmp_path}/b.db") as bare:
        with pytest.raises(ConductorError, match="unknown conductor kind 'impatient'"):
            conductors.fetch("impatient", "c", bare, persistence=f"sqlite:///{tmp_path}/p.db")
        with pytest.raises(ConductorError, match="no persistence"):
            conductors.fetch("blocking", "c", bare)
        with pytest.raises(ConductorError, match="max_dispatches"):
            conductors.fetch("blocking", "c", bare, persistence="memory://").run(max_dispatches=1)
