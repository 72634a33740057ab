"""``flowkit events send|prune``: events for durable waits from a shell (SQLite board and persistence)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowkit.cli.main import cli
from flowkit.jobboard import JobState
from flowkit.jobboard import backends as boards
from flowkit.persistence import events
from flowkit.persistence.shared import backend_for


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "FLOWKIT_BOARD": f"sqlite:///{tmp_path}/board.db",
        "FLOWKIT_PERSISTENCE": f"sqlite:///{tmp_path}/flows.db",
    }


def _events(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["events", *args], env=env)
    assert result.exit_code == code, result.output
    return result.output


def test_send_saves_the_event_with_its_payload(env: dict[str, str]) -> None:
    out = _events(
        {"FLOWKIT_PERSISTENCE": env["FLOWKIT_PERSISTENCE"]}, "send", "approve-1", "--payload", '{"by": "ops"}'
    )
    assert "sent event 'approve-1'" in out and "--board" in out
    found = events.latest_events(backend_for(env["FLOWKIT_PERSISTENCE"]), ["approve-1"])
    assert found["approve-1"].payload == {"by": "ops"}


def test_send_with_a_board_wakes_the_jobs_parked_on_the_event(env: dict[str, str], tmp_path: Path) -> None:
    with boards.fetch("flowkit", env["FLOWKIT_BOARD"], persistence=env["FLOWKIT_PERSISTENCE"]) as board:
        job = board.post_flow("tests.wait_flows:sleepy", factory_args=[str(tmp_path), 1.0])
        board.claim(job, "c1")
        board.park(job, "c1", time.time() + 3600, ["approve-2"])
        assert list(board.iterjobs(only_unclaimed=True)) == []
        listing = CliRunner().invoke(cli, ["jobs", "list"], env=env).output
        assert re.search(rf"{job.uuid}\s+\S+\s+WAITING\s+-", listing), listing
        _events(env, "send", "approve-2")
        assert [j.uuid for j in board.iterjobs(only_unclaimed=True)] == [job.uuid]
        assert board.state_of(job) is JobState.WAITING  # claimable now, still parked until claimed


def test_mistakes_are_reported(env: dict[str, str]) -> None:
    assert "not JSON" in _events(env, "send", "x", "--payload", "{nope", code=2)
    assert "event name" in _events(env, "send", "", code=1)
    assert "--persistence" in _events({}, "send", "x", code=2)


def test_prune_deletes_old_events(env: dict[str, str]) -> None:
    _events(env, "send", "old")
    assert "deleted 0 event(s)" in _events(env, "prune", "--older-than", "3600")
    time.sleep(0.05)
    assert "deleted 1 event(s)" in _events(env, "prune", "--older-than", "0")
