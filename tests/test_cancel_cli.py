"""``flowkit jobs cancel UUID`` and ``flowkit flows cancel UUID`` against a conductor daemon (a real
``python -m conductor`` process) on a SQLite board, and their errors: no match, an ambiguous prefix, a job
that is over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flowkit.cli.main import cli
from flowkit.engines.persistence import backend_for
from flowkit.jobboard import Job, JobBoard, JobState
from flowkit.jobboard import backends as boards
from flowkit.states import FlowState
from tests.support.conductors import Conductors
from tests.support.journal import Journal
from tests.support.wait import wait_until


@pytest.fixture
def env(tmp_path: Path, persistence_url: str) -> dict[str, str]:
    return {"FLOWKIT_BOARD": f"sqlite:///{tmp_path}/board.db", "FLOWKIT_PERSISTENCE": persistence_url}


@pytest.fixture
def sqlite_board(env: dict[str, str]) -> Iterator[JobBoard]:
    board = boards.fetch("flowkit", env["FLOWKIT_BOARD"], persistence=env["FLOWKIT_PERSISTENCE"])
    board.connect()
    yield board
    board.close()


def _cli(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def _post(board: JobBoard, journal: Journal, n: int = 100, name: str = "slow") -> Job:
    store = {"journal": str(journal)}
    return board.post_flow(
        "tests.support.cancel_flows:slow_steps", store=store, factory_kwargs={"n": n, "pause": 0.1}, name=name
    )


def test_jobs_cancel_reaches_a_conductor_daemon(
    sqlite_board: JobBoard, env: dict[str, str], conductors: Conductors, persistence_url: str, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "journal")
    job = _post(sqlite_board, journal)
    conductors.start("c1", env["FLOWKIT_BOARD"])
    wait_until(lambda: len(journal.names("execute")) >= 2, 30, "the daemon to run a few steps")
    result = _cli(env, "jobs", "cancel", job.uuid[:8], "--reason", "wrong cluster", "--wait", "20")
    assert result.exit_code == 0, result.output
    assert f"job {job.uuid} is CANCELLED" in result.output
    assert sqlite_board.get_job(job.uuid).last_reason == "wrong cluster"
    with backend_for(persistence_url).get_connection() as conn:
        assert conn.get_flow_detail(job.flow_uuid or "").state is FlowState.REVERTED
    ran = journal.names("execute")
    assert 2 <= len(ran) < 100 and sorted(journal.names("revert")) == sorted(ran)
    # logged after the board has it: the CLI may see CANCELLED just before the line is written
    wait_until(lambda: "cancelled job" in conductors.log("c1"), 10, "c1 to log the cancel")
    listing = _cli(env, "jobs", "list", "--all").output
    assert job.uuid in listing and "CANCELLED" in listing and "wrong cluster" in listing
    assert "cancel:      wrong cluster" in _cli(env, "jobs", "show", job.uuid).output


def test_flows_cancel_finds_the_job_of_the_flow(
    sqlite_board: JobBoard, env: dict[str, str], tmp_path: Path
) -> None:
    job = _post(sqlite_board, Journal(tmp_path / "journal"))
    result = _cli(env, "flows", "cancel", (job.flow_uuid or "")[:10], "--reason", "not this one")
    assert result.exit_code == 0, result.output
    assert job.uuid in result.output and "UNCLAIMED" in result.output
    assert sqlite_board.cancel_requested(job) == "not this one"
    assert "cancel asked: not this one" in _cli(env, "jobs", "list").output
    missing = _cli(env, "flows", "cancel", "ffffffff")
    assert missing.exit_code == 1 and "engine.cancel()" in missing.output


def test_mistakes_are_reported(sqlite_board: JobBoard, env: dict[str, str], tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    jobs = [_post(sqlite_board, journal, name=f"j{i}") for i in range(20)]
    result = _cli(env, "jobs", "cancel", "zzzz")
    assert (
        result.exit_code == 1 and "no job on board 'flowkit'" in result.output and "'zzzz'" in result.output
    )
    ambiguous = _cli(env, "jobs", "cancel", _shared_first_character([j.uuid for j in jobs]))
    assert ambiguous.exit_code == 1 and "matches" in ambiguous.output and "jobs on board" in ambiguous.output
    sqlite_board.claim(jobs[0], "c1")
    sqlite_board.consume(jobs[0], "c1")
    gone = _cli(env, "jobs", "cancel", jobs[0].uuid)
    assert gone.exit_code == 1 and jobs[0].uuid in gone.output
    sqlite_board.claim(jobs[1], "c1")
    sqlite_board.trash(jobs[1], "c1")
    over = _cli(env, "jobs", "cancel", jobs[1].uuid)
    assert over.exit_code == 1 and "TRASHED" in over.output
    bad = _cli(env, "jobs", "cancel", jobs[2].uuid, "--reason", "  ")
    assert bad.exit_code == 1 and "reason" in bad.output
    assert (
        sqlite_board.state_of(jobs[2]) is JobState.UNCLAIMED
        and sqlite_board.cancel_requested(jobs[2]) is None
    )


def _shared_first_character(uuids: list[str]) -> str:
    """A first character two of the uuids share (17 or more uuids always have one: 16 hex digits)."""
    firsts = [u[0] for u in uuids]
    return next(c for c in firsts if firsts.count(c) > 1)
