"""Operator verbs on every board: requeue a set-aside job, trash a job nobody holds, list every job with
its state and owner (consumed and trashed ones too, kept for a retention period), find one by uuid prefix."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowkit.exceptions import AmbiguousPrefixError, InvalidStateError, NotFound
from flowkit.jobboard import JobBoard, JobState
from flowkit.jobboard import backends as boards
from tests.support.boards import BOARD_KINDS, board_url_for

pytestmark = pytest.mark.timeout(60)


def _states(board: JobBoard) -> dict[str, JobState]:
    return {entry.job.uuid: entry.state for entry in board.listing()}


def test_requeue_offers_a_set_aside_job_again_with_its_attempts_reset(board: JobBoard) -> None:
    job = board.post("poison")
    board.claim(job, "c1")
    board.set_aside(job, "c1", "factory not allowed")
    assert _states(board)[job.uuid] is JobState.SET_ASIDE

    board.requeue(job.uuid)

    again = board.get_job(job.uuid)
    assert again.state is JobState.UNCLAIMED and again.attempts == 0
    assert [j.uuid for j in board.set_aside_jobs()] == []
    board.claim(again, "c2")
    assert board.find_owner(again) == "c2"


def test_requeue_refuses_a_job_that_is_not_set_aside(board: JobBoard) -> None:
    job = board.post("fine")
    with pytest.raises(InvalidStateError, match="UNCLAIMED"):
        board.requeue(job.uuid)


def test_trash_takes_an_unclaimed_or_set_aside_job_off_the_board(board: JobBoard) -> None:
    waiting, aside = board.post("waiting"), board.post("aside")
    board.claim(aside, "c1")
    board.set_aside(aside, "c1", "bad")

    board.trash_job(waiting.uuid, "not needed")
    board.trash_job(aside.uuid)

    assert list(board.iterjobs(ensure_fresh=True)) == []
    assert board.set_aside_jobs() == []
    states = _states(board)
    assert states[waiting.uuid] is JobState.TRASHED and states[aside.uuid] is JobState.TRASHED


def test_trash_refuses_a_claimed_job_naming_its_owner(board: JobBoard) -> None:
    job = board.post("busy")
    board.claim(job, "c1")
    with pytest.raises(InvalidStateError, match="CLAIMED"):
        board.trash_job(job.uuid)
    assert board.find_owner(job) == "c1"


def test_listing_shows_state_and_owner_and_keeps_consumed_jobs(board: JobBoard) -> None:
    done, running, waiting = board.post("done"), board.post("running"), board.post("waiting")
    board.claim(done, "c1")
    board.consume(done, "c1")
    board.claim(running, "c2")

    entries = {e.job.uuid: e for e in board.listing()}

    assert entries[done.uuid].state is JobState.COMPLETE
    assert entries[running.uuid].state is JobState.CLAIMED and entries[running.uuid].owner == "c2"
    assert entries[waiting.uuid].state is JobState.UNCLAIMED and entries[waiting.uuid].owner is None
    assert done.uuid not in {e.job.uuid for e in board.listing(finished=False)}
    assert board.get_job(done.uuid).state is JobState.COMPLETE
    described = board.describe(board.get_job(done.uuid))
    assert described.state is JobState.COMPLETE and described.owner == "c1"


def test_find_job_by_prefix(board: JobBoard) -> None:
    jobs = [board.post(f"j{i}") for i in range(20)]
    target = jobs[7]
    assert board.find_job(target.uuid[:8]).uuid == target.uuid
    assert board.find_job(target.uuid).uuid == target.uuid
    with pytest.raises(NotFound, match="zzzz"):
        board.find_job("zzzz")
    with pytest.raises(AmbiguousPrefixError, match="matches 20"):
        board.find_job("")
    for wildcard in ("%", "_", target.uuid[:4] + "%"):  # SQL LIKE's wildcards are plain characters here
        with pytest.raises(NotFound):
            board.find_job(wildcard)
    assert board.describe(target).state is JobState.UNCLAIMED


SQL_KINDS = [k for k in BOARD_KINDS if getattr(k, "values", (k,))[0] != "zookeeper"]


@pytest.fixture(params=SQL_KINDS)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return board_url_for(request.param, request, tmp_path)


@pytest.fixture
def short_history(sql_url: str, persistence_url: str) -> Iterator[JobBoard]:
    sep = "&" if "?" in sql_url else "?"
    made = boards.fetch(f"b-{secrets.token_hex(4)}", f"{sql_url}{sep}history=0", persistence=persistence_url)
    made.connect()
    yield made
    made.close()


def test_history_retention_zero_keeps_no_consumed_job(short_history: JobBoard) -> None:
    job = short_history.post("gone")
    short_history.claim(job, "c1")
    short_history.consume(job, "c1")
    assert job.uuid not in _states(short_history)
    assert short_history.purge_history() == 0


def test_purge_history_forgets_consumed_jobs_older_than_asked(board: JobBoard) -> None:
    jobs = [board.post(f"done-{i}") for i in range(3)]
    for job in jobs:
        board.claim(job, "c1")
        board.consume(job, "c1")
    assert board.purge_history(older_than=3600) == 0
    assert sum(s is JobState.COMPLETE for s in _states(board).values()) == 3
    assert board.purge_history(older_than=0) == 3
    assert not any(s is JobState.COMPLETE for s in _states(board).values())


def test_page_filters_counts_and_pages_newest_first(board: JobBoard) -> None:
    jobs = [board.post(f"j{i}") for i in range(6)]
    board.claim(jobs[0], "c1")
    board.claim(jobs[1], "c2")
    board.consume(jobs[1], "c2")
    board.claim(jobs[2], "c1")
    board.set_aside(jobs[2], "c1", "bad")

    total, page = board.page()
    assert total == 6 and len(page) == 6
    assert board.page([JobState.UNCLAIMED])[0] == 3
    total, claimed = board.page([JobState.CLAIMED])
    assert total == 1 and claimed[0].job.uuid == jobs[0].uuid and claimed[0].owner == "c1"
    assert [e.job.uuid for e in board.page(owner="c2")[1]] == [jobs[1].uuid]
    assert [e.job.uuid for e in board.page(owner="c1")[1]] == [jobs[0].uuid]
    assert board.page(finished=False)[0] == 5
    assert board.page([JobState.COMPLETE], finished=False)[0] == 1  # asking for a state includes it
    first, second = board.page(limit=4)[1], board.page(limit=4, offset=4)[1]
    assert len(first) == 4 and len(second) == 2
    assert len({e.job.uuid for e in first + second}) == 6
    times = [e.updated_on or e.job.created_on for e in first + second]
    assert times == sorted(times, reverse=True)
